// Volume orientation: the voxel-to-world affine of a volume, the axis
// permutation and flips that bring it closest to a canonical orientation,
// and the reoriented voxels.
//
// World coordinates are NIfTI's RAS+ in mm: x grows from the patient's left
// to the Right, y from posterior to Anterior, z from inferior to Superior.
// DICOM's patient space is LPS+; a DICOM affine is turned into RAS+ by
// negating its first two rows.
//
// The choice of permutation and flips is nibabel's
// (nibabel.orientations.io_orientation, used by as_closest_canonical): the
// polar decomposition of the affine's direction part, then for each voxel
// axis in order the world axis it moves most along, that world axis then
// taken out of the running. So an oblique scan gets exactly the axes nibabel
// gives it.
#pragma once

#include <array>
#include <string>

#include "util/status.h"
#include "volume/volume.h"

namespace medpipe {

// Rows are world x, y, z (RAS+); columns 0..2 are the voxel axes' steps in
// mm, column 3 the world position of voxel (0, 0, 0).
using Affine = std::array<std::array<double, 4>, 3>;

// The canonical orientations a volume can be brought to: the voxel axes
// (x, y, z) = (W, H, D) grow towards R, A, S (nibabel's as_closest_canonical)
// or towards L, P, S (DICOM's patient axes; a radiological axial view).
enum class Canonical { kRAS, kLPS };
const char* CanonicalName(Canonical c);

// For each voxel axis of the input: the canonical axis it becomes and
// whether it is reversed on the way (nibabel's "ornt" array).
struct AxisMap {
  std::array<int, 3> axis{0, 1, 2};
  std::array<bool, 3> flip{false, false, false};
  bool identity() const;
};

// nibabel.orientations.io_orientation of `a` towards `target`. kInvalid when
// the affine's direction part is degenerate (an axis of zero length, or
// rank below 3).
Result<AxisMap> ClosestCanonical(const Affine& a, Canonical target);

// The stored orientation as three letters, nibabel's aff2axcodes: for each
// voxel axis the RAS+ direction it grows towards ("LPS" for a DICOM axial
// stack, "RAS" for a canonical NIfTI). "???" for a degenerate affine.
std::string AxisCodes(const Affine& a);

// `v` reoriented by `m`: output axis m.axis[i] is input axis i, reversed
// when m.flip[i]; spacing follows the axes. The affine of the result, when
// `affine` is given, is updated in place to match the new voxel grid.
Volume Reorient(const Volume& v, const AxisMap& m, Affine* affine = nullptr);

}  // namespace medpipe
