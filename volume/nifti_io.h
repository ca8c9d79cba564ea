// NIfTI-1 reading and writing through nifticlib (Debian libnifti2-dev's
// libniftiio). Both .nii and .nii.gz; the compression follows the name.
//
// Threading: nifticlib keeps only a debug level as global state (set once,
// to silent, before first use); each call reads or writes its own
// nifti_image, so calls may run on many threads at once.
#pragma once

#include <string>

#include "util/fs.h"
#include "util/status.h"
#include "volume/orient.h"
#include "volume/volume.h"

namespace medpipe {

struct NiftiVolume {
  Volume volume;  // the stored values as float, unscaled; spacing from pixdim[1..3]
  // The header's scl_slope/scl_inter; slope 0 means "not set" in NIfTI and
  // is reported here as 1 with `has_scaling` false.
  double slope = 1, intercept = 0;
  bool has_scaling = false;
  std::string datatype;  // nifticlib's name of the stored type, e.g. "INT16"
  // Voxel to RAS+ world, chosen as nibabel's get_best_affine does: the sform
  // when sform_code is set, else the qform when qform_code is set, else
  // Analyze's diag(-dx, dy, dz) (x reversed). `affine_source` says which:
  // "sform", "qform" or "pixdim".
  Affine affine{};
  std::string affine_source;
};

// Reads a 3-D volume (a 4-D file with one time point is accepted). Anything
// else, or an unreadable file, is kInvalid naming the file. A file whose
// voxel data ends early (a cut download, a truncated .nii or .nii.gz) is
// kInvalid saying how many bytes and slices are missing: nifticlib pads a
// short read with zeros and reports success, so the bytes are read and
// counted here, never trusted to it.
Result<NiftiVolume> ReadNifti(const fs::path& path);

// The bytes of a NIfTI-1 file holding `v` as FLOAT32 with its spacing in
// pixdim, an identity-scaled header (scl_slope 1) and a qform of the spacing
// whose voxel axes grow towards `orientation` (RAS: identity rotation; LPS:
// x and y reversed), origin 0. `gzip`: the .nii.gz form. The file is written by
// nifticlib to a private temporary path and read back, since nifticlib
// writes only to files; the caller stores the bytes where it wants.
Result<std::string> NiftiBytes(const Volume& v, bool gzip, Canonical orientation = Canonical::kRAS);

}  // namespace medpipe
