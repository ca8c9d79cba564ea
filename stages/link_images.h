// Linking input images into a stage folder, for stages that change datasets
// but not pixels (filter, merge, split, balance, export).
//
// Every stage's dataset.json names files relative to its own folder, and
// every file it names is present there; a stage that does not touch pixels
// makes those files relative symlinks to its input's, never copies.
#pragma once

#include <string>
#include <vector>

#include "runner/stage_context.h"

namespace medpipe {

struct LinkSpec {
  std::string out_rel;  // path in this stage's folder, e.g. "images/v3_a.png"
  fs::path target;      // absolute path of the file to link to
};

// Makes every link through ctx.RunItems (so a killed stage resumes), each a
// relative symlink. Returns per link whether it was made; a link whose
// out_rel would leave the stage folder is a per-item problem.
Result<std::vector<bool>> LinkImages(StageContext& ctx, const std::vector<LinkSpec>& links);

}  // namespace medpipe
