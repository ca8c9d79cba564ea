#include "dicom/convert.h"

// DCMTK headers: osconfig.h first, as DCMTK requires.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmimgle/dcmimage.h>
#include <dcmtk/dcmimgle/dipixel.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>
// Colour support for DicomImage: this header defines a static registration
// object, so it is included in exactly one translation unit (this one).
#include <dcmtk/dcmimage/diregist.h>
#include <fmt/format.h>
#include <malloc.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>

#include "dicom/encode.h"
#include "dicom/window_lut.h"
#include "image/png.h"
#include "util/hash.h"

namespace medpipe {

namespace {

// What DCMTK 3.6.7 (built WITH_THREADS on Debian) shares between threads,
// and why concurrent ConvertDicomFile calls on TBB workers are safe:
//  - the data dictionary is a global guarded by a read/write lock, loaded on
//    first use under that lock;
//  - the codec list (DcmCodecList) is a global guarded by a read/write lock:
//    decoding takes the read lock, registering the write lock. The
//    registration functions themselves keep an unguarded `registered` flag,
//    so they run exactly once here, under a function-local static (C++11
//    guarantees one initialisation even when threads race to it). The
//    registered codec objects are stateless; each decode makes its own
//    IJG / CharLS / RLE decompressor;
//  - DicomImage, DcmFileFormat and the pixel buffers hold no global state,
//    but are not safe to share: each call here makes its own, and renders
//    through DicomImage's own output buffer, which is copied before return;
//  - colour support registers itself at static initialisation (diregist.h);
//  - oflog (log4cplus) is thread-safe; it is silenced below FATAL because
//    every problem is returned as a Status with the file named, and 1,000
//    warnings on stderr from a batch of odd files help no one.
//
// Also here, once: glibc's heap tuning. Each file allocates several buffers
// of 0.25-2 MB (the file's pixels, DCMTK's modality and output buffers, the
// PNG); with glibc's defaults every one is mmapped and unmapped, and the page
// faults that follow cost as much CPU as the PNG encoder (measured on 512x512
// CT: 8.3 ms of CPU per file with the defaults, 3.0 ms with these settings;
// see KNOWN.md for the same effect in Python). Keeping freed memory in the
// heap costs a few MB per worker thread. Values the user set through the
// MALLOC_*_THRESHOLD_ environment variables are left alone.
void TuneHeapForLargeBuffers() {
  if (!std::getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
  if (!std::getenv("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

void EnsureDcmtk() {
  static const bool once = [] {
    TuneHeapForLargeBuffers();
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
    return true;
  }();
  (void)once;
}

struct Window {
  enum class Kind { kExplicit, kFile, kMinMax, kNone } kind = Kind::kFile;
  double center = 0, width = 0;
};

const std::map<std::string, std::pair<double, double>>& Presets() {
  static const auto* presets = new std::map<std::string, std::pair<double, double>>{
      {"brain", {40, 80}},     {"subdural", {80, 200}},      {"bone", {600, 2800}},
      {"stroke", {40, 40}},    {"lung", {-600, 1500}},       {"soft_tissue", {50, 350}},
      {"mediastinum", {50, 350}}, {"abdomen", {40, 400}},    {"liver", {60, 160}},
  };
  return *presets;
}

Result<Window> ParseWindow(const std::string& text) {
  Window w;
  if (text == "file") return w;
  if (text == "minmax") return (w.kind = Window::Kind::kMinMax, w);
  if (text == "none") return (w.kind = Window::Kind::kNone, w);
  if (auto it = Presets().find(text); it != Presets().end()) {
    w.kind = Window::Kind::kExplicit;
    w.center = it->second.first;
    w.width = it->second.second;
    return w;
  }
  size_t slash = text.find('/');
  if (slash != std::string::npos) {
    std::string c = text.substr(0, slash), wd = text.substr(slash + 1);
    char *end_c = nullptr, *end_w = nullptr;
    w.center = std::strtod(c.c_str(), &end_c);
    w.width = std::strtod(wd.c_str(), &end_w);
    if (!c.empty() && !wd.empty() && *end_c == 0 && *end_w == 0 && std::isfinite(w.center) &&
        std::isfinite(w.width)) {
      if (w.width < 1) return Status::Invalid(fmt::format("window '{}': the width must be at least 1", text));
      w.kind = Window::Kind::kExplicit;
      return w;
    }
  }
  std::string names;
  for (const auto& [name, cw] : Presets()) names += name + ", ";
  return Status::Invalid(fmt::format(
      "window '{}' is not a preset ({}), 'C/W' (e.g. 40/80), 'file', 'minmax' or 'none'", text, names));
}

std::string Trim(const OFString& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\0')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\0')) --e;
  return std::string(s.c_str() + b, e - b);
}

std::string Str(DcmItem* ds, const DcmTagKey& key) {
  OFString v;
  return ds->findAndGetOFStringArray(key, v).good() ? Trim(v) : std::string();
}

double Float(DcmItem* ds, const DcmTagKey& key, unsigned long pos = 0) {
  Float64 v = 0;
  return ds->findAndGetFloat64(key, v, pos).good() && std::isfinite(v) ? v : std::nan("");
}

DicomMeta MetaOf(DcmDataset* ds) {
  DicomMeta m;
  m.patient_id = Str(ds, DCM_PatientID);
  m.study_uid = Str(ds, DCM_StudyInstanceUID);
  m.series_uid = Str(ds, DCM_SeriesInstanceUID);
  m.sop_uid = Str(ds, DCM_SOPInstanceUID);
  m.modality = Str(ds, DCM_Modality);
  m.manufacturer = Str(ds, DCM_Manufacturer);
  m.model = Str(ds, DCM_ManufacturerModelName);
  m.photometric = Str(ds, DCM_PhotometricInterpretation);
  m.transfer_syntax = DcmXfer(ds->getOriginalXfer()).getXferID();
  m.slice_thickness = Float(ds, DCM_SliceThickness);
  m.pixel_spacing_row = Float(ds, DCM_PixelSpacing, 0);
  m.pixel_spacing_col = Float(ds, DCM_PixelSpacing, 1);
  Uint16 u = 0;
  if (ds->findAndGetUint16(DCM_Rows, u).good()) m.rows = u;
  if (ds->findAndGetUint16(DCM_Columns, u).good()) m.cols = u;
  Sint32 frames = 0;
  m.frames = ds->findAndGetSint32(DCM_NumberOfFrames, frames).good() && frames > 0 ? frames : 1;
  m.has_pixel_data = ds->tagExists(DCM_PixelData);
  return m;
}

// The first bytes of `file`, or kNotFound.
Result<std::string> Head(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::NotFound(file.string() + ": cannot open: " + std::strerror(errno));
  std::string head(132, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  return head;
}

Status CheckIsDicom(const fs::path& file) {
  MEDPIPE_ASSIGN_OR_RETURN(std::string head, Head(file));
  if (!LooksLikeDicom(head)) {
    return Status::Invalid(file.string() + ": not a DICOM file (no DICM magic at offset 128 and no DICOM header)");
  }
  return Status::OK();
}

bool IsJpeg2000(E_TransferSyntax x) {
  return x == EXS_JPEG2000LosslessOnly || x == EXS_JPEG2000 || x == EXS_JPEG2000MulticomponentLosslessOnly ||
         x == EXS_JPEG2000Multicomponent;
}

std::string Num(double v) { return fmt::format("{}", v); }

constexpr const char* kVoiLutText = "voi_lut";

// Sets the image's VOI transformation for `w`. Returns the window used as
// text, and its centre and width in *c and *wd ("none" and "voi_lut" leave
// them 0).
Result<std::string> ApplyWindow(DicomImage& image, const Window& w, EF_VoiLutFunction fn, double* c, double* wd) {
  *c = *wd = 0;
  int ok = 0;
  switch (w.kind) {
    case Window::Kind::kNone:
      if (!image.setNoVoiTransformation()) return Status::Invalid("DCMTK refused to turn windowing off");
      return std::string("none");
    case Window::Kind::kExplicit:
      ok = image.setWindow(w.center, w.width);
      break;
    case Window::Kind::kFile:
      // The file's own VOI transformation, in this order: its first VOI LUT
      // (VOI LUT Sequence), its first window centre/width, else min-max. The
      // text says which: "voi_lut", "C/W", "minmax:C/W".
      if (image.getVoiLutCount() > 0 && image.setVoiLut(0)) return std::string(kVoiLutText);
      ok = image.getWindowCount() > 0 ? image.setWindow(0) : 0;
      if (!ok) {
        ok = image.setMinMaxWindow(0);
        if (!ok || !image.getWindow(*c, *wd)) return Status::Invalid("DCMTK could not set the VOI window");
        image.setVoiLutFunction(fn);
        return "minmax:" + Num(*c) + "/" + Num(*wd);
      }
      break;
    case Window::Kind::kMinMax:
      ok = image.setMinMaxWindow(0);
      break;
  }
  if (!ok || !image.getWindow(*c, *wd)) return Status::Invalid("DCMTK could not set the VOI window");
  // Set after the window: choosing the file's window also takes the file's
  // VOI LUT function, which the option overrides.
  image.setVoiLutFunction(fn);
  return Num(*c) + "/" + Num(*wd);
}

// True when ApplyWindow chose a VOI LUT: no linear window to compute exactly.
bool IsVoiLut(const std::string& window_text) { return window_text == kVoiLutText; }

// PS3.3 C.11.2.1.3.2 LINEAR_EXACT over DCMTK's modality-transformed values.
// Written here because DCMTK 3.6.7 implements only LINEAR and SIGMOID.
template <typename T>
void LinearExact(const T* in, size_t n, double c, double w, int bits, bool invert, uint8_t* out) {
  const double ymax = bits == 16 ? 65535.0 : 255.0;
  for (size_t i = 0; i < n; ++i) {
    double x = static_cast<double>(in[i]);
    double y = x <= c - w / 2 ? 0.0 : x > c + w / 2 ? ymax : std::nearbyint(((x - c) / w + 0.5) * ymax);
    if (invert) y = ymax - y;
    if (bits == 16) {
      uint16_t v = static_cast<uint16_t>(y);
      std::memcpy(out + 2 * i, &v, 2);
    } else {
      out[i] = static_cast<uint8_t>(y);
    }
  }
}

Status RenderLinearExact(DicomImage& image, int frame, int bits, double c, double w, uint8_t* out) {
  const DiPixel* inter = image.getInterData();
  const size_t n = static_cast<size_t>(image.getWidth()) * image.getHeight();
  if (!inter || inter->getData() == nullptr || inter->getCount() < n * (frame + 1)) {
    return Status::Invalid("no modality pixel data for LINEAR_EXACT");
  }
  const bool invert = image.getPhotometricInterpretation() == EPI_Monochrome1;
  const size_t off = n * frame;
  const void* d = inter->getData();
  switch (inter->getRepresentation()) {
    case EPR_Uint8: LinearExact(static_cast<const Uint8*>(d) + off, n, c, w, bits, invert, out); break;
    case EPR_Sint8: LinearExact(static_cast<const Sint8*>(d) + off, n, c, w, bits, invert, out); break;
    case EPR_Uint16: LinearExact(static_cast<const Uint16*>(d) + off, n, c, w, bits, invert, out); break;
    case EPR_Sint16: LinearExact(static_cast<const Sint16*>(d) + off, n, c, w, bits, invert, out); break;
    case EPR_Uint32: LinearExact(static_cast<const Uint32*>(d) + off, n, c, w, bits, invert, out); break;
    case EPR_Sint32: LinearExact(static_cast<const Sint32*>(d) + off, n, c, w, bits, invert, out); break;
  }
  return Status::OK();
}

// Renders one monochrome frame with the window already applied to `image`.
Status RenderMono(DicomImage& image, int frame, const ConvertOptions& o, bool exact, double c, double w,
                  uint8_t* out) {
  const size_t size = image.getOutputDataSize(o.bit_depth);
  if (exact) return RenderLinearExact(image, frame, o.bit_depth, c, w, out);
  const void* data = image.getOutputData(o.bit_depth, static_cast<unsigned long>(frame));
  if (!data) return Status::Invalid(fmt::format("DCMTK could not render frame {}", frame));
  std::memcpy(out, data, size);
  return Status::OK();
}

EF_VoiLutFunction VoiFunction(const std::string& name) {
  return name == "sigmoid" ? EFV_Sigmoid : EFV_Linear;
}

Result<std::string> Encode(const PixelBuffer& px, const ConvertOptions& o) {
  if (o.format == "jpeg") return EncodeJpeg(px, o.jpeg_quality);
  PngOptions png;
  png.compressor = o.png_compression;
  png.filters = o.png_filter;
  png.zlib_level = o.png_level;
  png.zlib_strategy = o.png_strategy;
  return EncodePng(px.bytes.data(), px.width, px.height, px.channels, px.bit_depth, png);
}

// Resizes and encodes one rendered frame into `ef`.
Status Finish(PixelBuffer px, const ConvertOptions& o, EncodedFrame* ef) {
  if (o.resize_width > 0 || o.resize_height > 0) px = ResizeArea(px, o.resize_width, o.resize_height);
  MEDPIPE_ASSIGN_OR_RETURN(ef->bytes, Encode(px, o));
  ef->width = px.width;
  ef->height = px.height;
  ef->channels = px.channels;
  return Status::OK();
}

// The lookup-table path (dicom/window_lut.h) when it applies to this file
// and these options; nullopt leaves the file to DicomImage.
std::optional<Result<std::vector<EncodedFrame>>> RenderByTable(DcmDataset* ds, const DicomMeta& m,
                                                               const ConvertOptions& o, const fs::path& file) {
  if (o.renderer != ConvertOptions::Renderer::kAuto || !o.rgb_windows.empty() || o.voi_function != "linear") {
    return std::nullopt;
  }
  // DCMTK ignores the rescale of X-ray angiography and fluoroscopy images.
  if (m.modality == "XA" || m.modality == "RF" || m.modality == "XRF") return std::nullopt;
  Result<Window> w = ParseWindow(o.window);
  if (!w.ok() || (w->kind != Window::Kind::kExplicit && w->kind != Window::Kind::kFile)) return std::nullopt;
  std::optional<LinearMono> src = ProbeLinearMono(ds);
  if (!src) return std::nullopt;
  double c = w->center, wd = w->width;
  if (w->kind == Window::Kind::kFile) {
    if (!src->has_file_window) return std::nullopt;  // min-max fallback: DicomImage
    // The file's VOI LUT comes before its window (see ApplyWindow): DicomImage.
    DcmSequenceOfItems* voi_lut = nullptr;
    if (ds->findAndGetSequence(DCM_VOILUTSequence, voi_lut).good() && voi_lut && voi_lut->card() > 0) {
      return std::nullopt;
    }
    c = src->file_center, wd = src->file_width;
  }
  std::vector<int> frames = o.frames;
  if (frames.empty()) {
    for (int f = 0; f < src->frames; ++f) frames.push_back(f);
  }
  std::vector<EncodedFrame> out;
  for (int f : frames) {
    if (f >= src->frames) {
      return Status::Invalid(
          fmt::format("{}: frame {} requested, but the file has {} (0-based)", file.string(), f, src->frames));
    }
    PixelBuffer px;
    px.width = src->cols;
    px.height = src->rows;
    px.bit_depth = o.bit_depth;
    px.bytes.resize(static_cast<size_t>(px.width) * px.height * (o.bit_depth / 8));
    RenderLinearMono(*src, f, c, wd, o.bit_depth, px.bytes.data());
    EncodedFrame ef;
    ef.frame = f;
    ef.window = Num(c) + "/" + Num(wd);
    ef.fast_path = true;
    Status s = Finish(std::move(px), o, &ef);
    if (!s.ok()) return Status::Invalid(file.string() + ": " + s.message());
    out.push_back(std::move(ef));
  }
  return out;
}

}  // namespace

std::vector<std::string> WindowPresetNames() {
  std::vector<std::string> out;
  for (const auto& [name, cw] : Presets()) out.push_back(name);
  return out;
}

Status ValidateConvertOptions(const ConvertOptions& o) {
  MEDPIPE_RETURN_IF_ERROR(ParseWindow(o.window).status());
  if (!o.rgb_windows.empty() && o.rgb_windows.size() != 3) {
    return Status::Invalid(fmt::format("rgb_windows needs exactly 3 windows (R, G, B), got {}", o.rgb_windows.size()));
  }
  for (const auto& w : o.rgb_windows) MEDPIPE_RETURN_IF_ERROR(ParseWindow(w).status());
  if (o.voi_function != "linear" && o.voi_function != "linear_exact" && o.voi_function != "sigmoid") {
    return Status::Invalid("voi_function '" + o.voi_function + "' is not linear, linear_exact or sigmoid");
  }
  if (o.bit_depth != 8 && o.bit_depth != 16) return Status::Invalid(fmt::format("bit_depth {} is not 8 or 16", o.bit_depth));
  if (o.format != "png" && o.format != "jpeg") return Status::Invalid("format '" + o.format + "' is not png or jpeg");
  if (o.format == "jpeg" && o.bit_depth != 8) return Status::Invalid("jpeg output is 8-bit only; use png for 16-bit");
  if (o.png_level < 0 || o.png_level > 9) return Status::Invalid(fmt::format("png_level {} is not 0..9", o.png_level));
  if (o.png_filter == 0 || (o.png_filter & ~kPngAllFilters) != 0) {
    return Status::Invalid(fmt::format("png_filter {:#x} is not a PNG filter mask", o.png_filter));
  }
  if (o.jpeg_quality < 1 || o.jpeg_quality > 100) return Status::Invalid(fmt::format("jpeg_quality {} is not 1..100", o.jpeg_quality));
  if (o.resize_width < 0 || o.resize_height < 0) return Status::Invalid("resize sizes must not be negative");
  for (int f : o.frames) {
    if (f < 0) return Status::Invalid(fmt::format("frame {} is negative (frames are 0-based)", f));
  }
  return Status::OK();
}

bool LooksLikeDicom(std::string_view head) {
  if (head.size() >= 132 && head.substr(128, 4) == "DICM") return true;
  if (head.size() < 8) return false;
  auto b = [&](size_t i) { return static_cast<unsigned char>(head[i]); };
  const unsigned le = b(0) | (b(1) << 8), be = (b(0) << 8) | b(1);
  return le == 0x0002 || le == 0x0008 || be == 0x0002 || be == 0x0008;
}

void EnsureDicomDecoders() { EnsureDcmtk(); }

std::string Pseudonymize(const std::string& patient_id, const std::string& salt) {
  if (salt.empty() || patient_id.empty()) return patient_id;
  return HashBytes(salt + patient_id);
}

Result<DicomMeta> ReadDicomMeta(const fs::path& file) {
  EnsureDcmtk();
  MEDPIPE_RETURN_IF_ERROR(CheckIsDicom(file));
  DcmFileFormat ff;
  OFCondition c = ff.loadFileUntilTag(file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect,
                                      DCM_PixelData);
  if (c.bad()) return Status::Invalid(fmt::format("{}: cannot read the DICOM header: {}", file.string(), c.text()));
  return MetaOf(ff.getDataset());
}

Result<std::vector<EncodedFrame>> ConvertDicomFile(const fs::path& file, const ConvertOptions& o, DicomMeta* meta) {
  EnsureDcmtk();
  MEDPIPE_RETURN_IF_ERROR(ValidateConvertOptions(o));
  MEDPIPE_RETURN_IF_ERROR(CheckIsDicom(file));
  auto invalid = [&](const std::string& why) { return Status::Invalid(file.string() + ": " + why); };

  DcmFileFormat ff;
  OFCondition c = ff.loadFile(file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect);
  if (c.bad()) return invalid(std::string("cannot read DICOM (corrupt or truncated?): ") + c.text());
  DcmDataset* ds = ff.getDataset();
  DicomMeta m = MetaOf(ds);
  if (meta) *meta = m;
  if (!m.has_pixel_data) return invalid("no pixel data: not an image object");

  // Decompress up front rather than inside DicomImage, whose error for a
  // missing codec is a bare "missing pixel data".
  const E_TransferSyntax xfer = ds->getOriginalXfer();
  const DcmXfer x(xfer);
  if (x.isEncapsulated()) {
    c = ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
    if (c.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit)) {
      std::string why = IsJpeg2000(xfer) ? "JPEG 2000 is not supported (the free DCMTK has no JPEG 2000 decoder)"
                        : c.bad()         ? std::string(c.text())
                                          : "no decoder for this transfer syntax";
      return invalid(fmt::format("cannot decode pixel data in transfer syntax '{}': {}", x.getXferName(), why));
    }
  }

  if (auto by_table = RenderByTable(ds, m, o, file)) return std::move(*by_table);

  DicomImage image(&ff, ds->getCurrentXfer(), CIF_MayDetachPixelData);
  if (image.getStatus() != EIS_Normal) {
    return invalid(fmt::format("DCMTK cannot render the image (photometric interpretation '{}'): {}",
                               m.photometric, DicomImage::getString(image.getStatus())));
  }
  const int nframes = static_cast<int>(image.getFrameCount());
  std::vector<int> frames = o.frames;
  if (frames.empty()) {
    for (int f = 0; f < nframes; ++f) frames.push_back(f);
  }
  for (int f : frames) {
    if (f >= nframes) return invalid(fmt::format("frame {} requested, but the file has {} (0-based)", f, nframes));
  }

  const bool mono = image.isMonochrome();
  const bool exact = o.voi_function == "linear_exact";
  const EF_VoiLutFunction fn = VoiFunction(o.voi_function);
  const int width = static_cast<int>(image.getWidth()), height = static_cast<int>(image.getHeight());
  const size_t plane = static_cast<size_t>(width) * height * (o.bit_depth / 8);

  // The window is set once per file (for "file" and "minmax" DCMTK takes
  // the range over all frames, so every frame of a cine shares it).
  std::vector<Window> windows;
  for (const auto& w : o.rgb_windows.empty() ? std::vector<std::string>{o.window} : o.rgb_windows) {
    MEDPIPE_ASSIGN_OR_RETURN(Window parsed, ParseWindow(w));
    windows.push_back(parsed);
  }
  double single_c = 0, single_w = 0;
  std::string single_text;
  if (mono && windows.size() == 1) {
    Result<std::string> t = ApplyWindow(image, windows[0], fn, &single_c, &single_w);
    if (!t.ok()) return invalid(t.status().message());
    single_text = *t;
  }

  std::vector<EncodedFrame> out;
  for (int f : frames) {
    PixelBuffer px;
    px.width = width;
    px.height = height;
    px.bit_depth = o.bit_depth;
    EncodedFrame ef;
    ef.frame = f;
    if (!mono) {
      px.channels = 3;
      px.bytes.resize(plane * 3);
      if (!image.getOutputData(px.bytes.data(), px.bytes.size(), o.bit_depth, static_cast<unsigned long>(f), 0)) {
        return invalid(fmt::format("DCMTK could not render colour frame {}", f));
      }
      ef.window = "color";
    } else if (windows.size() == 1) {
      px.bytes.resize(plane);
      Status s = RenderMono(image, f, o, exact && windows[0].kind != Window::Kind::kNone && !IsVoiLut(single_text),
                            single_c, single_w, px.bytes.data());
      if (!s.ok()) return invalid(s.message());
      ef.window = single_text;
    } else {
      px.channels = 3;
      px.bytes.resize(plane * 3);
      std::vector<uint8_t> chan(plane);
      const size_t sample = o.bit_depth / 8;
      for (size_t k = 0; k < 3; ++k) {
        double cc = 0, ww = 0;
        Result<std::string> t = ApplyWindow(image, windows[k], fn, &cc, &ww);
        if (!t.ok()) return invalid(t.status().message());
        Status s = RenderMono(image, f, o, exact && windows[k].kind != Window::Kind::kNone && !IsVoiLut(*t), cc, ww,
                              chan.data());
        if (!s.ok()) return invalid(s.message());
        for (size_t i = 0, n = plane / sample; i < n; ++i) {
          std::memcpy(&px.bytes[(i * 3 + k) * sample], &chan[i * sample], sample);
        }
        ef.window += (k ? "," : "") + *t;
      }
    }
    Status s = Finish(std::move(px), o, &ef);
    if (!s.ok()) return invalid(s.message());
    out.push_back(std::move(ef));
  }
  return out;
}

}  // namespace medpipe
