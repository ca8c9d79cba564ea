// The numbers a report shows about one dataset, gathered in one streaming
// pass over its images and annotations (no per-box storage), so a 100,000-
// image dataset takes well under a second: per split counts as analyze
// computes them, box statistics per class as fixed-bin histograms, patient
// overlap between splits, and the attribute-driven tables (fold, risk_level,
// machine_type, prob_<label>). Also the seeded gallery choice.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "dataset/dataset.h"

namespace medpipe::report {

// Split names as analyze orders them: train, valid, test, other names
// sorted, then "unsplit" for images with no split.
inline constexpr const char* kUnsplit = "unsplit";

struct SplitStats {
  int64_t images = 0;
  int64_t patients = 0;
  int64_t images_without_patient = 0;
  int64_t negatives = 0;
  int64_t augmented = 0;
  int64_t boxes = 0;
  std::vector<int64_t> images_per_class;  // indexed like DatasetStats::classes
  std::vector<int64_t> boxes_per_class;
  std::map<std::string, int64_t> sources;  // "(none)" for images without one
  std::vector<int64_t> boxes_per_image;    // bins of kBoxesPerImageBins
  // Image-level labels (Image::labels), for classification datasets.
  int64_t images_with_labels = 0;
  std::vector<int64_t> images_per_label;  // indexed like DatasetStats::labels
};

inline const std::vector<std::string> kBoxesPerImageBins = {"0", "1", "2", "3", "4", "5-9", "10+"};
// Box width and height in pixels.
inline const std::vector<std::string> kSideBins = {"<8",      "8-16",    "16-32", "32-64",
                                                   "64-128", "128-256", "256-512", ">=512"};
// Box area as a share of its image's area.
inline const std::vector<std::string> kAreaBins = {"<0.1%", "0.1-0.3%", "0.3-1%", "1-3%", "3-10%", "10-30%", ">=30%"};
// Probabilities in [0, 1], ten bins.
inline const std::vector<std::string> kProbabilityBins = {"0-.1",  ".1-.2", ".2-.3", ".3-.4", ".4-.5",
                                                          ".5-.6", ".6-.7", ".7-.8", ".8-.9", ".9-1"};

struct ClassBoxStats {
  int64_t boxes = 0;
  int64_t images = 0;
  std::vector<int64_t> width, height;  // kSideBins
  std::vector<int64_t> area;           // kAreaBins; boxes on images of unknown size are not binned
};

// A count table keyed by one attribute's values (rows) and splits (columns).
struct AttributeCounts {
  std::vector<std::string> values;              // sorted, numbers numerically
  std::vector<std::vector<int64_t>> per_split;  // [value][split]
};

struct DatasetStats {
  // Appended to the ids of this dataset's tables, so several datasets on one
  // page keep ids unique ("" for one dataset: "splits", "classes", ...).
  std::string id_suffix;
  std::vector<std::string> classes;  // category names, in category order
  std::vector<std::string> splits;
  std::vector<SplitStats> per_split;
  SplitStats total;
  std::vector<ClassBoxStats> boxes;  // per class
  int64_t annotations_with_undefined_category = 0;

  // patient_overlap[a][b]: patients with images in both split a and split b
  // (the diagonal: patients of the split).
  std::vector<std::vector<int64_t>> patient_overlap;
  // Patients in two or more splits, "unsplit" not counted (as validate).
  int64_t patients_in_several_splits = 0;
  // Up to `max_listed` of them, sorted: (patient, its splits).
  std::vector<std::pair<std::string, std::vector<std::string>>> overlap_offenders;

  // Labels of an image: its image-level labels and the classes of its boxes.
  std::vector<std::string> labels;  // every label seen, sorted
  // A classification dataset (classify's output, image-level labels): no
  // image has a box, and images carry labels or a risk_level. Its report
  // shows labels and risk levels; box tables and a "negative share" would
  // only say that no image has a box.
  bool image_level = false;
  // Attribute "fold": per fold, images and images positive for each label.
  std::vector<std::string> folds;
  std::vector<int64_t> fold_images;
  std::vector<std::vector<int64_t>> fold_positives;  // [fold][label]
  AttributeCounts risk_level;                         // attribute "risk_level"
  AttributeCounts machine_type;                       // attribute "machine_type"
  std::vector<std::vector<int64_t>> machine_type_labels;  // [machine type][label]: positive images
  // Attributes "prob_<label>" (numbers in [0, 1]): a histogram per label.
  std::map<std::string, std::vector<int64_t>> probabilities;
};

// One pass over `ds`. `max_listed` bounds overlap_offenders.
DatasetStats ComputeStats(const Dataset& ds, size_t max_listed = 50);

// The seeded gallery: for each split and each class (then "negatives"), or
// for an image-level dataset each label (then "no label"), up to
// `per_group` original images (no origin), chosen by a hash of the seed
// and the file name, so the choice depends on neither thread count nor image
// order. Augmented copies of a chosen image are listed beside it, up to
// `max_copies`, by file name.
struct GalleryGroup {
  std::string split;
  std::string group;             // a class or label name, "negatives" or "no label"
  std::vector<size_t> images;    // indices into ds.images
  std::vector<std::vector<size_t>> copies;  // per image: its augmented copies
};
std::vector<GalleryGroup> ChooseGallery(const Dataset& ds, const DatasetStats& stats, uint64_t seed, size_t per_group,
                                        size_t max_copies);

// "12" < "9" as numbers: numeric strings compare by value, before others.
bool NaturalLess(const std::string& a, const std::string& b);

}  // namespace medpipe::report
