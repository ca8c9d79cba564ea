#include "volume/ops.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "dataset/image_io.h"
#include "image/png.h"

// OpenCV headers as system includes (see KNOWN.md): included through the
// target's SYSTEM include path.
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace medpipe {

HuStats ApplyRescaleAndClip(Volume& v, double slope, double intercept, float lo, float hi) {
  HuStats s;
  if (v.data.empty()) return s;
  const float a = static_cast<float>(slope), b = static_cast<float>(intercept);
  float mn = std::numeric_limits<float>::infinity(), mx = -mn;
  for (float& x : v.data) {
    float hu = x * a + b;
    mn = std::min(mn, hu);
    mx = std::max(mx, hu);
    x = std::clamp(hu, lo, hi);
  }
  s.min = mn;
  s.max = mx;
  return s;
}

int ResampledSize(int n, double from, double to) {
  return std::max(1, static_cast<int>(std::lround(n * from / to)));
}

// In-plane: OpenCV's bilinear resize of each axial slice. Along z: OpenCV
// has no 3-D resize (cv::resize and cv::remap are 2-D), so the z part of the
// separable trilinear interpolation is done here, as a weighted sum of the
// two resized slices that bracket each output position. The same pixel-area
// convention is used on all three axes, so the result is one trilinear
// interpolation, not two differently aligned ones.
struct SliceResampler::Cache {
  std::map<int, cv::Mat> planes;  // resized input slices by input z
};

SliceResampler::SliceResampler(const Volume& v, const std::optional<std::array<double, 3>>& spacing)
    : v_(v), cache_(new Cache) {
  if (spacing) {
    ox_ = ResampledSize(v.nx, v.spacing[0], (*spacing)[0]);
    oy_ = ResampledSize(v.ny, v.spacing[1], (*spacing)[1]);
    oz_ = ResampledSize(v.nz, v.spacing[2], (*spacing)[2]);
    spacing_ = {v.spacing[0] * v.nx / ox_, v.spacing[1] * v.ny / oy_, v.spacing[2] * v.nz / oz_};
  } else {
    ox_ = v.nx, oy_ = v.ny, oz_ = v.nz;
    spacing_ = v.spacing;
  }
}

SliceResampler::~SliceResampler() = default;

void SliceResampler::Slice(int k, float* out) {
  const size_t n = static_cast<size_t>(ox_) * oy_;
  if (ox_ == v_.nx && oy_ == v_.ny && oz_ == v_.nz) {
    std::memcpy(out, v_.data.data() + static_cast<size_t>(k) * n, n * sizeof(float));
    return;
  }
  auto plane = [&](int z) -> const cv::Mat& {
    auto it = cache_->planes.find(z);
    if (it != cache_->planes.end()) return it->second;
    cv::Mat src(v_.ny, v_.nx, CV_32F, const_cast<float*>(v_.data.data() + static_cast<size_t>(z) * v_.slice_size()));
    cv::Mat dst;
    if (ox_ == v_.nx && oy_ == v_.ny) {
      dst = src.clone();
    } else {
      cv::resize(src, dst, cv::Size(ox_, oy_), 0, 0, cv::INTER_LINEAR);
    }
    return cache_->planes.emplace(z, std::move(dst)).first->second;
  };
  const double scale = static_cast<double>(v_.nz) / oz_;
  double src = std::clamp((k + 0.5) * scale - 0.5, 0.0, static_cast<double>(v_.nz - 1));
  int z0 = static_cast<int>(std::floor(src));
  int z1 = std::min(z0 + 1, v_.nz - 1);
  float w = static_cast<float>(src - z0);
  // Drop slices no later output needs (positions only grow with k).
  for (auto it = cache_->planes.begin(); it != cache_->planes.end() && it->first < z0;) {
    it = cache_->planes.erase(it);
  }
  const float* pa = plane(z0).ptr<float>();
  const float* pb = plane(z1).ptr<float>();
  for (size_t i = 0; i < n; ++i) out[i] = pa[i] + w * (pb[i] - pa[i]);
}

Volume Resample(const Volume& v, const std::array<double, 3>& spacing) {
  SliceResampler r(v, spacing);
  Volume out;
  out.nx = r.nx(), out.ny = r.ny(), out.nz = r.nz();
  out.spacing = r.spacing();
  out.data.resize(out.size());
  for (int k = 0; k < out.nz; ++k) r.Slice(k, out.data.data() + static_cast<size_t>(k) * out.slice_size());
  return out;
}

AxisCrop CropAxis(int in, int out) {
  AxisCrop a;
  a.src = in > out ? (in - out) / 2 : 0;
  a.dst = out > in ? (out - in) / 2 : 0;
  a.len = std::min(in, out);
  return a;
}

Volume CropOrPad(const Volume& v, int nx, int ny, int nz, float fill) {
  Volume out;
  out.nx = nx, out.ny = ny, out.nz = nz;
  out.spacing = v.spacing;
  out.data.assign(out.size(), fill);
  const AxisCrop cx = CropAxis(v.nx, nx), cy = CropAxis(v.ny, ny), cz = CropAxis(v.nz, nz);
  const int sx = cx.src, dx = cx.dst, lx = cx.len, sy = cy.src, dy = cy.dst, ly = cy.len, sz = cz.src, dz = cz.dst,
            lz = cz.len;
  for (int z = 0; z < lz; ++z) {
    for (int y = 0; y < ly; ++y) {
      const float* src = &v.data[(static_cast<size_t>(sz + z) * v.ny + sy + y) * v.nx + sx];
      float* dst = &out.data[(static_cast<size_t>(dz + z) * ny + dy + y) * nx + dx];
      std::memcpy(dst, src, static_cast<size_t>(lx) * sizeof(float));
    }
  }
  return out;
}

Result<Window> ParseWindow(const std::string& text) {
  static const std::map<std::string, std::pair<double, double>> kPresets = {
      {"lung", {-600, 1500}}, {"mediastinum", {40, 400}}, {"bone", {400, 1800}},
      {"soft_tissue", {50, 350}}, {"brain", {40, 80}},
  };
  if (auto it = kPresets.find(text); it != kPresets.end()) {
    return Window{text, it->second.first, it->second.second};
  }
  size_t slash = text.find('/');
  if (slash != std::string::npos) {
    char* end = nullptr;
    std::string c = text.substr(0, slash), w = text.substr(slash + 1);
    double center = std::strtod(c.c_str(), &end);
    bool ok = !c.empty() && *end == '\0';
    double width = std::strtod(w.c_str(), &end);
    ok = ok && !w.empty() && *end == '\0' && std::isfinite(center) && std::isfinite(width) && width > 0;
    if (ok) return Window{text, center, width};
  }
  return Status::Config(fmt::format(
      "'{}' is not a window: use lung, mediastinum, bone, soft_tissue, brain or C/W with W > 0", text));
}

void WindowValues(const float* hu, size_t n, const std::vector<Window>& windows, size_t c, float lo, float hi,
                  float* out) {
  double low = windows.empty() ? lo : windows[c].center - windows[c].width / 2;
  double width = windows.empty() ? static_cast<double>(hi) - lo : windows[c].width;
  const float a = static_cast<float>(1.0 / width), b = static_cast<float>(-low / width);
  for (size_t i = 0; i < n; ++i) out[i] = std::clamp(hu[i] * a + b, 0.0f, 1.0f);
}

Tensor4 WindowChannels(const Volume& hu, const std::vector<Window>& windows, float lo, float hi) {
  Tensor4 t;
  t.channels = windows.empty() ? 1 : static_cast<int>(windows.size());
  t.nz = hu.nz, t.ny = hu.ny, t.nx = hu.nx;
  t.data.resize(static_cast<size_t>(t.channels) * hu.size());
  for (int c = 0; c < t.channels; ++c) {
    WindowValues(hu.data.data(), hu.size(), windows, static_cast<size_t>(c), lo, hi,
                 t.data.data() + static_cast<size_t>(c) * hu.size());
  }
  return t;
}

// One CLAHE object per SliceClahe: cv::CLAHE keeps scratch buffers and is
// not safe to share between threads.
struct SliceClahe::Impl {
  cv::Ptr<cv::CLAHE> clahe;
  cv::Mat u8, eq;
};

SliceClahe::SliceClahe(double clip_limit, int tile_grid) : impl_(new Impl) {
  impl_->clahe = cv::createCLAHE(clip_limit, cv::Size(tile_grid, tile_grid));
}

SliceClahe::~SliceClahe() = default;

void SliceClahe::Apply(float* slice, int w, int h) {
  cv::Mat f(h, w, CV_32F, slice);
  f.convertTo(impl_->u8, CV_8U, 255.0);  // saturating, rounded
  impl_->clahe->apply(impl_->u8, impl_->eq);
  impl_->eq.convertTo(f, CV_32F, 1.0 / 255.0);
}

void ApplyClahe(Tensor4& t, double clip_limit, int tile_grid) {
  SliceClahe clahe(clip_limit, tile_grid);
  const size_t plane = static_cast<size_t>(t.nx) * t.ny;
  for (size_t s = 0; s < static_cast<size_t>(t.channels) * t.nz; ++s) clahe.Apply(t.data.data() + s * plane, t.nx, t.ny);
}

void ToSymmetricRange(Tensor4& t) {
  for (float& x : t.data) x = 2 * x - 1;
}

std::string NpyHeader(int c, int d, int h, int w, NpyType type) {
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}, {}, {}, {}), }}",
                                 type == NpyType::kFloat16 ? "<f2" : "|u1", c, d, h, w);
  // Format 1.0: magic, version, a 2-byte header length, and the header padded
  // with spaces and a newline so the data starts on a 64-byte boundary.
  size_t total = 10 + dict.size() + 1;
  size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(dict.size() & 0xff));
  out.push_back(static_cast<char>(dict.size() >> 8));
  return out + dict;
}

size_t NpyElementSize(NpyType type) { return type == NpyType::kFloat16 ? 2 : 1; }

void ToNpyElements(const float* values, int w, int h, NpyType type, char* dst) {
  // float16 bytes are the host's, which is little-endian on every platform
  // medpipe builds on; OpenCV converts with round to nearest even.
  cv::Mat f(h, w, CV_32F, const_cast<float*>(values));
  cv::Mat out(h, w, type == NpyType::kFloat16 ? CV_16F : CV_8U, dst);
  if (type == NpyType::kFloat16) {
    f.convertTo(out, CV_16F);
  } else {
    f.convertTo(out, CV_8U, 255.0);
  }
}

std::string NpyBytes(const Tensor4& t, NpyType type) {
  std::string out = NpyHeader(t.channels, t.nz, t.ny, t.nx, type);
  const size_t plane = static_cast<size_t>(t.nx) * t.ny, elem = NpyElementSize(type), base = out.size();
  out.resize(base + t.data.size() * elem);
  // Slice by slice, so an int-sized cv::Mat covers any volume.
  for (size_t s = 0; s * plane < t.data.size(); ++s) {
    ToNpyElements(t.data.data() + s * plane, t.nx, t.ny, type, &out[base + s * plane * elem]);
  }
  return out;
}

namespace {

uint8_t ToByte(float v, float lo, float hi) {
  float u = (v - lo) / (hi - lo) * 255.0f;
  return static_cast<uint8_t>(std::lround(std::clamp(u, 0.0f, 255.0f)));
}

// The shared writer's defaults: ISA-L deflate, filter none (the fastest,
// and small on CT; see image/png.h).
PngOptions FastPng() { return PngOptions{}; }

}  // namespace

std::vector<int> PreviewSliceIndices(int nz, int slices) {
  slices = std::clamp(slices, 1, std::max(1, nz));
  std::vector<int> out;
  for (int i = 0; i < slices; ++i) out.push_back(std::min(nz - 1, static_cast<int>((i + 0.5) * nz / slices)));
  return out;
}

Result<std::string> PreviewStrip(const Tensor4& t, int slices, float lo, float hi) {
  const std::vector<int> zs = PreviewSliceIndices(t.nz, slices);
  slices = static_cast<int>(zs.size());
  const int w = t.nx * slices, h = t.ny * t.channels;
  std::vector<uint8_t> px(static_cast<size_t>(w) * h);
  const size_t vol = static_cast<size_t>(t.nx) * t.ny * t.nz;
  for (int c = 0; c < t.channels; ++c) {
    for (int i = 0; i < slices; ++i) {
      int z = zs[static_cast<size_t>(i)];
      const float* src = t.data.data() + c * vol + static_cast<size_t>(z) * t.nx * t.ny;
      for (int y = 0; y < t.ny; ++y) {
        for (int x = 0; x < t.nx; ++x) {
          px[static_cast<size_t>(c * t.ny + y) * w + i * t.nx + x] = ToByte(src[y * t.nx + x], lo, hi);
        }
      }
    }
  }
  return EncodePng(px.data(), w, h, 1, 8, FastPng());
}

Result<std::string> SlicePng(const Tensor4& t, int z, float lo, float hi) {
  if (t.channels != 1 && t.channels != 3) return Status::Invalid("a PNG slice needs 1 or 3 channels");
  const size_t plane = static_cast<size_t>(t.nx) * t.ny, vol = plane * t.nz;
  std::vector<uint8_t> px(plane * t.channels);
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < t.channels; ++c) {
      px[i * t.channels + c] = ToByte(t.data[c * vol + static_cast<size_t>(z) * plane + i], lo, hi);
    }
  }
  return EncodePng(px.data(), t.nx, t.ny, t.channels, 8, FastPng());
}

}  // namespace medpipe
