// The encoding side of convert: the two monochrome renderers agree on every
// file of the test corpus, at 8 and 16 bits and for the file's own window;
// the recorded pixel spacing follows a resize; png_compression chooses the
// deflate back end and is part of each item's fingerprint.
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <png.h>

#include <algorithm>
#include <cstring>

#include "dataset/coco_io.h"
#include "dicom/convert.h"
#include "graph/pipeline.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::ReadText;
using testing::RunYaml;
using testing::TempDir;

const fs::path kPydicomFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
const fs::path kPublic = MEDPIPE_PUBLIC_DATA;

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

// The decoded samples of an 8-bit grey PNG (libpng's simplified API).
std::vector<uint8_t> Pixels(const std::string& bytes) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size())) return {};
  img.format = PNG_FORMAT_GRAY;
  std::vector<uint8_t> out(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, out.data(), 0, nullptr)) return {};
  return out;
}

TEST(ConvertRenderers, LookupTableEqualsDicomImageEverywhere) {
  int by_table = 0, compared = 0;
  for (const auto& f : AllTestDicoms()) {
    SCOPED_TRACE(f.string());
    for (const std::string window : {"file", "40/80", "-600/1500", "1/1"}) {
      for (int bits : {8, 16}) {
        ConvertOptions fast;
        fast.window = window;
        fast.bit_depth = bits;
        fast.png_compression = PngCompressor::kZlib;  // the encoder is not what is compared here
        ConvertOptions slow = fast;
        slow.renderer = ConvertOptions::Renderer::kDicomImage;
        Result<std::vector<EncodedFrame>> a = ConvertDicomFile(f, fast, nullptr);
        Result<std::vector<EncodedFrame>> b = ConvertDicomFile(f, slow, nullptr);
        ASSERT_EQ(a.ok(), b.ok()) << (a.ok() ? b.status().ToString() : a.status().ToString());
        if (!a.ok()) continue;
        ASSERT_EQ(a->size(), b->size());
        for (size_t k = 0; k < a->size(); ++k) {
          const EncodedFrame &x = (*a)[k], &y = (*b)[k];
          EXPECT_FALSE(y.fast_path);
          EXPECT_EQ(x.window, y.window);
          EXPECT_EQ(x.width, y.width);
          EXPECT_EQ(x.channels, y.channels);
          if (x.channels != 1) continue;  // colour is DicomImage's on both sides
          // The same encoder: the same bytes exactly when the same pixels.
          EXPECT_TRUE(x.bytes == y.bytes) << "window " << window << ", " << bits << " bits, frame " << x.frame
                                          << (x.fast_path ? " (lookup table)" : "");
          by_table += x.fast_path;
          ++compared;
        }
      }
    }
  }
  EXPECT_GE(compared, 400);
  std::printf("compared %d monochrome frames, %d through the lookup table\n", compared, by_table);
  EXPECT_GE(by_table, 150) << "the lookup table should take most monochrome renders";
}

TEST(ConvertRenderers, OnlyLinearMonochromeTakesTheTable) {
  const fs::path ct = kPydicomFiles / "CT_small.dcm";
  ConvertOptions o;
  o.window = "brain";
  EXPECT_TRUE(ConvertDicomFile(ct, o, nullptr)->front().fast_path);
  for (auto change : std::vector<void (*)(ConvertOptions*)>{
           [](ConvertOptions* c) { c->voi_function = "sigmoid"; },
           [](ConvertOptions* c) { c->voi_function = "linear_exact"; },
           [](ConvertOptions* c) { c->window = "minmax"; },
           [](ConvertOptions* c) { c->window = "none"; },
           [](ConvertOptions* c) { c->rgb_windows = {"brain", "subdural", "bone"}; },
           [](ConvertOptions* c) { c->renderer = ConvertOptions::Renderer::kDicomImage; }}) {
    ConvertOptions c = o;
    change(&c);
    Result<std::vector<EncodedFrame>> r = ConvertDicomFile(ct, c, nullptr);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->front().fast_path);
  }
  // Colour and palette images are DicomImage's.
  for (const fs::path& f : {kPydicomFiles / "SC_rgb_rle_2frame.dcm", kPublic / "us_echo_cine/US-PAL-8-10x-echo.dcm"}) {
    Result<std::vector<EncodedFrame>> r = ConvertDicomFile(f, o, nullptr);
    ASSERT_TRUE(r.ok()) << f;
    EXPECT_FALSE(r->front().fast_path) << f;
  }
}

std::string ConvertYaml(const fs::path& dicoms, const std::string& extra_params) {
  return "name: t\nworkdir: work\nseed: 1\nstages:\n  - id: conv\n    kind: convert\n    params:\n      dicoms: " +
         dicoms.string() + "\n" + extra_params;
}

TEST(ConvertStageEncode, PixelSpacingFollowsTheResize) {
  TempDir dir;
  fs::create_directories(dir / "in");
  fs::copy_file(kPydicomFiles / "CT_small.dcm", dir / "in/ct.dcm");
  Result<DicomMeta> meta = ReadDicomMeta(dir / "in/ct.dcm");
  ASSERT_TRUE(meta.ok());
  ASSERT_EQ(meta->cols, 128);
  ASSERT_TRUE(std::isfinite(meta->pixel_spacing_row));
  auto spacing = [&](const std::string& params) {
    testing::RunResult r = RunYaml(BuiltinRegistry(), dir.path(), ConvertYaml(dir / "in", params));
    EXPECT_EQ(r.summary.exit_code, 0);
    Result<Dataset> ds = ReadCoco(dir / "work/conv/dataset.json");
    EXPECT_TRUE(ds.ok());
    EXPECT_EQ(ds->images.size(), 1u);
    return AttrToString(ds->images.at(0).attributes.at("pixel_spacing"));
  };
  const std::string original = fmt::format("{}/{}", meta->pixel_spacing_row, meta->pixel_spacing_col);
  EXPECT_EQ(spacing(""), original);
  // 128 -> 64 doubles the spacing; 128 x 128 -> 256 x 64 scales each axis.
  EXPECT_EQ(spacing("      resize_width: 64\n"),
            fmt::format("{}/{}", meta->pixel_spacing_row * 2, meta->pixel_spacing_col * 2));
  EXPECT_EQ(spacing("      resize_width: 256\n      resize_height: 64\n"),
            fmt::format("{}/{}", meta->pixel_spacing_row * 2, meta->pixel_spacing_col / 2));
}

TEST(ConvertStageEncode, PngCompressionIsAParamAndPartOfTheFingerprint) {
  TempDir dir;
  fs::create_directories(dir / "in");
  fs::copy_file(kPydicomFiles / "CT_small.dcm", dir / "in/ct.dcm");
  fs::copy_file(kPydicomFiles / "MR_small.dcm", dir / "in/mr.dcm");
  std::map<std::string, std::string> bytes;
  for (const std::string comp : {"fast", "small", "zlib"}) {
    SCOPED_TRACE(comp);
    testing::RunResult r = RunYaml(BuiltinRegistry(), dir.path(),
                                   ConvertYaml(dir / "in", "      window: brain\n      png_compression: " + comp + "\n"));
    ASSERT_EQ(r.summary.exit_code, 0);
    EXPECT_EQ(r.Of("conv").state, StageOutcome::State::kRan);
    EXPECT_EQ(r.Of("conv").items.resumed, 0) << "a changed back end redoes every item";
    bytes[comp] = ReadText(dir / "work/conv/images/ct.png");
    ConvertOptions o;
    o.window = "brain";
    o.png_compression = *ParsePngCompressor(comp);
    EXPECT_EQ(bytes[comp], ConvertDicomFile(dir / "in/ct.dcm", o, nullptr)->front().bytes);
  }
  EXPECT_NE(bytes["fast"], bytes["small"]);
  EXPECT_NE(bytes["fast"], bytes["zlib"]);
  EXPECT_EQ(Pixels(bytes["fast"]), Pixels(bytes["zlib"]));
  EXPECT_EQ(Pixels(bytes["small"]), Pixels(bytes["zlib"]));

  // The default is small (fast is not byte-reproducible; image/png.h).
  testing::RunResult r = RunYaml(BuiltinRegistry(), dir.path(), ConvertYaml(dir / "in", "      window: brain\n"));
  EXPECT_EQ(r.Of("conv").state, StageOutcome::State::kRan);
  EXPECT_EQ(ReadText(dir / "work/conv/images/ct.png"), bytes["small"]);

  testing::WriteText(dir / "bad.yaml", ConvertYaml(dir / "in", "      png_compression: isal\n"));
  Result<Pipeline> p = LoadPipeline((dir / "bad.yaml").string(), BuiltinRegistry());
  if (p.ok()) {
    EXPECT_FALSE(BuiltinRegistry().Instantiate(*p).ok());
  } else {
    EXPECT_NE(p.status().message().find("png_compression"), std::string::npos) << p.status().message();
  }
}

}  // namespace
}  // namespace medpipe
