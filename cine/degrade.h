// Synthetic quality failures for cines: Gaussian noise, motion blur and
// contrast reduction, alone or combined, with OpenCV.
//
// A Degradation is drawn once per clip from a seed and applied to every frame
// of it, so a clip degrades as a whole (as a bad probe or setting would).
// Only the noise differs between frames: a fresh realisation of the same
// sigma, seeded by (the draw's noise seed, the frame index). Everything is
// deterministic for a seed on every platform: the draw uses splitmix64, not
// std:: distributions (whose output differs between standard libraries), and
// the noise OpenCV's own cv::RNG.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "util/status.h"

namespace medpipe {

// What may be drawn. Fractions are of the intensity range (255 for 8-bit).
struct DegradeRanges {
  double noise_min = 0.2, noise_max = 0.4;        // Gaussian sigma, fraction of the range
  int blur_min = 5, blur_max = 9;                 // line kernel length in px; odd lengths only
  double contrast_min = 0.3, contrast_max = 0.7;  // reduction toward the mean
  // Drawn with equal chances: "noise", "blur", "contrast", "combined" (two
  // or three of the others, each subset equally likely).
  std::vector<std::string> kinds = {"noise", "blur", "contrast", "combined"};
};

// Checks ranges and kind names (min <= max, fractions in [0, 1], a blur
// range holding an odd length >= 3, at least one known kind).
Status ValidateDegradeRanges(const DegradeRanges& ranges);

struct Degradation {
  std::string kind;  // the kind drawn
  bool noise = false;
  double noise_sigma = 0;  // fraction of the range
  bool blur = false;
  int blur_kernel = 0;      // odd length in px
  double blur_angle = 0;    // degrees, [0, 180)
  bool contrast = false;
  double contrast_reduction = 0;  // 0 keeps the contrast, 1 flattens to the mean
  uint64_t noise_seed = 0;
};

// REQUIRES: ValidateDegradeRanges(ranges).ok().
Degradation DrawDegradation(const DegradeRanges& ranges, uint64_t seed);

// E.g. "combined: contrast reduction=0.452; motion blur kernel=7px angle=23.4deg;
// gaussian noise sigma=0.312 of range": for DerivationDescription.
std::string DescribeDegradation(const Degradation& d);

// The motion-blur kernel: a straight line of exactly `length` taps (an
// 8-connected digital line whose longer axis spans `length` px) through the
// centre of a length x length matrix at `angle_deg`, each tap 1/length.
// REQUIRES: length odd and >= 1.
cv::Mat MotionBlurKernel(int length, double angle_deg);

// Applies `d` to frame `index` (CV_8UC1 or CV_8UC3): contrast first (toward
// the frame's mean over all channels), then the blur (reflected borders),
// then the noise, so that the noise is not smoothed away and its sigma stays
// the stated fraction; rounded and saturated back to 8 bits.
cv::Mat DegradeFrame(const Degradation& d, const cv::Mat& frame, size_t index);

}  // namespace medpipe
