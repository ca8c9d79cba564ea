// The augment stage's transforms, apart from the stage so they can be tested
// on their own: sampling one copy's parameters from (seed, image, copy),
// the affine matrix they make, boxes through that matrix, and the pixels
// (OpenCV).
//
// Coordinates: boxes are COCO [x, y, w, h] in continuous image coordinates,
// where pixel column i covers [i, i+1). The affine matrix of a copy is
// defined in those coordinates (a horizontal flip is u' = W - u, so a box's
// x' = W - x - w exactly); the pixel warp uses the same map shifted by half a
// pixel, where pixel centres sit at integers (OpenCV's convention), so the
// flip is x' = W - 1 - x, what cv::flip does.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace medpipe {

// One transform: applied with probability p; its value uniform in [lo, hi].
struct RandomRange {
  double p = 0;
  double lo = 0, hi = 0;
};

// Every transform's probability and range. Intensity values are fractions
// of the full range (255 or 65535), so one config fits 8- and 16-bit images.
struct AugmentTransforms {
  double hflip = 0.5;                       // probability
  RandomRange rotate{0.5, -10, 10};         // degrees, counterclockwise as displayed
  RandomRange scale{0.5, 0.9, 1.1};         // factor about the centre
  RandomRange translate{0.5, -0.05, 0.05};  // fraction of width / height, per axis
  RandomRange brightness{0.5, -0.1, 0.1};   // added, fraction of full range
  RandomRange contrast{0.5, 0.9, 1.1};      // factor about mid-grey
  RandomRange gamma{0.3, 0.8, 1.2};         // out = in^gamma on [0, 1]
  RandomRange noise{0.2, 0.005, 0.02};      // Gaussian sigma, fraction of full range
  RandomRange blur{0.2, 0.5, 1.0};          // Gaussian sigma in pixels
};

// The sampled parameters of one copy; neutral values where a transform was
// not drawn. Values are rounded to the precision `Describe` prints, so the
// recorded transform string reproduces the copy exactly.
struct CopyPlan {
  bool hflip = false;
  double angle = 0;           // degrees
  double scale = 1;
  double tx = 0, ty = 0;      // fractions of width / height
  double brightness = 0;
  double contrast = 1;
  double gamma = 1;
  double noise_sigma = 0;     // fraction of full range
  double blur_sigma = 0;      // pixels
  uint64_t noise_seed = 0;

  bool geometric() const { return hflip || angle != 0 || scale != 1 || tx != 0 || ty != 0; }
  bool tonal() const { return brightness != 0 || contrast != 1 || gamma != 1; }
  // "hflip,rotate=7.53,scale=1.042,translate=0.0123/-0.031,..." in the fixed
  // order of the fields; "none" when nothing was drawn.
  std::string Describe() const;
};

// Copy `copy` of image `file_name` under `seed`: a std::mt19937_64 (whose
// output sequence the standard fixes) seeded from a SHA-256 of the three,
// turned into uniforms by our own arithmetic (std:: distributions are
// implementation-defined). Every transform draws the same number of values
// whether applied or not, so changing one probability leaves the others'
// values alone.
//
// `redraw` > 0 draws again for the same copy (the augment stage redraws a
// copy whose pixels came out equal to its source); redraw 0 is the first
// draw, unchanged from before redraws existed.
CopyPlan SamplePlan(const AugmentTransforms& t, uint64_t seed, std::string_view file_name, int copy,
                    int redraw = 0);

// True when some transform can apply: a probability above 0 (and, for the
// ranged ones, a range that is not only the neutral value).
bool CanTransform(const AugmentTransforms& t);

// The copy's affine map in continuous (box) coordinates of a width x height
// image: flip, then rotate and scale about the centre, then translate.
cv::Matx23d BoxAffine(const CopyPlan& plan, int width, int height);

struct BoxResult {
  bool kept = false;
  double bbox[4] = {0, 0, 0, 0};  // clipped, when kept
  double visibility = 0;          // clipped area / transformed area
};

// Maps the box's 4 corners through `m`, takes their axis-aligned bounding box
// and clips it to the image. Dropped (kept == false) when the clipped area is
// below `min_visibility` of the unclipped one, or is empty.
BoxResult TransformBox(const cv::Matx23d& m, const double bbox[4], int width, int height, double min_visibility);

// A COCO segmentation through a copy's affine map.
struct SegmentationResult {
  bool polygons = false;  // false: not a list of polygons (RLE, malformed): cannot be transformed
  std::string json;       // the transformed polygons; "" when none is left inside the image
};

// Maps every polygon of `json` (COCO: [[x1, y1, x2, y2, ...], ...] in the
// boxes' continuous coordinates) through `m` and clips it to the
// width x height image. Polygons left with fewer than 3 vertices or no area
// are dropped.
SegmentationResult TransformSegmentation(const cv::Matx23d& m, const std::string& json, int width, int height);

// Scratch images reused from one call to the next (one per thread): at
// 512x512 each step's fresh buffer would cost a round of page faults, as
// glibc returns freed blocks of that size to the kernel.
struct Workspace {
  cv::Mat a, b, noise;
};

// Applies `plan` to `image` (CV_8U or CV_16U, 1 or 3 channels), in this
// order: the affine warp (bilinear, black outside), contrast, brightness and
// gamma as one lookup table, Gaussian blur, Gaussian noise. The result is
// `image` itself (nothing drawn) or one of `ws`'s buffers, valid until the
// next call with `ws`.
const cv::Mat& ApplyPlan(const CopyPlan& plan, const cv::Mat& image, Workspace* ws);
// The same with a fresh result, for tests.
cv::Mat ApplyPlan(const CopyPlan& plan, const cv::Mat& image);

}  // namespace medpipe
