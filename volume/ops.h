// Volume processing for CT training tensors. Pure functions over Volume;
// every one may run on many threads at once.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/status.h"
#include "volume/volume.h"

namespace medpipe {

struct HuStats {
  float min = 0, max = 0;  // over the whole volume, after slope/intercept, before clipping
};

// v = v * slope + intercept, then clipped to [lo, hi]. Returns the range
// seen before clipping. REQUIRES: lo < hi.
HuStats ApplyRescaleAndClip(Volume& v, double slope, double intercept, float lo, float hi);

// The output size along an axis of n voxels at spacing `from` resampled to
// spacing `to`: round(n * from / to), at least 1.
int ResampledSize(int n, double from, double to);

// Trilinear resampling to `spacing` (mm along x, y, z). Sizes follow
// ResampledSize; the new spacing stored is the exact n * from / size, so the
// field of view is kept. Sample positions use the pixel-area convention
// (output voxel k samples input coordinate (k + 0.5) * n / size - 0.5,
// clamped to the edge voxels): OpenCV's INTER_LINEAR and
// scipy.ndimage.zoom(order=1, grid_mode=True, mode='nearest') alike.
Volume Resample(const Volume& v, const std::array<double, 3>& spacing);

// The slices of Resample(v, spacing) one at a time, for callers that stream
// a volume through without holding the resampled copy. Holds at most the two
// resized input slices that bracket the current output slice. Without a
// spacing, the slices of `v` itself. `v` must outlive the resampler.
class SliceResampler {
 public:
  SliceResampler(const Volume& v, const std::optional<std::array<double, 3>>& spacing);
  ~SliceResampler();
  int nx() const { return ox_; }
  int ny() const { return oy_; }
  int nz() const { return oz_; }
  std::array<double, 3> spacing() const { return spacing_; }
  // Writes output slice k (nx * ny values) to `out`.
  // REQUIRES: 0 <= k < nz, and k not below the previous call's k.
  void Slice(int k, float* out);

 private:
  struct Cache;
  const Volume& v_;
  int ox_, oy_, oz_;
  std::array<double, 3> spacing_;
  std::unique_ptr<Cache> cache_;
};

// Centre crop or pad to nx x ny x nz, padding with `fill`. Along each axis
// the kept (or placed) block starts at floor((in - out) / 2) (or
// floor((out - in) / 2)). Spacing is unchanged.
Volume CropOrPad(const Volume& v, int nx, int ny, int nz, float fill);

// Where CropOrPad takes an axis of `in` voxels to `out`: the first `len`
// voxels from `src` go to `dst`.
struct AxisCrop {
  int src = 0, dst = 0, len = 0;
};
AxisCrop CropAxis(int in, int out);

struct Window {
  std::string name;  // e.g. "lung" or "40/400"
  double center = 0, width = 1;
};
// Parses a preset (lung -600/1500, mediastinum 40/400, bone 400/1800,
// soft_tissue 50/350, brain 40/80) or "C/W" with W > 0.
Result<Window> ParseWindow(const std::string& text);

// One channel per window: clamp((HU - (C - W/2)) / W, 0, 1). With no windows,
// one channel of (HU - lo) / (hi - lo) over the HU range [lo, hi].
Tensor4 WindowChannels(const Volume& hu, const std::vector<Window>& windows, float lo, float hi);
// The same for `n` values of channel `c` (c = 0 without windows).
void WindowValues(const float* hu, size_t n, const std::vector<Window>& windows, size_t c, float lo, float hi,
                  float* out);

// CLAHE (OpenCV createCLAHE) on every axial slice of every channel, in
// place. Values in [0, 1] are quantised to 8 bits (round(v * 255)) for it,
// as cv2 requires 8 or 16 bits and a 16-bit histogram per tile costs 256x
// the work; the result is the 8-bit output / 255.
void ApplyClahe(Tensor4& t, double clip_limit, int tile_grid);
// The same, one w x h slice at a time. Not thread-safe: one per thread.
class SliceClahe {
 public:
  SliceClahe(double clip_limit, int tile_grid);
  ~SliceClahe();
  void Apply(float* slice, int w, int h);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Maps [0, 1] values to [-1, 1] in place (2v - 1).
void ToSymmetricRange(Tensor4& t);

// The .npy (format 1.0) bytes of `t`, shape (C, D, H, W), little-endian
// float16 ("<f2", round to nearest even) or uint8 ("|u1", round(v * 255) of
// values in [0, 1]).
enum class NpyType { kFloat16, kUint8 };
std::string NpyBytes(const Tensor4& t, NpyType type);
// The header alone (magic to newline), and the element conversion, for
// writers that fill the data part slice by slice.
std::string NpyHeader(int c, int d, int h, int w, NpyType type);
size_t NpyElementSize(NpyType type);
void ToNpyElements(const float* values, int w, int h, NpyType type, char* dst);

// A PNG strip: `slices` evenly spaced axial slices (side by side) per
// channel (one row per channel), 8-bit grey of values in [lo, hi].
Result<std::string> PreviewStrip(const Tensor4& t, int slices, float lo, float hi);
// The axial slices PreviewStrip shows for a depth of `nz`.
std::vector<int> PreviewSliceIndices(int nz, int slices);

// One axial slice z of up to 3 channels as an 8-bit PNG (grey for 1
// channel, RGB in channel order for 3), values in [lo, hi].
Result<std::string> SlicePng(const Tensor4& t, int z, float lo, float hi);

}  // namespace medpipe
