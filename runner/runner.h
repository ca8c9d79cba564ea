// Executes a pipeline: one oneTBB flow-graph node per stage instance,
// independent stages at the same time, per-item work on the same arena.
// Owns every resume decision; stages only see their StageContext.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "graph/pipeline.h"
#include "runner/checkpoint.h"
#include "stages/stage.h"

namespace medpipe {

struct RunOptions {
  int threads = 0;                 // 0: every core
  std::string from;                // rerun this stage and everything downstream
  std::string until;               // run this stage and what it needs, no more
  std::string only;                // run exactly this stage on checkpointed inputs
  std::vector<std::string> force;  // rerun these stages (their items too)
  bool dry_run = false;            // say what would run and why; touch nothing
  bool live_progress = false;      // draw progress lines (a terminal)
  Disk* disk = nullptr;            // DefaultDisk() when null
  const std::atomic<bool>* cancel = nullptr;  // set by Ctrl-C
};

struct StageOutcome {
  enum class State { kNotSelected, kSkipped, kWouldRun, kRan, kFailed, kBlocked, kCancelled };
  State state = State::kNotSelected;
  std::string reason;       // why it ran, or why it failed or was blocked
  std::string output_fingerprint;
  ItemCounts items;
  double seconds = 0;
};

struct RunSummary {
  // 0 all selected stages done; 1 a stage failed (or was blocked by one);
  // 130 interrupted.
  int exit_code = 0;
  std::vector<StageOutcome> outcomes;  // per stage, in pipeline order
};

// Removes the folders (outputs and checkpoints) of the stages `ids`, holding
// the workdir lock so a running pipeline is never cleaned under its feet.
Status CleanStages(const Pipeline& pipeline, const std::vector<std::string>& ids);

// Runs `pipeline`. Fails (kConfig) before any work only for a bad selection:
// an unknown --from/--until/--only/--force id, or --only on an input with no
// checkpoint, or a workdir that another run holds.
// REQUIRES: stages[i] was built from pipeline.stages[i].
Result<RunSummary> RunPipeline(const Pipeline& pipeline, const std::vector<std::unique_ptr<Stage>>& stages,
                               const RunOptions& options);

}  // namespace medpipe
