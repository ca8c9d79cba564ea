// The `executor:` block of a pipeline file: where the per-item work of the
// stages runs. `local` (the default) runs it on this machine's cores; `slurm`
// runs it as one Slurm job array per stage pass over the shared workdir (see
// docs/scale-out.md). Where items run never changes what they produce, so
// nothing here is part of any fingerprint.
#pragma once

#include <string>
#include <vector>

#include "graph/params.h"
#include "util/status.h"

namespace medpipe {

struct ExecutorDecl {
  std::string type = "local";  // local | slurm (`run --executor` overrides it)
  // sbatch options; "" or 0 leaves the cluster's default.
  std::string partition, account, time, memory;
  int cpus_per_task = 0;
  std::vector<std::string> sbatch_args;  // more sbatch arguments, as given
  // Sharding: a pass's pending items are cut into at most `max_tasks` array
  // tasks of at least `items_per_task` items each.
  int max_tasks = 64;
  int items_per_task = 1;
  int max_running = 0;          // tasks of one array at once (0: no limit)
  int retries = 2;              // resubmissions of a failed task before the stage fails
  double poll_interval = 5;     // seconds between squeue polls
  double marker_grace = 30;     // seconds to wait for a finished task's marker (NFS lag)
  std::string command;          // the medpipe binary tasks run ("" : this one)
};

// The keys of the block, typed like stage params (so a typo gets a
// did-you-mean and a wrong type its line and column).
const std::vector<ParamSpec>& ExecutorParamSpecs();

// The block's values, range-checked; errors are located at their key.
Result<ExecutorDecl> ExecutorFromParams(const Params& params);

}  // namespace medpipe
