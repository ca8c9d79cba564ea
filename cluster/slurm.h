// Slurm, through its command-line clients (sbatch, squeue, scontrol, sacct,
// scancel), as Snakemake and Nextflow drive it: the commands are stable
// across Slurm versions where no library API is. Knows nothing of
// pipelines: it submits job arrays and reports what became of their tasks.
//
// What the clients say, measured on Debian 12's slurm-wlm 22.05
// (../shared/KNOWN.md): `squeue -r` lists every queued or running array task
// on a line of its own; slurmctld forgets an ended job MinJobAge seconds
// (300 by default) after it ends, after which `scontrol show job` answers
// "Invalid job id"; `sacct` answers only where accounting storage is on.
// So the callers keep their own record of what finished (a marker file per
// task) and use these states to explain what did not.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "util/fs.h"
#include "util/status.h"

namespace medpipe::slurm {

// One `sbatch --array` submission.
struct ArrayJob {
  std::string name;         // --job-name; how a later controller finds the job again
  fs::path script;          // the batch script every task runs
  std::vector<int> tasks;   // the array's task ids (SLURM_ARRAY_TASK_ID)
  int max_running = 0;      // at most this many tasks at once (0: no limit)
  std::string output;       // the log file pattern (%A job id, %a task id), appended to
  fs::path chdir;           // the tasks' working directory
  std::string partition, account, time_limit, memory;  // "" leaves Slurm's default
  int cpus_per_task = 0;    // 0 leaves Slurm's default
  std::vector<std::string> extra_args;  // more sbatch arguments, as given
};

// The sbatch command line for `job` (for submission and for messages).
std::vector<std::string> SbatchArgv(const ArrayJob& job);

// Submits `job`; returns its job id. kUnavailable when sbatch fails (the
// controller may be busy), with sbatch's message; kNotFound when sbatch is
// not installed.
Result<std::string> Submit(const ArrayJob& job);

struct TaskState {
  std::string job_id;  // the array's job id
  std::string state;   // PENDING, RUNNING, COMPLETING, ...
  std::string reason;  // squeue's reason (Resources, Priority, ...)
};

// The queued or running tasks of this user's jobs named `name`, by task id.
// kUnavailable when squeue cannot answer (slurmctld down or busy).
Result<std::map<int, TaskState>> ActiveTasks(const std::string& name);

// How one task ended, as scontrol (while slurmctld remembers the job) or
// sacct (where accounting is on) tells it; `known` is false when neither does.
struct TaskEnd {
  bool known = false;
  std::string state;      // COMPLETED, FAILED, CANCELLED, TIMEOUT, PREEMPTED, NODE_FAIL, OUT_OF_MEMORY, ...
  std::string reason;     // scontrol's Reason=
  std::string exit_code;  // "3:0": exit status, signal
  // "FAILED (exit 3)", "CANCELLED", "TIMEOUT", or "ended; Slurm no longer
  // knows how" when not known.
  std::string Describe() const;
};
TaskEnd EndOf(const std::string& job_id, int task);

// Cancels every queued or running task of this user's jobs named `name`.
Status CancelByName(const std::string& name);

// "0-3,5,7-8" for {0,1,2,3,5,7,8}; the ids sorted and unique.
std::string FormatArray(std::vector<int> tasks);
// The inverse, also for squeue's "123_[4-6,9%2]" task lists; kInvalid on
// anything else.
Result<std::vector<int>> ParseArray(std::string_view spec);

}  // namespace medpipe::slurm
