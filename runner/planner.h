// Deciding what is done: stage fingerprints, and the verdict on a stage's
// commit record with the reason a user reads ("params.ratio changed").
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "graph/pipeline.h"
#include "runner/checkpoint.h"
#include "stages/stage.h"

namespace medpipe {

// The canonical params as fingerprints and commit records see them: path
// params relative to `base` (the pipeline file's folder), so a project moved
// or cloned with its data and workdir keeps its stages done. What a path
// points at is covered by the stage's external fingerprint.
std::map<std::string, std::string> PortableParams(const StageDecl& decl, const fs::path& base);

// Covers the stage kind and its version, the portable params, the seed, the
// external sources' fingerprint and the output fingerprints of the inputs,
// in input order.
std::string StageFingerprint(const StageDecl& decl, const fs::path& base, uint64_t seed, const std::string& external,
                             const std::vector<std::string>& input_output_fps);

struct Verdict {
  bool up_to_date = false;
  std::string reason;  // why not up to date, or "up to date"
};

// Judges the commit record in `stage_dir` against the stage as configured
// now. Stats the recorded outputs only when everything else matches.
Verdict Judge(const StageDecl& decl, const fs::path& base, const fs::path& stage_dir, uint64_t seed,
              const std::string& external,
              const std::map<std::string, std::string>& input_output_fps, const std::string& fingerprint);

// What `medpipe status` shows for one stage.
struct StageReport {
  // "done", "stale", "never run", "incomplete", "failed", or "running" while
  // a live run holds the workdir.
  std::string state;
  std::string reason;
  std::optional<CommitRecord> commit;
  size_t journaled_items = 0;
  std::vector<std::string> slurm_jobs;  // while running on Slurm: its job ids
};

// Reports every stage from what is on disk, without running anything (and
// without taking the workdir lock or repairing any journal: a live run may
// be writing them).
std::vector<StageReport> InspectPipeline(const Pipeline& pipeline,
                                         const std::vector<std::unique_ptr<Stage>>& stages);

// The folders in the workdir that no stage of `pipeline` owns (left by a
// renamed or removed stage), sorted by name. Hidden folders are medpipe's own.
std::vector<std::string> OrphanFolders(const Pipeline& pipeline);

// The stages whose outputs hold symlinks into stage `i`'s folder, found by
// reading the links of their manifests: what cleaning `i` would break.
std::vector<size_t> StagesLinkingInto(const Pipeline& pipeline, size_t i);

}  // namespace medpipe
