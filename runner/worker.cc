#include "runner/worker.h"

#include <fmt/format.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "runner/planner.h"
#include "runner/slurm_dispatch.h"

namespace medpipe {

namespace {

int WorkerThreads(int asked) {
  if (asked > 0) return asked;
  if (const char* cpus = std::getenv("SLURM_CPUS_PER_TASK"); cpus && std::atoi(cpus) > 0) return std::atoi(cpus);
  // Slurm gives a task one CPU unless told otherwise.
  if (std::getenv("SLURM_JOB_ID")) return 1;
  return static_cast<int>(std::thread::hardware_concurrency());
}

}  // namespace

Status RunWorker(const Pipeline& p, const std::vector<std::unique_ptr<Stage>>& stages, const WorkerOptions& o) {
  int index = p.Find(o.stage);
  if (index < 0) return Status::Config(fmt::format("--stage {}: no such stage in {}", o.stage, p.file));
  const StageDecl& d = p.stages[static_cast<size_t>(index)];
  const fs::path dir = p.workdir / d.id;
  ShardPlan plan;
  MEDPIPE_ASSIGN_OR_RETURN(WorkerShard shard, LoadWorkerShard(dir, o.call, o.shard, &plan));

  // The stage as the controller saw it: committed inputs, same sources.
  std::vector<std::string> fps;
  std::vector<InputArtifact> artifacts;
  for (const auto& in : d.inputs) {
    Result<CommitRecord> c = ReadCommit(p.workdir / in);
    if (!c.ok()) return Status::Failed(fmt::format("input {} has no checkpoint: {}", in, c.status().message()));
    fps.push_back(c->output_fingerprint);
    artifacts.push_back(InputArtifact{in, p.workdir / in});
  }
  MEDPIPE_ASSIGN_OR_RETURN(std::string external, stages[static_cast<size_t>(index)]->ExternalFingerprint());
  if (StageFingerprint(d, p.dir, p.seed, external, fps) != plan.fingerprint) {
    return Status::Failed(fmt::format(
        "stage {} is not the one the controller planned: the pipeline file, its inputs or its sources changed "
        "since the job was submitted",
        d.id));
  }

  ConfinedDisk disk(dir);
  auto progress = std::make_shared<Progress>(d.id);
  StageContext ctx(d.id, p.seed, dir, artifacts, &disk, progress, o.cancel, [](const std::string& line) {
    std::fprintf(stderr, "%s\n", line.c_str());
  });
  const size_t items = shard.indexes.size();
  ctx.SetWorkerShard(std::move(shard));
  const int threads = WorkerThreads(o.threads);
  std::fprintf(stderr, "medpipe worker: stage %s, pass %d, shard %zu: %zu items on %d threads\n", d.id.c_str(), o.call,
               o.shard, items, threads);
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  tbb::task_arena arena(threads);
  Status s;
  arena.execute([&] { s = stages[static_cast<size_t>(index)]->Run(ctx); });
  if (ctx.shard_finished()) return Status::OK();
  if (s.ok()) {
    return Status::Failed(fmt::format("stage {} finished without reaching its RunItems pass {}: the stage's "
                                      "code took another path than in the controller",
                                      d.id, o.call));
  }
  return s;
}

}  // namespace medpipe
