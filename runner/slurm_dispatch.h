// Per-item work as Slurm job arrays over a shared workdir.
//
// The controller (`medpipe run --executor slurm`) keeps everything it owns in
// a local run: planning, fingerprints, the workdir lock, commit records.
// When a stage's RunItems call finds items not yet journaled, the dispatcher
// here cuts them into shards, writes a shard plan, and submits one
// `sbatch --array` whose task I runs `medpipe worker FILE --stage ID --call K
// --shard I`. A worker redoes the stage's planning, runs its shard's items
// through the same RunItems code into a journal part of its own, and writes a
// done marker; it writes nothing else in the workdir. When every shard is
// done the controller merges the parts into the stage's journal and the stage
// goes on as in a local run: same code after RunItems, same commit, same
// bytes.
//
// Files, under <stage>/.medpipe/slurm/call-K/ (K: the RunItems call):
//   plan       the shard plan: stage fingerprint, digest of the call's tasks,
//              job name, one line of task indexes per shard
//   job.sh     the batch script every task runs
//   jobs.tsv   one line per submission: job id, task list, time
//   part-I.jsonl, done-I, task-I.log   shard I's journal part, marker, log
// The parts are removed once merged into the stage's journal; the plan, the
// job records, markers and task logs stay until the stage's next attempt.
//
// Faults: a task that ends without its marker (failed, timed out, preempted,
// cancelled, or a marker that never appeared within marker_grace) is
// resubmitted, its items resuming from its part, up to `retries` times; then
// the stage fails naming the task, its state and its log, after merging what
// every other task finished. A controller killed and rerun finds its plan by
// the tasks' digest and its jobs by name in squeue: it waits for the tasks
// still queued or running, takes the finished ones by their markers and
// submits only shards that have neither. A plan is taken over only for the
// same tasks and the same pending items. Ctrl-C cancels the plan's tasks.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "graph/executor.h"
#include "runner/stage_context.h"

namespace medpipe {

struct ShardPlan {
  std::string stage;
  std::string fingerprint;  // the stage's fingerprint when planned
  std::string digest;       // TasksDigest of the call's tasks
  std::string pending;      // a digest of the pending indexes it was cut from
  std::string job_name;     // how squeue finds the plan's tasks
  std::vector<std::vector<size_t>> shards;  // task indexes per shard
};

fs::path SlurmDir(const fs::path& stage_dir);
fs::path CallDir(const fs::path& stage_dir, int call);
fs::path PartPath(const fs::path& call_dir, size_t shard);
fs::path MarkerPath(const fs::path& call_dir, size_t shard);
fs::path TaskLogPath(const fs::path& call_dir, size_t shard);

Status WriteShardPlan(Disk* disk, const fs::path& call_dir, const ShardPlan& plan);
Result<ShardPlan> ReadShardPlan(const fs::path& call_dir);

// Cuts `pending` into at most `max_tasks` contiguous shards of at least
// `items_per_task` items (sizes differing by at most one).
std::vector<std::vector<size_t>> CutShards(const std::vector<size_t>& pending, int max_tasks, int items_per_task);

// What the dispatcher of one stage needs to know.
struct SlurmStage {
  std::string id;
  fs::path dir;                 // the stage's folder
  fs::path workdir;
  std::string fingerprint;      // the stage's, as the runner computed it
  fs::path pipeline_file;       // absolute: the tasks read it
  std::vector<std::string> overrides;  // --set, passed on to the tasks
  ExecutorDecl executor;
  Disk* disk = nullptr;
  std::function<void(const std::string&)> log;  // a console and run-log line
};

std::unique_ptr<ItemDispatcher> MakeSlurmDispatcher(SlurmStage stage);

// Cancels the tasks of every plan recorded in the stage's folder, waits for
// them to leave the queue and removes the plans: before a forced or local
// rerun, so no earlier task writes beside it and no stale part is adopted.
Status ForgetSlurmPlans(const fs::path& stage_dir, const std::function<void(const std::string&)>& log);

// The job ids recorded in the stage's plans (for `status`), oldest first.
std::vector<std::string> RecordedSlurmJobs(const fs::path& stage_dir);

// A worker's shard: what RunItems needs (StageContext::SetWorkerShard).
Result<WorkerShard> LoadWorkerShard(const fs::path& stage_dir, int call, size_t shard, ShardPlan* plan);

}  // namespace medpipe
