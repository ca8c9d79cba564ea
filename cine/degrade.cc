#include "cine/degrade.h"

#include <fmt/format.h>

#include <cmath>

#include <opencv2/imgproc.hpp>

namespace medpipe {

namespace {

uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double Uniform(uint64_t& state) { return static_cast<double>(SplitMix(state) >> 11) * (1.0 / 9007199254740992.0); }
double Between(uint64_t& state, double lo, double hi) { return lo + (hi - lo) * Uniform(state); }
// Uniform integer in [0, n).
uint64_t Below(uint64_t& state, uint64_t n) { return static_cast<uint64_t>(Uniform(state) * static_cast<double>(n)); }

bool KnownKind(const std::string& k) { return k == "noise" || k == "blur" || k == "contrast" || k == "combined"; }

}  // namespace

Status ValidateDegradeRanges(const DegradeRanges& r) {
  if (!(r.noise_min >= 0 && r.noise_min <= r.noise_max && r.noise_max <= 1)) {
    return Status::Invalid(fmt::format("noise sigma range [{}, {}] must satisfy 0 <= min <= max <= 1", r.noise_min,
                                       r.noise_max));
  }
  if (!(r.contrast_min >= 0 && r.contrast_min <= r.contrast_max && r.contrast_max <= 1)) {
    return Status::Invalid(fmt::format("contrast reduction range [{}, {}] must satisfy 0 <= min <= max <= 1",
                                       r.contrast_min, r.contrast_max));
  }
  int lo = r.blur_min % 2 ? r.blur_min : r.blur_min + 1;
  if (r.blur_min < 1 || r.blur_max > 99 || lo > r.blur_max || lo < 3) {
    return Status::Invalid(fmt::format("blur kernel range [{}, {}] must hold an odd length from 3 to 99",
                                       r.blur_min, r.blur_max));
  }
  if (r.kinds.empty()) return Status::Invalid("name at least one degradation kind");
  for (const std::string& k : r.kinds) {
    if (!KnownKind(k)) {
      return Status::Invalid(fmt::format("unknown degradation kind '{}' (noise, blur, contrast, combined)", k));
    }
  }
  return Status::OK();
}

Degradation DrawDegradation(const DegradeRanges& r, uint64_t seed) {
  uint64_t s = seed;
  Degradation d;
  d.kind = r.kinds[Below(s, r.kinds.size())];
  if (d.kind == "noise") {
    d.noise = true;
  } else if (d.kind == "blur") {
    d.blur = true;
  } else if (d.kind == "contrast") {
    d.contrast = true;
  } else {
    // Subsets of two or three effects: masks 3, 5, 6, 7.
    static const int kMasks[] = {3, 5, 6, 7};
    int mask = kMasks[Below(s, 4)];
    d.noise = mask & 1, d.blur = mask & 2, d.contrast = mask & 4;
  }
  // Every parameter is drawn whether used or not, so the draws of one
  // effect do not depend on which others were chosen.
  d.noise_sigma = Between(s, r.noise_min, r.noise_max);
  const int lo = r.blur_min % 2 ? r.blur_min : r.blur_min + 1;
  const int hi = r.blur_max % 2 ? r.blur_max : r.blur_max - 1;
  d.blur_kernel = lo + 2 * static_cast<int>(Below(s, static_cast<uint64_t>((hi - lo) / 2 + 1)));
  d.blur_angle = Between(s, 0.0, 180.0);
  d.contrast_reduction = Between(s, r.contrast_min, r.contrast_max);
  d.noise_seed = SplitMix(s);
  if (!d.noise) d.noise_sigma = 0;
  if (!d.blur) d.blur_kernel = 0, d.blur_angle = 0;
  if (!d.contrast) d.contrast_reduction = 0;
  return d;
}

std::string DescribeDegradation(const Degradation& d) {
  std::string parts;
  auto add = [&](const std::string& s) { parts += (parts.empty() ? "" : "; ") + s; };
  if (d.contrast) add(fmt::format("contrast reduction={:.3f}", d.contrast_reduction));
  if (d.blur) add(fmt::format("motion blur kernel={}px angle={:.1f}deg", d.blur_kernel, d.blur_angle));
  if (d.noise) add(fmt::format("gaussian noise sigma={:.3f} of range", d.noise_sigma));
  return d.kind + ": " + parts;
}

cv::Mat MotionBlurKernel(int length, double angle_deg) {
  cv::Mat k = cv::Mat::zeros(length, length, CV_32F);
  const double half = (length - 1) / 2.0;
  const double a = angle_deg * CV_PI / 180.0;
  double dx = std::cos(a), dy = -std::sin(a);  // image rows grow downwards
  // Scale so that the longer axis spans the whole kernel: the line then has
  // exactly `length` pixels at every angle.
  const double m = std::max(std::abs(dx), std::abs(dy));
  dx = dx / m * half, dy = dy / m * half;
  const int c = length / 2;
  cv::Point p0(c - static_cast<int>(std::lround(dx)), c - static_cast<int>(std::lround(dy)));
  cv::Point p1(c + static_cast<int>(std::lround(dx)), c + static_cast<int>(std::lround(dy)));
  cv::line(k, p0, p1, cv::Scalar(1.0), 1, cv::LINE_8);
  k /= cv::sum(k)[0];
  return k;
}

cv::Mat DegradeFrame(const Degradation& d, const cv::Mat& frame, size_t index) {
  // The contrast reduction is folded into the conversion to float.
  double scale = 1, shift = 0;
  if (d.contrast) {
    cv::Scalar per_channel = cv::mean(frame);
    double mean = 0;
    for (int c = 0; c < frame.channels(); ++c) mean += per_channel[c];
    mean /= frame.channels();
    scale = 1.0 - d.contrast_reduction;
    shift = mean * d.contrast_reduction;
  }
  cv::Mat f;
  frame.convertTo(f, CV_32F, scale, shift);
  if (d.blur) {
    // filter2D keeps only the kernel's non-zero taps (the line's `length`),
    // so it costs no more than summing shifted copies would.
    cv::filter2D(f, f, -1, MotionBlurKernel(d.blur_kernel, d.blur_angle), cv::Point(-1, -1), 0,
                 cv::BORDER_REFLECT_101);
  }
  if (d.noise) {
    // Measured against a table-of-quantiles sampler fused with the add and
    // the rounding: cv::RNG's vectorised fill and an add into 8 bits were
    // faster (13 vs 24 ms CPU per 32-frame 256x256 RGB clip).
    cv::Mat noise(f.size(), f.type());
    cv::RNG rng(d.noise_seed ^ (0x9e3779b97f4a7c15ull * (index + 1)));
    rng.fill(noise, cv::RNG::NORMAL, cv::Scalar::all(0), cv::Scalar::all(d.noise_sigma * 255.0));
    cv::Mat out;
    cv::add(f, noise, out, cv::noArray(), CV_8U);  // rounded and saturated, as convertTo does
    return out;
  }
  cv::Mat out;
  f.convertTo(out, CV_8U);
  return out;
}

}  // namespace medpipe
