// Executes a pipeline: one oneTBB flow-graph node per stage instance,
// independent stages at the same time, per-item work on the same arena.
// Owns every resume decision; stages only see their StageContext.
#pragma once

#include <atomic>
#include <chrono>
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
  bool dry_run = false;            // decide what would run and why (the outcomes); touch nothing
  bool live_progress = false;      // draw progress lines (a terminal)
  // When not live: log the progress lines this often (0: never).
  std::chrono::milliseconds plain_progress_interval{0};
  // Any per-item problem fails its stage (also the pipeline's `strict: true`).
  bool strict = false;
  // Where per-item work runs: "local" or "slurm" ("": the pipeline's
  // `executor: type`). See runner/slurm_dispatch.h.
  std::string executor{};
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

// Who holds a workdir's lock: a running `medpipe run` (or clean).
struct LockHolder {
  bool held = false;
  long pid = 0;
  std::string started;  // UTC, ISO 8601
};
// Probes the lock without taking it (a shared flock attempt, released at
// once); the holder's pid and start time are what it wrote into the file.
LockHolder ProbeWorkdirLock(const fs::path& workdir);

// Removes the folders <workdir>/<name> (a stage's outputs and checkpoints,
// or an orphan folder), holding the workdir lock so a running pipeline is
// never cleaned under its feet. Names whose folder does not exist are
// skipped. Returns the folders removed.
// REQUIRES: every name is a plain folder name (no '/', not "." or "..").
Result<std::vector<fs::path>> CleanFolders(const fs::path& workdir, const std::vector<std::string>& names);

// A workdir belongs to one pipeline name: the first run writes it into
// <workdir>/.medpipe/pipeline, and a pipeline of another name using the same
// workdir is refused (kConfig) before any work, as its stages would
// overwrite, fail or clean the other's. A workdir without the file (new, or
// from before this check) belongs to whoever runs first.
Status CheckWorkdirOwner(const Pipeline& pipeline);

// Runs `pipeline`. Fails (kConfig) before any work only for a bad selection:
// an unknown --from/--until/--only/--force id, or --only on an input with no
// checkpoint, a workdir that another run holds or another pipeline owns.
// REQUIRES: stages[i] was built from pipeline.stages[i].
Result<RunSummary> RunPipeline(const Pipeline& pipeline, const std::vector<std::unique_ptr<Stage>>& stages,
                               const RunOptions& options);

}  // namespace medpipe
