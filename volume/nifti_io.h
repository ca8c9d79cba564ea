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
#include "volume/volume.h"

namespace medpipe {

struct NiftiVolume {
  Volume volume;  // the stored values as float, unscaled; spacing from pixdim[1..3]
  // The header's scl_slope/scl_inter; slope 0 means "not set" in NIfTI and
  // is reported here as 1 with `has_scaling` false.
  double slope = 1, intercept = 0;
  bool has_scaling = false;
  std::string datatype;  // nifticlib's name of the stored type, e.g. "INT16"
};

// Reads a 3-D volume (a 4-D file with one time point is accepted). Anything
// else, or an unreadable or truncated file, is kInvalid naming the file.
Result<NiftiVolume> ReadNifti(const fs::path& path);

// The bytes of a NIfTI-1 file holding `v` as FLOAT32 with its spacing in
// pixdim, an identity-scaled header (scl_slope 1) and a qform of the spacing
// (RAS axes, origin 0). `gzip`: the .nii.gz form. The file is written by
// nifticlib to a private temporary path and read back, since nifticlib
// writes only to files; the caller stores the bytes where it wants.
Result<std::string> NiftiBytes(const Volume& v, bool gzip);

}  // namespace medpipe
