#include "volume/ops.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "dataset/image_io.h"

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
Volume Resample(const Volume& v, const std::array<double, 3>& spacing) {
  const int ox = ResampledSize(v.nx, v.spacing[0], spacing[0]);
  const int oy = ResampledSize(v.ny, v.spacing[1], spacing[1]);
  const int oz = ResampledSize(v.nz, v.spacing[2], spacing[2]);
  Volume out;
  out.nx = ox, out.ny = oy, out.nz = oz;
  out.spacing = {v.spacing[0] * v.nx / ox, v.spacing[1] * v.ny / oy, v.spacing[2] * v.nz / oz};
  out.data.assign(out.size(), 0.0f);

  // Output slice k reads input slices z0 and z0 + 1; each is resized in plane
  // once and kept while consecutive output slices need it.
  std::map<int, cv::Mat> cache;
  auto plane = [&](int z) -> const cv::Mat& {
    auto it = cache.find(z);
    if (it != cache.end()) return it->second;
    cv::Mat src(v.ny, v.nx, CV_32F, const_cast<float*>(v.data.data() + static_cast<size_t>(z) * v.slice_size()));
    cv::Mat dst;
    if (ox == v.nx && oy == v.ny) {
      dst = src.clone();
    } else {
      cv::resize(src, dst, cv::Size(ox, oy), 0, 0, cv::INTER_LINEAR);
    }
    return cache.emplace(z, std::move(dst)).first->second;
  };
  const double scale = static_cast<double>(v.nz) / oz;
  for (int k = 0; k < oz; ++k) {
    double src = std::clamp((k + 0.5) * scale - 0.5, 0.0, static_cast<double>(v.nz - 1));
    int z0 = static_cast<int>(std::floor(src));
    int z1 = std::min(z0 + 1, v.nz - 1);
    float w = static_cast<float>(src - z0);
    // Drop slices no later output needs (positions only grow with k).
    for (auto it = cache.begin(); it != cache.end() && it->first < z0;) it = cache.erase(it);
    const cv::Mat& a = plane(z0);
    const cv::Mat& b = plane(z1);
    float* dst = out.data.data() + static_cast<size_t>(k) * out.slice_size();
    const float* pa = a.ptr<float>();
    const float* pb = b.ptr<float>();
    for (size_t i = 0; i < out.slice_size(); ++i) dst[i] = pa[i] + w * (pb[i] - pa[i]);
  }
  return out;
}

Volume CropOrPad(const Volume& v, int nx, int ny, int nz, float fill) {
  Volume out;
  out.nx = nx, out.ny = ny, out.nz = nz;
  out.spacing = v.spacing;
  out.data.assign(out.size(), fill);
  // Offsets: source start (crop) and destination start (pad) per axis.
  auto offsets = [](int in, int o, int* src, int* dst, int* len) {
    *src = in > o ? (in - o) / 2 : 0;
    *dst = o > in ? (o - in) / 2 : 0;
    *len = std::min(in, o);
  };
  int sx, dx, lx, sy, dy, ly, sz, dz, lz;
  offsets(v.nx, nx, &sx, &dx, &lx);
  offsets(v.ny, ny, &sy, &dy, &ly);
  offsets(v.nz, nz, &sz, &dz, &lz);
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

Tensor4 WindowChannels(const Volume& hu, const std::vector<Window>& windows, float lo, float hi) {
  Tensor4 t;
  t.channels = windows.empty() ? 1 : static_cast<int>(windows.size());
  t.nz = hu.nz, t.ny = hu.ny, t.nx = hu.nx;
  t.data.resize(static_cast<size_t>(t.channels) * hu.size());
  for (int c = 0; c < t.channels; ++c) {
    double low = windows.empty() ? lo : windows[c].center - windows[c].width / 2;
    double width = windows.empty() ? static_cast<double>(hi) - lo : windows[c].width;
    const float a = static_cast<float>(1.0 / width), b = static_cast<float>(-low / width);
    float* dst = t.data.data() + static_cast<size_t>(c) * hu.size();
    for (size_t i = 0; i < hu.size(); ++i) dst[i] = std::clamp(hu.data[i] * a + b, 0.0f, 1.0f);
  }
  return t;
}

void ApplyClahe(Tensor4& t, double clip_limit, int tile_grid) {
  // One CLAHE object per call: cv::CLAHE keeps scratch buffers and is not
  // safe to share between threads.
  cv::Ptr<cv::CLAHE> clahe = cv::createCLAHE(clip_limit, cv::Size(tile_grid, tile_grid));
  const size_t plane = static_cast<size_t>(t.nx) * t.ny;
  cv::Mat u8, eq;
  for (size_t s = 0; s < static_cast<size_t>(t.channels) * t.nz; ++s) {
    cv::Mat f(t.ny, t.nx, CV_32F, t.data.data() + s * plane);
    f.convertTo(u8, CV_8U, 255.0);  // saturating, rounded
    clahe->apply(u8, eq);
    eq.convertTo(f, CV_32F, 1.0 / 255.0);
  }
}

void ToSymmetricRange(Tensor4& t) {
  for (float& x : t.data) x = 2 * x - 1;
}

std::string NpyBytes(const Tensor4& t, NpyType type) {
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}, {}, {}, {}), }}",
                                 type == NpyType::kFloat16 ? "<f2" : "|u1", t.channels, t.nz, t.ny, t.nx);
  // Format 1.0: magic, version, a 2-byte header length, and the header padded
  // with spaces and a newline so the data starts on a 64-byte boundary.
  size_t total = 10 + dict.size() + 1;
  size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(dict.size() & 0xff));
  out.push_back(static_cast<char>(dict.size() >> 8));
  out += dict;
  const size_t plane = static_cast<size_t>(t.nx) * t.ny;
  const size_t elem = type == NpyType::kFloat16 ? 2 : 1;
  size_t base = out.size();
  out.resize(base + t.data.size() * elem);
  cv::Mat dst;
  // Slice by slice, so an int-sized cv::Mat covers any volume. float16 bytes
  // are the host's, which is little-endian on every platform medpipe builds on.
  for (size_t s = 0; s * plane < t.data.size(); ++s) {
    cv::Mat f(t.ny, t.nx, CV_32F, const_cast<float*>(t.data.data() + s * plane));
    if (type == NpyType::kFloat16) {
      f.convertTo(dst, CV_16F);
    } else {
      f.convertTo(dst, CV_8U, 255.0);
    }
    std::memcpy(&out[base + s * plane * elem], dst.data, plane * elem);
  }
  return out;
}

namespace {

uint8_t ToByte(float v, float lo, float hi) {
  float u = (v - lo) / (hi - lo) * 255.0f;
  return static_cast<uint8_t>(std::lround(std::clamp(u, 0.0f, 255.0f)));
}

PngOptions FastPng() {
  PngOptions o;
  o.compression_level = 1;
  o.filters = 0x08;  // NONE: fastest and small on CT (see dicom/convert.h)
  return o;
}

}  // namespace

Result<std::string> PreviewStrip(const Tensor4& t, int slices, float lo, float hi) {
  slices = std::clamp(slices, 1, std::max(1, t.nz));
  const int w = t.nx * slices, h = t.ny * t.channels;
  std::vector<uint8_t> px(static_cast<size_t>(w) * h);
  const size_t vol = static_cast<size_t>(t.nx) * t.ny * t.nz;
  for (int c = 0; c < t.channels; ++c) {
    for (int i = 0; i < slices; ++i) {
      int z = std::min(t.nz - 1, static_cast<int>((i + 0.5) * t.nz / slices));
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
