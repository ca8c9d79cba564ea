// Tests of dicom/convert (the library) and the convert stage, against real
// files: Debian's python3-pydicom test files, ../shared/data/public, and
// medpipe-ctgen output; rendering is checked against Debian's dcm2pnm.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmimgle/dcmimage.h>
#include <dcmtk/dcmimgle/dipixel.h>
#include <gtest/gtest.h>
#include <png.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

#include "dataset/coco_io.h"
#include "dataset/image_io.h"
#include "dicom/convert.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::ReadText;
using testing::RunProcess;
using testing::RunYaml;
using testing::TempDir;

const fs::path kPydicomFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
const fs::path kPublic = MEDPIPE_PUBLIC_DATA;

// Every *.dcm of the pydicom test folder (top level) and of the public data
// (recursive), sorted.
std::vector<fs::path> AllTestDicoms() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(kPydicomFiles)) {
    if (e.path().extension() == ".dcm") out.push_back(e.path());
  }
  for (const auto& e : fs::recursive_directory_iterator(kPublic)) {
    if (e.is_regular_file() && e.path().extension() == ".dcm") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct Decoded {
  int width = 0, height = 0, channels = 0, bit_depth = 0;
  std::vector<uint8_t> pixels;  // 16-bit samples big-endian as stored in the file
};

// Decodes a PNG with libpng, without any transformation but de-interlacing,
// so two files compare sample for sample.
bool DecodePng(const std::string& bytes, Decoded* out) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size())) return false;
  // Read the header ourselves for the bit depth: the simplified API hides it.
  out->width = static_cast<int>(img.width);
  out->height = static_cast<int>(img.height);
  out->channels = (img.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
  out->bit_depth = static_cast<unsigned char>(bytes[24]);  // IHDR bit depth
  png_image_free(&img);
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  struct Src {
    const std::string* b;
    size_t pos;
  } src{&bytes, 0};
  png_set_read_fn(png, &src, [](png_structp p, png_bytep data, png_size_t n) {
    auto* s = static_cast<Src*>(png_get_io_ptr(p));
    if (s->pos + n > s->b->size()) png_error(p, "short");
    std::memcpy(data, s->b->data() + s->pos, n);
    s->pos += n;
  });
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_read_png(png, info, PNG_TRANSFORM_IDENTITY, nullptr);
  png_bytepp rows = png_get_rows(png, info);
  size_t stride = png_get_rowbytes(png, info);
  out->pixels.clear();
  for (int y = 0; y < out->height; ++y) out->pixels.insert(out->pixels.end(), rows[y], rows[y] + stride);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

Decoded MustDecode(const std::string& bytes) {
  Decoded d;
  EXPECT_TRUE(DecodePng(bytes, &d));
  return d;
}

// The Debian tool that reads `meta`'s transfer syntax (KNOWN.md: dcmj2pnm
// for JPEG, dcml2pnm for JPEG-LS, dcm2pnm otherwise).
std::string ToolFor(const DicomMeta& meta) {
  const std::string& ts = meta.transfer_syntax;
  if (ts == "1.2.840.10008.1.2.4.80" || ts == "1.2.840.10008.1.2.4.81") return "/usr/bin/dcml2pnm";
  if (ts.rfind("1.2.840.10008.1.2.4.5", 0) == 0 || ts.rfind("1.2.840.10008.1.2.4.7", 0) == 0) {
    return "/usr/bin/dcmj2pnm";
  }
  return "/usr/bin/dcm2pnm";
}

// dcm2pnm's rendering of frame 0 with `+Ww C W` (or no window when `window`
// is empty), 8-bit (+on) or 16-bit (+on2), not interlaced. Empty on failure.
std::string Dcm2pnm(const fs::path& file, const DicomMeta& meta, const std::string& window, int bits,
                    const fs::path& tmp) {
  fs::path out = tmp / (file.stem().string() + "_ref.png");
  std::vector<std::string> argv = {ToolFor(meta), bits == 16 ? "+on2" : "+on", "-il"};
  if (!window.empty()) {
    size_t slash = window.find('/');
    argv.insert(argv.end(), {"+Ww", window.substr(0, slash), window.substr(slash + 1)});
  }
  argv.insert(argv.end(), {file.string(), out.string()});
  testing::ProcessResult r = RunProcess(argv);
  if (r.exit_code != 0) return std::string();
  return ReadText(out);
}

ConvertOptions Window(const std::string& w) {
  ConvertOptions o;
  o.window = w;
  return o;
}

TEST(ConvertLibrary, EveryTestFileConvertsOrFailsWithAReason) {
  std::vector<fs::path> files = AllTestDicoms();
  ASSERT_GT(files.size(), 70u);
  int converted = 0;
  std::set<std::string> must_convert = {"CT_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm",
                                        "MR_small_implicit.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                        "JPGExtended.dcm", "image_dfl.dcm", "SC_rgb_rle_2frame.dcm",
                                        "JPGLosslessP14SV1_1s_1f_8b.dcm", "US-PAL-8-10x-echo.dcm",
                                        "gdcm-CR-MONO1-10-chest.dcm", "693_UNCR.dcm", "bad_sequence.dcm"};
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    DicomMeta meta;
    Result<std::vector<EncodedFrame>> r = ConvertDicomFile(f, Window("brain"), &meta);
    const std::string name = f.filename().string();
    const bool j2k = meta.transfer_syntax.rfind("1.2.840.10008.1.2.4.9", 0) == 0;
    if (r.ok()) {
      ++converted;
      EXPECT_FALSE(j2k);
      ASSERT_FALSE(r->empty());
      for (const auto& fr : *r) {
        Decoded d = MustDecode(fr.bytes);
        EXPECT_EQ(d.width, fr.width);
        EXPECT_EQ(d.height, fr.height);
        EXPECT_EQ(d.channels, fr.channels);
      }
      must_convert.erase(name);
      continue;
    }
    EXPECT_EQ(r.status().code(), Status::Code::kInvalid) << r.status().ToString();
    EXPECT_NE(r.status().message().find(name), std::string::npos) << "the reason names the file";
    EXPECT_GT(r.status().message().size(), f.string().size() + 10) << "and says why";
    if (j2k) {
      EXPECT_NE(r.status().message().find("JPEG 2000"), std::string::npos) << r.status().message();
    }
    if (name == "MR_truncated.dcm") {
      EXPECT_NE(r.status().message().find("truncated"), std::string::npos);
    }
  }
  EXPECT_TRUE(must_convert.empty()) << "did not convert: " << *must_convert.begin();
  EXPECT_GE(converted, 45);

  // The named failures, explicitly.
  for (const fs::path& f : {kPydicomFiles / "JPEG2000.dcm", kPydicomFiles / "MR_small_jp2klossless.dcm",
                           kPublic / "cxr_dicom/RG1_J2KI.dcm"}) {
    Result<std::vector<EncodedFrame>> r = ConvertDicomFile(f, ConvertOptions(), nullptr);
    ASSERT_FALSE(r.ok()) << f;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalid);
    EXPECT_NE(r.status().message().find("JPEG 2000 is not supported"), std::string::npos) << r.status().message();
  }
  Result<std::vector<EncodedFrame>> trunc = ConvertDicomFile(kPydicomFiles / "MR_truncated.dcm", {}, nullptr);
  ASSERT_FALSE(trunc.ok());
  EXPECT_EQ(trunc.status().code(), Status::Code::kInvalid);
  EXPECT_NE(trunc.status().message().find("premature end of stream"), std::string::npos) << trunc.status().message();
  EXPECT_EQ(ConvertDicomFile("/nonexistent.dcm", {}, nullptr).status().code(), Status::Code::kNotFound);
}

// Both monochrome renderers, explicitly: the lookup-table fast path
// (Renderer::kAuto takes it where it applies) and DicomImage.
TEST(ConvertLibrary, EightBitEqualsDcm2pnmPixelForPixel) {
  TempDir tmp;
  for (ConvertOptions::Renderer renderer : {ConvertOptions::Renderer::kAuto, ConvertOptions::Renderer::kDicomImage}) {
    const bool table_allowed = renderer == ConvertOptions::Renderer::kAuto;
    SCOPED_TRACE(table_allowed ? "renderer auto (lookup table where it applies)" : "renderer DicomImage");
    int compared = 0, mono = 0, color = 0, by_table = 0;
    for (const auto& f : AllTestDicoms()) {
      SCOPED_TRACE(f.string());
      DicomMeta meta;
      // The min-max window of each file, then fixed windows: brain and a wide one.
      Result<std::vector<EncodedFrame>> mm = ConvertDicomFile(f, Window("minmax"), &meta);
      if (!mm.ok()) continue;
      std::vector<std::string> windows = {"40/80", "600/2800"};
      if (mm->front().window != "color") windows.push_back(mm->front().window);
      for (const auto& w : windows) {
        ConvertOptions o = Window(w);
        o.frames = {0};
        o.renderer = renderer;
        Result<std::vector<EncodedFrame>> ours = ConvertDicomFile(f, o, nullptr);
        ASSERT_TRUE(ours.ok()) << ours.status().ToString();
        if (!table_allowed) {
          EXPECT_FALSE(ours->front().fast_path);
        }
        std::string ref = Dcm2pnm(f, meta, ours->front().window == "color" ? "" : w, 8, tmp.path());
        if (ref.empty()) continue;  // the tool cannot read it: not a file both can read
        Decoded a = MustDecode(ours->front().bytes), b = MustDecode(ref);
        ASSERT_EQ(a.width, b.width);
        ASSERT_EQ(a.height, b.height);
        ASSERT_EQ(a.channels, b.channels);
        ASSERT_EQ(a.bit_depth, 8);
        ASSERT_EQ(b.bit_depth, 8);
        EXPECT_TRUE(a.pixels == b.pixels) << "window " << w << " differs from " << ToolFor(meta)
                                          << (ours->front().fast_path ? " (lookup table)" : " (DicomImage)");
        ++compared;
        (a.channels == 1 ? mono : color)++;
        by_table += ours->front().fast_path;
      }
    }
    EXPECT_GE(mono, 60);
    EXPECT_GE(color, 20);
    EXPECT_GE(compared, 100);
    if (table_allowed) {
      EXPECT_GE(by_table, 40) << "the lookup table should render most monochrome files";
    } else {
      EXPECT_EQ(by_table, 0);
    }
  }
}

TEST(ConvertLibrary, SixteenBitEqualsDcm2pnm) {
  TempDir tmp;
  for (auto [name, window] : std::vector<std::pair<std::string, std::string>>{
           {"CT_small.dcm", "40/400"}, {"MR_small_bigendian.dcm", "600/1600"}, {"MR_small_jpeg_ls_lossless.dcm", "600/1600"}}) {
    fs::path f = kPydicomFiles / name;
    SCOPED_TRACE(name);
    ConvertOptions o = Window(window);
    o.bit_depth = 16;
    DicomMeta meta;
    Result<std::vector<EncodedFrame>> ours = ConvertDicomFile(f, o, &meta);
    ASSERT_TRUE(ours.ok()) << ours.status().ToString();
    Decoded a = MustDecode(ours->front().bytes), b = MustDecode(Dcm2pnm(f, meta, window, 16, tmp.path()));
    EXPECT_EQ(a.bit_depth, 16);
    EXPECT_EQ(b.bit_depth, 16);
    EXPECT_TRUE(a.pixels == b.pixels);
    // 16-bit output uses the depth: more than 256 distinct values.
    std::set<uint16_t> values;
    for (size_t i = 0; i + 1 < a.pixels.size(); i += 2) values.insert(static_cast<uint16_t>(a.pixels[i] << 8 | a.pixels[i + 1]));
    EXPECT_GT(values.size(), 256u);
  }
  ConvertOptions bad;
  bad.bit_depth = 16;
  bad.format = "jpeg";
  EXPECT_EQ(ValidateConvertOptions(bad).code(), Status::Code::kInvalid);
}

// "file" applies the file's VOI LUT Sequence before its window centre/width.
// The corpus has no file with a VOI LUT, so one is made with DCMTK: a GE head
// CT slice (window 35/100) given a squaring LUT over 0..4095.
TEST(ConvertLibrary, FileWindowAppliesTheVoiLutLikeDcm2pnm) {
  TempDir tmp;
  const fs::path src = kPublic / "ct_head_ge_dcm_qa_ct/01.dcm", lut_file = tmp / "voi_lut.dcm";
  {
    DcmFileFormat ff;
    ASSERT_TRUE(ff.loadFile(src.c_str()).good());
    DcmItem* item = nullptr;
    ASSERT_TRUE(ff.getDataset()->findOrCreateSequenceItem(DCM_VOILUTSequence, item, 0).good());
    const Uint16 desc[3] = {4096, 0, 16};
    std::vector<Uint16> lut(4096);
    for (size_t i = 0; i < lut.size(); ++i) lut[i] = static_cast<Uint16>(i * i / 256);
    ASSERT_TRUE(item->putAndInsertUint16Array(DCM_LUTDescriptor, desc, 3).good());
    ASSERT_TRUE(item->putAndInsertUint16Array(DCM_LUTData, lut.data(), static_cast<unsigned long>(lut.size())).good());
    ASSERT_TRUE(item->putAndInsertString(DCM_LUTExplanation, "square").good());
    ASSERT_TRUE(ff.saveFile(lut_file.c_str(), EXS_LittleEndianExplicit).good());
  }
  DicomMeta meta;
  Result<std::vector<EncodedFrame>> ours = ConvertDicomFile(lut_file, Window("file"), &meta);
  ASSERT_TRUE(ours.ok()) << ours.status().ToString();
  EXPECT_EQ(ours->front().window, "voi_lut") << "the record says the VOI LUT was used";

  // dcm2pnm with its first VOI LUT (+Wl 1), 8-bit, not interlaced.
  const fs::path ref = tmp / "ref.png";
  testing::ProcessResult r = RunProcess({ToolFor(meta), "+on", "-il", "+Wl", "1", lut_file.string(), ref.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Decoded a = MustDecode(ours->front().bytes), b = MustDecode(ReadText(ref));
  ASSERT_EQ(a.width, b.width);
  EXPECT_TRUE(a.pixels == b.pixels) << "the VOI LUT rendering differs from dcm2pnm +Wl 1";

  // The LUT, not the file's window: the same file without it renders otherwise.
  Result<std::vector<EncodedFrame>> windowed = ConvertDicomFile(src, Window("file"), nullptr);
  ASSERT_TRUE(windowed.ok());
  EXPECT_EQ(windowed->front().window, "35/100");
  EXPECT_FALSE(MustDecode(windowed->front().bytes).pixels == a.pixels);
  // linear_exact has no window to compute with a LUT: DCMTK renders the LUT.
  ConvertOptions exact = Window("file");
  exact.voi_function = "linear_exact";
  Result<std::vector<EncodedFrame>> ex = ConvertDicomFile(lut_file, exact, nullptr);
  ASSERT_TRUE(ex.ok());
  EXPECT_EQ(ex->front().bytes, ours->front().bytes);
}

TEST(ConvertLibrary, PresetsAndWindowKinds) {
  const fs::path ct = kPydicomFiles / "CT_small.dcm";
  for (auto [preset, text] : std::vector<std::pair<std::string, std::string>>{
           {"brain", "40/80"}, {"subdural", "80/200"}, {"bone", "600/2800"}, {"stroke", "40/40"},
           {"lung", "-600/1500"}, {"soft_tissue", "50/350"}, {"-10.5/300", "-10.5/300"}}) {
    Result<std::vector<EncodedFrame>> r = ConvertDicomFile(ct, Window(preset), nullptr);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->front().window, text) << preset;
  }
  // "file": the file's own first window (CT_small: 136/2064 isn't in the file;
  // the GE head CT slices carry 35/100 or 35/85).
  Result<std::vector<EncodedFrame>> own = ConvertDicomFile(kPublic / "ct_head_ge_dcm_qa_ct/01.dcm", Window("file"), nullptr);
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(own->front().window, "35/100");
  // A file with no window falls back to min-max, which equals "minmax".
  Result<std::vector<EncodedFrame>> none = ConvertDicomFile(kPydicomFiles / "rtdose_1frame.dcm", Window("file"), nullptr);
  Result<std::vector<EncodedFrame>> mm = ConvertDicomFile(kPydicomFiles / "rtdose_1frame.dcm", Window("minmax"), nullptr);
  ASSERT_TRUE(none.ok() && mm.ok());
  EXPECT_EQ(none->front().window, "minmax:" + mm->front().window) << "the record says min-max was used";
  EXPECT_EQ(none->front().bytes, mm->front().bytes);
  Result<std::vector<EncodedFrame>> raw = ConvertDicomFile(ct, Window("none"), nullptr);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->front().window, "none");
  for (const char* bad : {"brian", "40", "40/0", "x/80", "40/80/1", ""}) {
    EXPECT_EQ(ValidateConvertOptions(Window(bad)).code(), Status::Code::kInvalid) << bad;
  }
}

TEST(ConvertLibrary, VoiFunctions) {
  const fs::path ct = kPydicomFiles / "CT_small.dcm";
  ConvertOptions lin = Window("136/300"), exact = lin, sig = lin;
  exact.voi_function = "linear_exact";
  sig.voi_function = "sigmoid";
  Decoded a = MustDecode(ConvertDicomFile(ct, lin, nullptr)->front().bytes);
  Decoded b = MustDecode(ConvertDicomFile(ct, exact, nullptr)->front().bytes);
  Decoded c = MustDecode(ConvertDicomFile(ct, sig, nullptr)->front().bytes);
  // LINEAR and LINEAR_EXACT differ by the half-pixel offsets only.
  int max_diff = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) max_diff = std::max(max_diff, std::abs(a.pixels[i] - b.pixels[i]));
  EXPECT_LE(max_diff, 2);
  EXPECT_NE(a.pixels, c.pixels);
}

TEST(ConvertLibrary, Monochrome1IsInverted) {
  const fs::path f = kPublic / "cxr_dicom/gdcm-CR-MONO1-10-chest.dcm";
  DicomMeta meta;
  ConvertOptions o = Window("minmax");
  Result<std::vector<EncodedFrame>> r = ConvertDicomFile(f, o, &meta);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(meta.photometric, "MONOCHROME1");
  Decoded d = MustDecode(r->front().bytes);
  // Independently of the renderer: the pixel with the lowest modality value
  // is white and the one with the highest black.
  DicomImage image(f.c_str());
  const DiPixel* inter = image.getInterData();
  ASSERT_NE(inter, nullptr);
  ASSERT_EQ(inter->getCount(), d.pixels.size());
  std::vector<double> v(inter->getCount());
  for (size_t i = 0; i < v.size(); ++i) {
    switch (inter->getRepresentation()) {
      case EPR_Uint16: v[i] = static_cast<const Uint16*>(inter->getData())[i]; break;
      case EPR_Sint16: v[i] = static_cast<const Sint16*>(inter->getData())[i]; break;
      case EPR_Uint8: v[i] = static_cast<const Uint8*>(inter->getData())[i]; break;
      default: FAIL() << "unexpected representation";
    }
  }
  size_t lo = std::min_element(v.begin(), v.end()) - v.begin(), hi = std::max_element(v.begin(), v.end()) - v.begin();
  EXPECT_EQ(d.pixels[lo], 255);
  EXPECT_EQ(d.pixels[hi], 0);
  // linear_exact inverts by itself and agrees.
  o.voi_function = "linear_exact";
  Decoded e = MustDecode(ConvertDicomFile(f, o, nullptr)->front().bytes);
  EXPECT_EQ(e.pixels[lo], 255);
  EXPECT_EQ(e.pixels[hi], 0);
}

TEST(ConvertLibrary, MultiFrame) {
  const fs::path echo = kPublic / "us_echo_cine/US-PAL-8-10x-echo.dcm";
  DicomMeta meta;
  Result<std::vector<EncodedFrame>> all = ConvertDicomFile(echo, ConvertOptions(), &meta);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(meta.frames, 10);
  ASSERT_EQ(all->size(), 10u);
  std::set<std::string> distinct;
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ((*all)[k].frame, k);
    EXPECT_EQ((*all)[k].channels, 3);  // palette colour comes out as colour
    EXPECT_EQ((*all)[k].window, "color");
    distinct.insert((*all)[k].bytes);
  }
  EXPECT_GT(distinct.size(), 5u) << "frames are different pictures";
  ConvertOptions some;
  some.frames = {7, 2};
  Result<std::vector<EncodedFrame>> chosen = ConvertDicomFile(echo, some, nullptr);
  ASSERT_TRUE(chosen.ok());
  ASSERT_EQ(chosen->size(), 2u);
  EXPECT_EQ((*chosen)[0].frame, 7);
  EXPECT_EQ((*chosen)[0].bytes, (*all)[7].bytes);
  EXPECT_EQ((*chosen)[1].bytes, (*all)[2].bytes);
  some.frames = {10};
  Result<std::vector<EncodedFrame>> out_of_range = ConvertDicomFile(echo, some, nullptr);
  EXPECT_EQ(out_of_range.status().code(), Status::Code::kInvalid);
  EXPECT_NE(out_of_range.status().message().find("10 (0-based)"), std::string::npos) << out_of_range.status().message();

  Result<std::vector<EncodedFrame>> rle = ConvertDicomFile(kPydicomFiles / "SC_rgb_rle_2frame.dcm", {}, &meta);
  ASSERT_TRUE(rle.ok());
  ASSERT_EQ(rle->size(), 2u);
  EXPECT_EQ(meta.photometric, "RGB");
  EXPECT_NE((*rle)[0].bytes, (*rle)[1].bytes);
}

TEST(ConvertLibrary, RgbWindowsResizeAndJpeg) {
  const fs::path ct = kPublic / "pydicom_data/693_UNCR.dcm";
  ConvertOptions rgb;
  rgb.rgb_windows = {"brain", "subdural", "bone"};
  Result<std::vector<EncodedFrame>> r = ConvertDicomFile(ct, rgb, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->front().channels, 3);
  EXPECT_EQ(r->front().window, "40/80,80/200,600/2800");
  Decoded d = MustDecode(r->front().bytes);
  const char* singles[] = {"brain", "subdural", "bone"};
  for (int k = 0; k < 3; ++k) {
    Decoded s = MustDecode(ConvertDicomFile(ct, Window(singles[k]), nullptr)->front().bytes);
    bool same = true;
    for (size_t i = 0; i < s.pixels.size() && same; ++i) same = d.pixels[i * 3 + k] == s.pixels[i];
    EXPECT_TRUE(same) << "channel " << k << " is the " << singles[k] << " window";
  }
  rgb.rgb_windows = {"brain", "bone"};
  EXPECT_EQ(ValidateConvertOptions(rgb).code(), Status::Code::kInvalid);

  ConvertOptions small = Window("brain");
  small.resize_width = 256;
  Result<std::vector<EncodedFrame>> half = ConvertDicomFile(ct, small, nullptr);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half->front().width, 256);
  EXPECT_EQ(half->front().height, 256);
  EXPECT_EQ(MustDecode(half->front().bytes).width, 256);

  ConvertOptions jpeg = Window("brain");
  jpeg.format = "jpeg";
  Result<std::vector<EncodedFrame>> j = ConvertDicomFile(ct, jpeg, nullptr);
  ASSERT_TRUE(j.ok());
  TempDir tmp;
  testing::WriteText(tmp / "a.jpg", j->front().bytes);
  Result<ImageHeader> h = ProbeImage(tmp / "a.jpg");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->format, "jpeg");
  EXPECT_EQ(h->width, 512);
}

TEST(ConvertLibrary, MetaAndPseudonym) {
  Result<DicomMeta> m = ReadDicomMeta(kPydicomFiles / "CT_small.dcm");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->modality, "CT");
  EXPECT_EQ(m->rows, 128);
  EXPECT_EQ(m->frames, 1);
  EXPECT_DOUBLE_EQ(m->slice_thickness, 5.0);
  EXPECT_FALSE(m->patient_id.empty());
  EXPECT_FALSE(m->sop_uid.empty());
  EXPECT_EQ(ReadDicomMeta(kPydicomFiles / "MR_truncated.dcm").ok(), true) << "the header is intact";
  EXPECT_EQ(ReadDicomMeta(fs::path(MEDPIPE_SOURCE_DIR) / "README.md").status().code(), Status::Code::kInvalid);

  EXPECT_EQ(Pseudonymize("12345", ""), "12345");
  std::string p = Pseudonymize("12345", "salt");
  EXPECT_EQ(p.size(), 32u);
  EXPECT_EQ(p, Pseudonymize("12345", "salt"));
  EXPECT_NE(p, Pseudonymize("12345", "pepper"));
  EXPECT_NE(p, Pseudonymize("12346", "salt"));
}

// --- the stage ---

void CtGen(const fs::path& out, int patients, int slices, int size = 64) {
  testing::ProcessResult r = RunProcess({MEDPIPE_CTGEN, "--out", out.string(), "--patients", std::to_string(patients),
                                         "--slices", std::to_string(slices), "--size", std::to_string(size)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

std::string ConvertYaml(const fs::path& dicoms, const std::string& extra_params) {
  return "name: t\nworkdir: work\nseed: 1\nstages:\n  - id: conv\n    kind: convert\n    params:\n      dicoms: " +
         dicoms.string() + "\n" + extra_params;
}

std::map<std::string, int64_t> Counters(const fs::path& stage_dir) {
  std::string report = ReadText(stage_dir / "report.json");
  std::map<std::string, int64_t> out;
  for (const char* key : {"files", "converted", "images", "skipped.not_dicom", "skipped.no_pixel_data",
                          "filtered.slice_thickness", "filtered.modality"}) {
    size_t at = report.find(std::string("\"") + key + "\": ");
    if (at != std::string::npos) out[key] = std::stoll(report.substr(at + std::strlen(key) + 4));
  }
  return out;
}

TEST(ConvertStage, FolderWithCorruptAndNonDicomFiles) {
  TempDir dir;
  fs::path in = dir / "in";
  fs::create_directories(in / "sub");
  fs::copy_file(kPydicomFiles / "CT_small.dcm", in / "sub/ct.dcm");
  fs::copy_file(kPydicomFiles / "MR_small.dcm", in / "mr");  // no extension
  fs::copy_file(kPublic / "us_echo_cine/US-PAL-8-10x-echo.dcm", in / "echo.dcm");
  fs::copy_file(kPydicomFiles / "MR_truncated.dcm", in / "truncated.dcm");
  fs::copy_file(kPydicomFiles / "JPEG2000.dcm", in / "j2k.dcm");
  fs::copy_file(kPydicomFiles / "rtplan.dcm", in / "plan.dcm");
  testing::WriteText(in / "notes.txt", "not a DICOM file\n");
  testing::WriteText(in / "garbage.dcm", std::string(300, 'x'));
  testing::RunResult r = RunYaml(BuiltinRegistry(), dir.path(), ConvertYaml(in, "      window: brain\n"));
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("conv").reason;
  EXPECT_EQ(r.Of("conv").items.failed, 3);  // truncated, j2k, garbage.dcm
  fs::path out = dir / "work/conv";
  std::map<std::string, int64_t> c = Counters(out);
  EXPECT_EQ(c["files"], 7);  // notes.txt is plainly not DICOM: counted, not an item
  EXPECT_EQ(c["converted"], 3);
  EXPECT_EQ(c["images"], 12);  // 1 + 1 + 10 frames
  EXPECT_EQ(c["skipped.not_dicom"], 1);
  EXPECT_EQ(c["skipped.no_pixel_data"], 1);
  EXPECT_TRUE(fs::exists(out / "images/sub/ct.png"));
  EXPECT_TRUE(fs::exists(out / "images/mr.png"));
  EXPECT_TRUE(fs::exists(out / "images/echo_f0.png"));
  EXPECT_TRUE(fs::exists(out / "images/echo_f9.png"));
  std::string report = ReadText(out / "report.json");
  EXPECT_NE(report.find("JPEG 2000 is not supported"), std::string::npos);
  EXPECT_NE(report.find("truncated.dcm"), std::string::npos);
  // Skipped files are named with their reason, not only counted.
  EXPECT_NE(report.find("\"item\": \"plan.dcm\",\n      \"reason\": \"not converted (skipped.no_pixel_data): no pixel data"),
            std::string::npos) << report;
  // A file plainly not DICOM is one count (and one log line), not a problem.
  EXPECT_EQ(report.find("notes.txt"), std::string::npos) << report;

  Result<Dataset> ds = ReadCoco(out / "dataset.json");
  ASSERT_TRUE(ds.ok());
  ASSERT_EQ(ds->images.size(), 12u);
  const Image* ct = nullptr;
  for (const auto& img : ds->images) {
    if (img.file_name == "images/sub/ct.png") ct = &img;
  }
  ASSERT_NE(ct, nullptr);
  EXPECT_EQ(ct->width, 128);
  EXPECT_EQ(AttrToString(ct->attributes.at("modality")), "CT");
  EXPECT_EQ(AttrToString(ct->attributes.at("window")), "40/80");
  EXPECT_DOUBLE_EQ(std::get<double>(ct->attributes.at("slice_thickness")), 5.0);
  std::set<std::string> allowed = {"study_uid", "series_uid", "sop_uid", "modality", "slice_thickness",
                                   "pixel_spacing", "manufacturer", "model", "window", "frame"};
  for (const auto& img : ds->images) {
    for (const auto& [k, v] : img.attributes) EXPECT_TRUE(allowed.count(k)) << k;
  }
  // The converted pixels are the library's.
  ConvertOptions o = Window("brain");
  EXPECT_EQ(ReadText(out / "images/sub/ct.png"), ConvertDicomFile(in / "sub/ct.dcm", o, nullptr)->front().bytes);

  // A rerun with nothing changed does nothing; a changed window redoes it all.
  testing::RunResult again = RunYaml(BuiltinRegistry(), dir.path(), ConvertYaml(in, "      window: brain\n"));
  EXPECT_EQ(again.Of("conv").state, StageOutcome::State::kSkipped);
  testing::RunResult changed = RunYaml(BuiltinRegistry(), dir.path(), ConvertYaml(in, "      window: bone\n"));
  EXPECT_EQ(changed.Of("conv").state, StageOutcome::State::kRan);
  EXPECT_EQ(changed.Of("conv").items.resumed, 0);
  EXPECT_NE(ReadText(out / "images/sub/ct.png"), ConvertDicomFile(in / "sub/ct.dcm", o, nullptr)->front().bytes);
}

TEST(ConvertStage, PseudonymisedIdsOnly) {
  TempDir dir;
  CtGen(dir / "ct", 3, 2);
  fs::copy_file(kPydicomFiles / "CT_small.dcm", dir / "ct/dicom/ct_small.dcm");
  std::set<std::string> ids;
  for (const auto& e : fs::recursive_directory_iterator(dir / "ct/dicom")) {
    if (e.is_regular_file()) ids.insert(ReadDicomMeta(e.path())->patient_id);
  }
  ASSERT_EQ(ids.size(), 4u);
  testing::RunResult r =
      RunYaml(BuiltinRegistry(), dir.path(), ConvertYaml(dir / "ct/dicom", "      pseudonymize_salt: s3cret\n"));
  ASSERT_EQ(r.summary.exit_code, 0);
  Result<Dataset> ds = ReadCoco(dir / "work/conv/dataset.json");
  ASSERT_TRUE(ds.ok());
  ASSERT_EQ(ds->images.size(), 7u);
  std::set<std::string> pseudonyms;
  for (const auto& img : ds->images) pseudonyms.insert(img.patient_id);
  std::set<std::string> expected;
  for (const auto& id : ids) expected.insert(Pseudonymize(id, "s3cret"));
  EXPECT_EQ(pseudonyms, expected);
  // No original id in any file of the stage folder, metadata and journal included.
  int scanned = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir / "work")) {
    if (!e.is_regular_file()) continue;
    std::string bytes = ReadText(e.path());
    ++scanned;
    for (const auto& id : ids) EXPECT_EQ(bytes.find(id), std::string::npos) << id << " in " << e.path();
  }
  EXPECT_GT(scanned, 8);
}

TEST(ConvertStage, SliceThicknessAndModalityFilters) {
  TempDir dir;
  CtGen(dir / "ct", 6, 3);  // thickness by patient: 5.0, 5.5, 1.25, 2.5, 5.0, 5.5
  fs::copy_file(kPydicomFiles / "MR_small.dcm", dir / "ct/dicom/mr.dcm");
  int keep = 0, total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir / "ct/dicom")) {
    if (!e.is_regular_file()) continue;
    ++total;
    Result<DicomMeta> m = ReadDicomMeta(e.path());
    ASSERT_TRUE(m.ok());
    if (m->modality == "CT" && (std::fabs(m->slice_thickness - 5.0) < 0.01 || std::fabs(m->slice_thickness - 5.5) < 0.01)) {
      ++keep;
    }
  }
  ASSERT_EQ(total, 19);
  ASSERT_EQ(keep, 12);
  testing::RunResult r = RunYaml(BuiltinRegistry(), dir.path(),
                                 ConvertYaml(dir / "ct/dicom",
                                             "      window: brain\n      filter_modality: [ct]\n"
                                             "      filter_slice_thickness: [\"5.0\", \"5.5\"]\n"));
  ASSERT_EQ(r.summary.exit_code, 0);
  std::map<std::string, int64_t> c = Counters(dir / "work/conv");
  EXPECT_EQ(c["converted"], 12);
  EXPECT_EQ(c["filtered.modality"], 1);
  EXPECT_EQ(c["filtered.slice_thickness"], 6);
  std::string report = ReadText(dir / "work/conv/report.json");
  EXPECT_NE(report.find("mr.dcm\",\n      \"reason\": \"not converted (filtered.modality): modality 'MR' is not in "
                        "filter_modality [CT]"),
            std::string::npos) << report;
  EXPECT_NE(report.find("not converted (filtered.slice_thickness): slice thickness 1.25 mm is not in "
                        "filter_slice_thickness [5, 5.5]"),
            std::string::npos) << report;
  Result<Dataset> filtered = ReadCoco(dir / "work/conv/dataset.json");
  ASSERT_TRUE(filtered.ok());
  for (const auto& img : filtered->images) {
    double t = std::get<double>(img.attributes.at("slice_thickness"));
    EXPECT_TRUE(t == 5.0 || t == 5.5) << t;
  }
  // Off: everything converts.
  testing::RunResult all = RunYaml(BuiltinRegistry(), dir.path(), ConvertYaml(dir / "ct/dicom", "      window: brain\n"));
  ASSERT_EQ(all.summary.exit_code, 0);
  EXPECT_EQ(Counters(dir / "work/conv")["converted"], 19);
}

TEST(ConvertStage, SameBytesWhateverTheThreadCount) {
  TempDir a, b;
  CtGen(a / "ct", 4, 5);
  fs::copy_file(kPublic / "us_echo_cine/US-PAL-8-10x-echo.dcm", a / "ct/dicom/echo.dcm");
  fs::copy_file(kPydicomFiles / "JPEG2000.dcm", a / "ct/dicom/j2k.dcm");
  const std::string params = "      rgb_windows: [brain, subdural, bone]\n      pseudonymize_salt: x\n";
  RunOptions one, two;
  one.threads = 1;
  two.threads = 2;
  testing::RunResult r1 = RunYaml(BuiltinRegistry(), a.path(), ConvertYaml(a / "ct/dicom", params), one);
  testing::RunResult r2 = RunYaml(BuiltinRegistry(), b.path(), ConvertYaml(a / "ct/dicom", params), two);
  ASSERT_EQ(r1.summary.exit_code, 0);
  ASSERT_EQ(r2.summary.exit_code, 0);
  std::map<std::string, std::string> s1 = testing::Snapshot(a / "work"), s2 = testing::Snapshot(b / "work");
  EXPECT_GT(s1.size(), 30u);
  EXPECT_TRUE(s1 == s2);
}

TEST(ConvertStage, ConfigErrorsBeforeAnyWork) {
  TempDir dir;
  for (const char* bad : {"      window: brian\n", "      bit_depth: 12\n", "      png_filter: fast\n",
                          "      rgb_windows: [brain]\n", "      frames: [\"-1\"]\n",
                          "      filter_slice_thickness: [thick]\n", "      format: jpeg\n      bit_depth: 16\n"}) {
    testing::WriteText(dir / "pipeline.yaml", ConvertYaml(kPydicomFiles, bad));
    Result<Pipeline> p = LoadPipeline((dir / "pipeline.yaml").string(), BuiltinRegistry());
    if (!p.ok()) continue;  // rejected by validation already
    Result<std::vector<std::unique_ptr<Stage>>> stages = BuiltinRegistry().Instantiate(*p);
    EXPECT_FALSE(stages.ok()) << bad;
    if (!stages.ok()) {
      EXPECT_EQ(stages.status().code(), Status::Code::kConfig);
    }
  }
}

}  // namespace
}  // namespace medpipe
