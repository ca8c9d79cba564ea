// ctprep's typed options, their specs and their parsing, kept apart from the
// stage so the stage file stays about running.
#pragma once

#include <regex>
#include <string>
#include <vector>

#include "graph/pipeline.h"
#include "util/fs.h"
#include "volume/dicom_series.h"
#include "volume/ops.h"
#include "volume/orient.h"
#include "volume/prep.h"

namespace medpipe {

struct MetadataColumns {
  std::string name = "VolumeName", slope = "RescaleSlope", intercept = "RescaleIntercept", xy = "XYSpacing",
              z = "ZSpacing";
};

struct CtPrepOptions {
  fs::path volumes, dicoms, metadata_csv, labels_csv;
  MetadataColumns metadata_columns;
  std::string label_key = "VolumeName";
  std::vector<std::string> label_columns;    // empty: by header (stages/label_table.h)
  std::vector<std::string> exclude_columns;  // never labels
  std::regex patient_regex;
  PrepOptions prep;
  NpyType dtype = NpyType::kFloat16;
  bool nifti_output = false;
  int preview_slices = 5;
  bool slices = false;  // 2-D mode: PNG slices instead of the .npy
  int slice_every = 0, central_slices = 0;
  Canonical orientation = Canonical::kRAS;  // every volume is reoriented to this
  AssembleOptions assemble;                 // gantry tilt and uneven steps of DICOM series
  std::string options_hash;  // of every param that changes a volume's outputs
};

std::vector<ParamSpec> CtPrepParamSpecs();
// Checks every value (file:line:col of the param on error) before any work.
Result<CtPrepOptions> ParseCtPrepOptions(const Params& p);

// The volume name of a file or CSV key: the name without .nii.gz or .nii.
// For a file name without either extension, "" (not a volume) unless
// `any_name` (CSV keys such as CT-RATE's AccessionNo "val_1").
std::string VolumeName(const std::string& file_name, bool any_name = false);

// Every number in `text`, e.g. "[0.75, 0.75]" -> {0.75, 0.75}.
std::vector<double> Numbers(const std::string& text);

// The axial slices of 2-D mode for a depth of `nz`: every k-th (from 0), or
// the central n, in increasing order.
std::vector<int> SelectSlices(const CtPrepOptions& o, int nz);

}  // namespace medpipe
