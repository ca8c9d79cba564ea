#include "stages/ctprep_params.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

#include "util/hash.h"

namespace medpipe {

std::vector<ParamSpec> CtPrepParamSpecs() {
  return {
      {"volumes", ParamType::kPath, "", false, "folder of NIfTI volumes (.nii, .nii.gz), searched recursively", {}},
      {"dicoms", ParamType::kPath, "", false, "folder of DICOM files; each SeriesInstanceUID is one volume", {}},
      {"metadata_csv", ParamType::kPath, "", false,
       "CT-RATE metadata CSV (slope, intercept, spacing per volume); else the NIfTI header", {}},
      {"metadata_columns", ParamType::kStringMap,
       "{name: VolumeName, slope: RescaleSlope, intercept: RescaleIntercept, xy_spacing: XYSpacing, "
       "z_spacing: ZSpacing}",
       false, "column names of metadata_csv", {}},
      {"labels_csv", ParamType::kPath, "", false, "multi-label CSV: a key column and columns of 0/1", {}},
      {"label_key", ParamType::kString, "VolumeName", false, "labels_csv column naming the volume (e.g. AccessionNo)", {}},
      {"label_columns", ParamType::kStringList, "[]", false,
       "label columns; empty: every column but label_key and exclude_columns (a column of text alone is left out)",
       {}},
      {"exclude_columns", ParamType::kStringList, "[]", false, "labels_csv columns that are not labels", {}},
      {"patient_pattern", ParamType::kString, "^([A-Za-z]+_[0-9]+)", false,
       "regex on the volume name whose group 1 is the patient (train_1_a_1 -> train_1)", {}},
      {"hu_range", ParamType::kStringList, "[-1000, 400]", false, "HU clip range [low, high]", {}},
      {"normalize", ParamType::kString, "zero_one", false, "output range: zero_one [0, 1] or minus_one_one [-1, 1]",
       {"zero_one", "minus_one_one"}},
      {"spacing", ParamType::kStringList, "[]", false, "target spacing [x, y, z] in mm (e.g. [0.75, 0.75, 1.5]); [] keeps it", {}},
      {"shape", ParamType::kStringList, "[]", false, "centre crop/pad to [x, y, z] voxels; [] keeps the size", {}},
      {"windows", ParamType::kStringList, "[]", false,
       "one channel per window: lung, mediastinum, bone, soft_tissue, brain or C/W; []: the HU range", {}},
      {"clahe", ParamType::kBool, "false", false, "CLAHE on every axial slice of every channel", {}},
      {"clip_limit", ParamType::kFloat, "2.0", false, "CLAHE clip limit", {}},
      {"tile_grid", ParamType::kInt, "8", false, "CLAHE tiles per side", {}},
      {"dtype", ParamType::kString, "float16", false, ".npy element type", {"float16", "uint8"}},
      {"nifti_output", ParamType::kBool, "false", false, "also write the resampled HU volume as .nii.gz", {}},
      {"preview_slices", ParamType::kInt, "5", false, "axial slices per channel in the PNG preview strip; 0: none", {}},
      {"mode", ParamType::kString, "volume", false,
       "volume: one .npy per volume; slices: multi-window PNG slices for 2-D models", {"volume", "slices"}},
      {"slice_every", ParamType::kInt, "0", false, "slices mode: every k-th axial slice", {}},
      {"central_slices", ParamType::kInt, "0", false, "slices mode: the central n axial slices", {}},
      {"orientation", ParamType::kString, "RAS", false,
       "every volume reoriented (axis permutation and flips, nibabel's as_closest_canonical) so that W, H, D grow "
       "towards R, A, S (RAS) or L, P, S (LPS)",
       {"RAS", "LPS"}},
      {"gantry_tilt", ParamType::kString, "resample", false,
       "a tilted DICOM series: resample (shift each slice onto an untilted grid, as dcm2niix) or refuse",
       {"resample", "refuse"}},
      {"uneven_slices", ParamType::kString, "resample", false,
       "a DICOM series with unequal steps (not missing slices, always refused): resample (linear, onto equal steps "
       "of the smallest) or refuse",
       {"resample", "refuse"}},
  };
}

std::string VolumeName(const std::string& file_name, bool any_name) {
  for (const char* ext : {".nii.gz", ".nii"}) {
    std::string e = ext;
    if (file_name.size() > e.size() && file_name.compare(file_name.size() - e.size(), e.size(), e) == 0) {
      return file_name.substr(0, file_name.size() - e.size());
    }
  }
  return any_name ? file_name : std::string();
}

std::vector<double> Numbers(const std::string& text) {
  std::vector<double> out;
  const char* p = text.c_str();
  while (*p) {
    if (std::isdigit(static_cast<unsigned char>(*p)) || *p == '-' || *p == '+' || *p == '.') {
      char* end = nullptr;
      double v = std::strtod(p, &end);
      if (end != p) {
        if (std::isfinite(v)) out.push_back(v);
        p = end;
        continue;
      }
    }
    ++p;
  }
  return out;
}

std::vector<int> SelectSlices(const CtPrepOptions& o, int nz) {
  std::vector<int> out;
  if (o.slice_every > 0) {
    for (int z = 0; z < nz; z += o.slice_every) out.push_back(z);
  } else {
    int n = std::min(o.central_slices, nz);
    for (int z = (nz - n) / 2, k = 0; k < n; ++k) out.push_back(z + k);
  }
  return out;
}

namespace {

Result<std::vector<double>> NumberList(const Params& p, const std::string& name, size_t n, bool allow_empty) {
  std::vector<double> out;
  for (const std::string& s : p.GetStringList(name)) {
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v)) return p.Error(name, fmt::format("'{}' is not a number", s));
    out.push_back(v);
  }
  if (out.empty() && allow_empty) return out;
  if (out.size() != n) return p.Error(name, fmt::format("needs {} numbers, got {}", n, out.size()));
  return out;
}

}  // namespace

Result<CtPrepOptions> ParseCtPrepOptions(const Params& p) {
  CtPrepOptions o;
  o.volumes = p.GetString("volumes");
  o.dicoms = p.GetString("dicoms");
  if (o.volumes.empty() && o.dicoms.empty()) return p.Error("volumes", "name `volumes`, `dicoms` or both");
  o.metadata_csv = p.GetString("metadata_csv");
  o.labels_csv = p.GetString("labels_csv");
  for (const auto& [key, column] : p.GetStringMap("metadata_columns")) {
    std::string* slot = key == "name" ? &o.metadata_columns.name
                        : key == "slope" ? &o.metadata_columns.slope
                        : key == "intercept" ? &o.metadata_columns.intercept
                        : key == "xy_spacing" ? &o.metadata_columns.xy
                        : key == "z_spacing" ? &o.metadata_columns.z
                                             : nullptr;
    if (!slot) {
      return p.Error("metadata_columns",
                     fmt::format("unknown key '{}': use name, slope, intercept, xy_spacing, z_spacing", key));
    }
    *slot = column;
  }
  o.label_key = p.GetString("label_key");
  o.label_columns = p.GetStringList("label_columns");
  o.exclude_columns = p.GetStringList("exclude_columns");
  try {
    o.patient_regex = std::regex(p.GetString("patient_pattern"), std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return p.Error("patient_pattern", std::string("not a valid regular expression: ") + e.what());
  }
  if (o.patient_regex.mark_count() < 1) return p.Error("patient_pattern", "needs a capture group for the patient");

  MEDPIPE_ASSIGN_OR_RETURN(std::vector<double> hu, NumberList(p, "hu_range", 2, false));
  if (!(hu[0] < hu[1])) return p.Error("hu_range", "needs low < high");
  o.prep.hu_lo = static_cast<float>(hu[0]);
  o.prep.hu_hi = static_cast<float>(hu[1]);
  o.prep.symmetric = p.GetString("normalize") == "minus_one_one";
  MEDPIPE_ASSIGN_OR_RETURN(std::vector<double> spacing, NumberList(p, "spacing", 3, true));
  if (!spacing.empty()) {
    for (double s : spacing) {
      if (s <= 0) return p.Error("spacing", "spacings must be positive");
    }
    o.prep.spacing = std::array<double, 3>{spacing[0], spacing[1], spacing[2]};
  }
  MEDPIPE_ASSIGN_OR_RETURN(std::vector<double> shape, NumberList(p, "shape", 3, true));
  if (!shape.empty()) {
    for (double s : shape) {
      if (s < 1 || s > 4096 || s != std::floor(s)) return p.Error("shape", "sizes must be whole numbers 1..4096");
    }
    o.prep.shape = std::array<int, 3>{static_cast<int>(shape[0]), static_cast<int>(shape[1]), static_cast<int>(shape[2])};
  }
  for (const std::string& w : p.GetStringList("windows")) {
    Result<Window> win = ParseWindow(w);
    if (!win.ok()) return p.Error("windows", win.status().message());
    o.prep.windows.push_back(*win);
  }
  o.prep.clahe = p.GetBool("clahe");
  o.prep.clahe_clip = p.GetFloat("clip_limit");
  if (!(o.prep.clahe_clip > 0)) return p.Error("clip_limit", "must be positive");
  int64_t tiles = p.GetInt("tile_grid");
  if (tiles < 1 || tiles > 64) return p.Error("tile_grid", "needs 1 to 64 tiles per side");
  o.prep.clahe_tiles = static_cast<int>(tiles);
  o.dtype = p.GetString("dtype") == "uint8" ? NpyType::kUint8 : NpyType::kFloat16;
  if (o.dtype == NpyType::kUint8 && o.prep.symmetric) {
    return p.Error("dtype", "uint8 holds [0, 1] scaled to 0..255; use float16 with normalize: minus_one_one");
  }
  o.nifti_output = p.GetBool("nifti_output");
  int64_t preview = p.GetInt("preview_slices");
  if (preview < 0 || preview > 64) return p.Error("preview_slices", "needs 0 to 64");
  o.preview_slices = static_cast<int>(preview);
  o.slices = p.GetString("mode") == "slices";
  o.slice_every = static_cast<int>(p.GetInt("slice_every"));
  o.central_slices = static_cast<int>(p.GetInt("central_slices"));
  if (o.slice_every < 0 || o.central_slices < 0) return p.Error("slice_every", "must not be negative");
  if (o.slices) {
    if ((o.slice_every > 0) == (o.central_slices > 0)) {
      return p.Error("mode", "slices mode needs exactly one of slice_every or central_slices");
    }
    size_t channels = std::max<size_t>(1, o.prep.windows.size());
    if (channels != 1 && channels != 3) return p.Error("windows", "slices mode writes PNG: use 1 or 3 windows");
  } else if (o.slice_every > 0 || o.central_slices > 0) {
    return p.Error(o.slice_every > 0 ? "slice_every" : "central_slices", "only used with mode: slices");
  }
  o.orientation = p.GetString("orientation") == "LPS" ? Canonical::kLPS : Canonical::kRAS;
  o.assemble.resample_tilt = p.GetString("gantry_tilt") == "resample";
  o.assemble.resample_uneven = p.GetString("uneven_slices") == "resample";
  // Every param but the CSV paths and label settings changes a volume's output.
  Hasher h;
  for (const auto& [name, json] : p.Canonical()) {
    if (name == "labels_csv" || name == "label_key" || name == "label_columns" || name == "exclude_columns" ||
        name == "patient_pattern" ||
        name == "volumes" || name == "dicoms" || name == "metadata_csv") {
      continue;
    }
    h.Field(name).Field(json);
  }
  o.options_hash = h.HexDigest();
  return o;
}

}  // namespace medpipe
