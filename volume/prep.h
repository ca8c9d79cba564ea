// One CT volume to a training tensor: the order of operations of ctprep,
// kept here so it has no pipeline knowledge and can be benchmarked and
// tested alone.
//
//   stored values -> HU (slope, intercept) -> clip to hu_range
//   -> resample to `spacing` (trilinear) -> centre crop/pad to `shape`
//      (padding with the low end of hu_range)
//   -> one channel per window (or the HU range when none) in [0, 1]
//   -> CLAHE per axial slice (optional) -> [-1, 1] when asked.
//
// Clipping comes before resampling so that interpolation never mixes in
// values outside the range (metal at 3000 HU would otherwise brighten its
// neighbours after clipping).
#pragma once

#include <array>
#include <optional>
#include <vector>

#include "volume/ops.h"

namespace medpipe {

struct PrepOptions {
  float hu_lo = -1000, hu_hi = 400;
  std::optional<std::array<double, 3>> spacing;  // mm along x, y, z; none: keep
  std::optional<std::array<int, 3>> shape;       // voxels along x, y, z; none: keep
  std::vector<Window> windows;
  bool clahe = false;
  double clahe_clip = 2.0;
  int clahe_tiles = 8;
  bool symmetric = false;  // [-1, 1] instead of [0, 1]
  bool keep_hu = false;    // also return the clipped, resampled, cropped HU volume
};

struct PrepResult {
  Tensor4 tensor;
  HuStats hu;  // before clipping
  std::array<double, 3> spacing_before{}, spacing_after{};
  Volume hu_volume;  // only with keep_hu
};

// Consumes `stored` (its memory is reused where it can be). Holds the whole
// float32 tensor: for tests and small volumes; ctprep streams instead.
PrepResult PrepareCt(Volume stored, double slope, double intercept, const PrepOptions& o);

// What PrepareCtStreaming renders, beside the .npy.
struct StreamOutputs {
  bool npy = true;
  NpyType dtype = NpyType::kFloat16;
  int preview_slices = 0;                     // PreviewStrip of this many slices; 0: none
  std::vector<int> (*select_slices)(int nz, const void* arg) = nullptr;  // PNG slices (SlicePng); null: none
  const void* select_arg = nullptr;
};

struct StreamResult {
  HuStats hu;
  std::array<double, 3> spacing_before{}, spacing_after{};
  int channels = 0, nz = 0, ny = 0, nx = 0;
  std::string npy;                                   // NpyBytes of the tensor
  std::string preview_png;                           // PreviewStrip of the tensor
  std::vector<std::pair<int, std::string>> slice_pngs;  // (z, SlicePng)
  Volume hu_volume;                                  // only with keep_hu
};

// PrepareCt's result rendered as files, computed one output slice at a time
// so the float32 tensor is never held: memory is the input volume, the .npy
// bytes and a few slices (plus the HU volume with keep_hu). Its bytes equal
// NpyBytes, PreviewStrip and SlicePng of PrepareCt's tensor.
Result<StreamResult> PrepareCtStreaming(Volume stored, double slope, double intercept, const PrepOptions& o,
                                        const StreamOutputs& want);

}  // namespace medpipe
