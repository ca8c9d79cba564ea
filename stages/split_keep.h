// The splits of an earlier dataset version, for split's `keep` param: every
// patient (and group value) found there keeps its split or fold, so a model
// trained on v4's train split is never evaluated on v5 test images of a
// patient it saw.
//
// A keep source is one of:
//   - a previous split stage's folder (dataset.json) or that dataset.json;
//   - a previous run's export folder in Roboflow layout
//     (train/, valid/ or val/, test/ with _annotations.coco.json), or its
//     dataset.csv;
//   - a CSV with a header naming `patient_id` and `split` (or `fold`).
// In kfold mode an image's bin is "fold<k>" from its attributes.fold (or a
// CSV `fold` column); in holdout mode it is the image's split.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

struct KeptSplits {
  // "patient\x1f<id>" or "group\x1f<value>" -> bin name ("train", "fold2").
  std::map<std::string, std::string> bin_of;
  size_t patients = 0;  // distinct patient ids in the source
  // The files read, for messages and the fingerprint.
  std::vector<fs::path> files;
};

// The files a keep source at `path` is read from, in a fixed order; an error
// when `path` is none of the layouts above. Cheap: stats only.
Result<std::vector<fs::path>> KeepFiles(const fs::path& path);

// Reads the bins of every patient and group value. A patient or group in two
// bins of the source fails (the earlier version leaked; keeping it would keep
// the leak). `group_attribute` empty: groups are not read.
Result<KeptSplits> ReadKeptSplits(const fs::path& path, bool kfold, const std::string& group_attribute);

// Hash of the content of every file KeepFiles lists: the keep source decides
// the output, so a changed source must redo the split. The files are a
// dataset's annotations or a small CSV, read once per run.
Result<std::string> KeepFingerprint(const fs::path& path);

}  // namespace medpipe
