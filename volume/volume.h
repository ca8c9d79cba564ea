// The volume library: CT volumes in memory, read from NIfTI-1 (nifticlib) or
// DICOM series (DCMTK), turned into training tensors (HU clip, resampling,
// crop/pad, window channels, CLAHE) and written as .npy, .nii.gz and PNG.
// It knows nothing of pipelines, stages or checkpoints.
//
// Layout contract, shared by every function here: voxel (x, y, z) is at
// data[(z * ny + y) * nx + x], i.e. x varies fastest. This is NIfTI's on-disk
// order and, read as a C array, numpy's (z, y, x) = (D, H, W), so a volume is
// written to .npy without transposing. Spacing is in mm per axis (x, y, z).
#pragma once

#include <array>
#include <cstddef>
#include <vector>

namespace medpipe {

struct Volume {
  int nx = 0, ny = 0, nz = 0;
  std::array<double, 3> spacing = {1, 1, 1};  // mm along x, y, z
  std::vector<float> data;                     // nx * ny * nz values, x fastest

  size_t size() const { return static_cast<size_t>(nx) * ny * nz; }
  size_t slice_size() const { return static_cast<size_t>(nx) * ny; }
  float& at(int x, int y, int z) { return data[(static_cast<size_t>(z) * ny + y) * nx + x]; }
  float at(int x, int y, int z) const { return data[(static_cast<size_t>(z) * ny + y) * nx + x]; }
};

// A multi-channel volume of values in the output range: C x D x H x W.
struct Tensor4 {
  int channels = 0, nz = 0, ny = 0, nx = 0;
  std::vector<float> data;  // channel-major, then as Volume
};

}  // namespace medpipe
