// What the report stage reads besides datasets: validate's validation.json,
// analyze's analysis.json and the commit records of the stages upstream (for
// "where the data came from"). Each is turned into the plain structs of
// report/sections.h.
#pragma once

#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "report/sections.h"
#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

// Parses validation.json. Each listed failure "<item>: <reason>" is split at
// the first ": " whose left side is a known file name (or an "annotation N
// (<file name>)" item), else at the first ": ". `finding_images` receives,
// per finding in order (checks in file order), the file name of the image it
// is about, "" when it is about no image of `file_names`.
Result<report::ValidationResult> ReadValidation(const fs::path& file, const std::string& stage,
                                                const std::unordered_set<std::string>& file_names,
                                                std::vector<std::string>* finding_images);

// Compares `st` with analyze's analysis.json: every count per split and in
// total. Returns the differences, one line each (empty: they agree).
Result<std::vector<std::string>> CompareWithAnalysis(const fs::path& file, const report::DatasetStats& st);

// The commit records of `inputs` and everything upstream of them, read from
// <workdir>/<id>/.medpipe/commit.json, upstream first. Stages that never
// committed are left out. Params are shortened for the page. `times` keeps
// run times and resumed counts (which differ from run to run). Sets
// *negative_target from the nearest balance stage's target_negative_fraction.
std::vector<report::StageRecord> UpstreamRecords(const fs::path& workdir, const std::vector<std::string>& inputs,
                                                 bool times, std::optional<double>* negative_target);

}  // namespace medpipe
