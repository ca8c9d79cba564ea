// Linking input images into a stage folder, for stages that change datasets
// but not pixels (filter, merge, split, balance, export).
//
// Every stage's dataset.json names files relative to its own folder, and
// every file it names is present there. Intermediate stages make those files
// relative symlinks to their input's, never copies; a stage whose folder is a
// deliverable (export) materialises them instead, as hard links or copies, so
// the folder stands on its own when copied or when upstream stages are cleaned.
#pragma once

#include <string>
#include <vector>

#include "graph/params.h"
#include "runner/stage_context.h"

namespace medpipe {

struct LinkSpec {
  std::string out_rel;  // path in this stage's folder, e.g. "images/v3_a.png"
  fs::path target;      // absolute path of the file to link to
};

enum class LinkMode {
  kSymlink,   // a relative symlink to the target
  kHardlink,  // a hard link to the file the target reaches, a copy where the filesystem refuses
  kCopy,      // a copy of the bytes
};

// The `materialize` param of every stage whose folder is handed on (export,
// echo_export, folds): hardlink (the default; a copy where the filesystem
// refuses), copy, or symlink (on request only: the links break when the
// folder is copied or an upstream stage is cleaned). One spec and one
// parser, so the stages cannot drift apart.
ParamSpec MaterializeParam();
// The mode `text` names. REQUIRES: `text` is one of the spec's choices (the
// graph layer checks that before any stage is built).
LinkMode MaterializeMode(const std::string& text);

// Makes every link through ctx.RunItems (so a killed stage resumes). Returns
// per link whether it was made; a link whose out_rel would leave the stage
// folder, or (hard link, copy) whose target is missing, is a per-item problem.
// A hard link or copy is redone when the file its target reaches changes.
Result<std::vector<bool>> LinkImages(StageContext& ctx, const std::vector<LinkSpec>& links,
                                     LinkMode mode = LinkMode::kSymlink);

}  // namespace medpipe
