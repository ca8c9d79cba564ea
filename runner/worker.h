// `medpipe worker`: one array task of a cluster run (see
// runner/slurm_dispatch.h). It rebuilds the stage as the controller did,
// checks it is the stage the controller planned (same fingerprint, same
// items), runs its shard's items into its journal part and writes its done
// marker. It takes no lock and writes nothing outside the stage's folder:
// its Disk refuses any other path.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "graph/pipeline.h"
#include "stages/stage.h"

namespace medpipe {

struct WorkerOptions {
  std::string stage;  // the stage id
  int call = 0;       // its RunItems call
  size_t shard = 0;   // the shard of that call's plan
  int threads = 0;    // 0: SLURM_CPUS_PER_TASK, or 1 inside a Slurm job, or every core
  const std::atomic<bool>* cancel = nullptr;
};

// REQUIRES: stages[i] was built from pipeline.stages[i].
Status RunWorker(const Pipeline& pipeline, const std::vector<std::unique_ptr<Stage>>& stages,
                 const WorkerOptions& options);

}  // namespace medpipe
