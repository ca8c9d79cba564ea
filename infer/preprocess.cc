#include "infer/preprocess.h"

#include <fmt/format.h>
#include <unistd.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdio>

#include "dicom/convert.h"

namespace medpipe {

Result<PreprocessOptions> PreprocessPreset(const std::string& name) {
  PreprocessOptions o;
  o.preset = name;
  if (name == "xrv") {
    o.channels = 1;
    o.scale_lo = -1024, o.scale_hi = 1024;
    o.mean = {0}, o.std = {1};
  } else if (name == "imagenet") {
    o.channels = 3;
    o.scale_lo = 0, o.scale_hi = 1;
    o.mean = {0.485f, 0.456f, 0.406f}, o.std = {0.229f, 0.224f, 0.225f};
  } else {
    return Status::Invalid("unknown preset '" + name + "' (expected xrv or imagenet)");
  }
  return o;
}

Status ValidatePreprocess(const PreprocessOptions& o) {
  if (o.size < 8 || o.size > 4096) return Status::Invalid("size must be within 8..4096");
  if (o.channels != 1 && o.channels != 3) return Status::Invalid("channels must be 1 or 3");
  if (o.mean.size() != static_cast<size_t>(o.channels) || o.std.size() != static_cast<size_t>(o.channels)) {
    return Status::Invalid(fmt::format("mean and std need {} value(s), one per channel", o.channels));
  }
  for (float s : o.std) {
    if (!(s > 0)) return Status::Invalid("std values must be positive");
  }
  return Status::OK();
}

Status Preprocess(const cv::Mat& image, const PreprocessOptions& o, float* out) {
  if (image.empty()) return Status::Invalid("empty image");
  if (image.depth() != CV_8U && image.depth() != CV_16U) return Status::Invalid("only 8- and 16-bit images");
  cv::Mat src;
  const int ch = image.channels();
  if (o.channels == 1) {
    if (ch == 1) src = image;
    else if (ch == 3) cv::cvtColor(image, src, cv::COLOR_BGR2GRAY);
    else if (ch == 4) cv::cvtColor(image, src, cv::COLOR_BGRA2GRAY);
    else return Status::Invalid(fmt::format("{} channels", ch));
  } else {
    if (ch == 1) cv::cvtColor(image, src, cv::COLOR_GRAY2RGB);
    else if (ch == 3) cv::cvtColor(image, src, cv::COLOR_BGR2RGB);
    else if (ch == 4) cv::cvtColor(image, src, cv::COLOR_BGRA2RGB);
    else return Status::Invalid(fmt::format("{} channels", ch));
  }
  // [0, max] -> [lo, hi] as floats, before cropping and resizing (the order
  // torchxrayvision uses, so the area averages are taken on the same values).
  const double max = image.depth() == CV_16U ? 65535.0 : 255.0;
  cv::Mat f;
  src.convertTo(f, CV_32F, (o.scale_hi - o.scale_lo) / max, o.scale_lo);
  if (o.center_crop && f.cols != f.rows) {
    // XRayCenterCrop: the centred square, offsets rounded down.
    const int side = std::min(f.cols, f.rows);
    f = f(cv::Rect((f.cols - side) / 2, (f.rows - side) / 2, side, side));
  }
  cv::Mat resized;
  if (f.cols == o.size && f.rows == o.size) resized = f;
  else cv::resize(f, resized, cv::Size(o.size, o.size), 0, 0, cv::INTER_AREA);
  if (!resized.isContinuous()) resized = resized.clone();
  // HWC -> CHW, with the per-channel mean and std.
  const int plane = o.size * o.size;
  for (int c = 0; c < o.channels; ++c) {
    const float mean = o.mean[c], inv_std = 1.0f / o.std[c];
    float* dst = out + static_cast<size_t>(c) * plane;
    const float* s = resized.ptr<float>() + c;
    for (int i = 0; i < plane; ++i) dst[i] = (s[static_cast<size_t>(i) * o.channels] - mean) * inv_std;
  }
  return Status::OK();
}

Status DecodeImageBytes(const std::string& bytes, cv::Mat* image) {
  if (bytes.empty()) return Status::Invalid("empty file");
  if (LooksLikeDicom(std::string_view(bytes).substr(0, 256))) {
    // dicom/convert reads files, so the bytes go through a private temporary
    // file; PNG level 0 keeps the round trip to a copy.
    char tmpl[] = "/tmp/medpipe-dcm-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    if (fd < 0) return Status::IOError("cannot create a temporary file for a DICOM upload");
    FILE* f = ::fdopen(fd, "wb");
    const bool written = f && std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    if (f) std::fclose(f);
    Status s = written ? Status::OK() : Status::IOError("cannot write a temporary DICOM file");
    if (s.ok()) s = DecodeDicomFile(tmpl, image);
    ::unlink(tmpl);
    return s;
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const bool png = bytes.size() >= 8 && p[0] == 0x89 && p[1] == 'P' && p[2] == 'N' && p[3] == 'G';
  const bool jpeg = bytes.size() >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF;
  if (!png && !jpeg) return Status::Invalid("not a PNG, JPEG or DICOM file (by content)");
  cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
  cv::imdecode(buf, cv::IMREAD_UNCHANGED, image);
  if (image->empty()) return Status::Invalid(png ? "corrupt or truncated PNG" : "corrupt or truncated JPEG");
  return Status::OK();
}

Status DecodeImageFile(const fs::path& path, cv::Mat* image) {
  std::string bytes;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Status::Invalid("cannot open " + path.filename().string());
  char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) {
    bytes.append(chunk, n);
    if (bytes.size() >= 256 && LooksLikeDicom(std::string_view(bytes).substr(0, 256))) {
      std::fclose(f);
      return DecodeDicomFile(path, image);
    }
  }
  std::fclose(f);
  if (LooksLikeDicom(bytes)) return DecodeDicomFile(path, image);
  return DecodeImageBytes(bytes, image);
}

Status DecodeDicomFile(const fs::path& path, cv::Mat* image) {
  ConvertOptions c;
  c.window = "file";
  c.png_level = 0;
  c.frames = {0};
  Result<std::vector<EncodedFrame>> frames = ConvertDicomFile(path, c, nullptr);
  if (!frames.ok()) return Status::Invalid(frames.status().message());
  if (frames->empty()) return Status::Invalid("the DICOM file has no image frame");
  const std::string& png = (*frames)[0].bytes;
  cv::Mat buf(1, static_cast<int>(png.size()), CV_8U, const_cast<char*>(png.data()));
  cv::imdecode(buf, cv::IMREAD_UNCHANGED, image);
  if (image->empty()) return Status::Invalid("the rendered DICOM frame did not decode");
  return Status::OK();
}

}  // namespace medpipe
