// The sections of a dataset report, each rendered to an HTML fragment from
// plain data: DatasetStats, and records the caller parsed (validation
// results, where the data came from) with thumbnail URLs it made. Every
// string is escaped here; URLs are the caller's, relative to the report.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "report/dataset_stats.h"

namespace medpipe::report {

// An image shown in the report: its thumbnail's URL (relative file or data:
// URI), or why there is none.
struct Thumb {
  std::string caption;  // usually the file name
  std::string url;      // empty when the thumbnail could not be made
  std::string error;
};

// Splits: images, patients, negatives (share, and the target when known),
// augmented share, boxes, per class, per source. The data table's rows are
// keyed like analyze's analysis.json ("images", "images_per_class/EDH"...)
// and its columns are the splits then "total". For an image-level dataset
// (st.image_level) the negative and box rows give way to images with and
// without a label and images per label ("images_per_label/Edema"); the
// negative target is not shown.
std::string SplitsSection(const DatasetStats& st, std::optional<double> negative_target);
// Labels of an image-level dataset: one stacked bar per split (images per
// label, "no label" last) and the table.
std::string LabelsSection(const DatasetStats& st);
// Classes: one stacked bar per split (images per class, negatives last) and
// the legend.
std::string ClassesSection(const DatasetStats& st);
// Boxes per class: count, images, width/height/area histograms; boxes per
// image per split.
std::string BoxesSection(const DatasetStats& st);
// Patient overlap matrix between splits and the patients in several splits.
std::string PatientsSection(const DatasetStats& st);

struct Finding {
  std::string item;    // as validate names it ("images/a.png", "patient P1", ...)
  std::string reason;
  std::optional<Thumb> thumb;  // when the item is an image of the dataset
};
struct CheckResult {
  std::string name;
  bool passed = true;
  bool fatal = false;
  int64_t failures = 0;
  int64_t not_listed = 0;
  std::vector<Finding> findings;
};
struct ValidationResult {
  std::string stage;  // the validate stage's id
  bool passed = true;
  std::vector<CheckResult> checks;
  std::map<std::string, int64_t> notes;
};
// Duplicates across splits: the "duplicates" check of each validation, or a
// note that nothing checked them.
std::string DuplicatesSection(const std::vector<ValidationResult>& validations);
std::string ValidationSection(const std::vector<ValidationResult>& validations);

struct GalleryFigure {
  Thumb image;
  std::vector<Thumb> copies;  // augmented versions, shown beside it
};
struct GallerySet {
  std::string split, group;
  std::vector<GalleryFigure> figures;
};
std::string GallerySection(const DatasetStats& st, const std::vector<GallerySet>& gallery, size_t per_group);

// fold / risk_level / machine_type / prob_<label>: "" when the dataset
// carries none of them.
std::string AttributesSection(const DatasetStats& st);

struct StageRecord {
  std::string id, kind;
  std::vector<std::pair<std::string, std::string>> params;  // name, canonical JSON (shortened)
  int64_t items = 0, items_failed = 0, items_resumed = 0;
  std::map<std::string, int64_t> counters;
  double seconds = -1;     // < 0: not shown
  std::string finished_at;  // empty: not shown
};
struct Provenance {
  std::string pipeline_file;  // the file name only
  std::string report_stage;
  std::string version;
  uint64_t seed = 0;
  bool times = true;
  std::vector<StageRecord> stages;  // upstream first
};
std::string ProvenanceSection(const Provenance& p);

}  // namespace medpipe::report
