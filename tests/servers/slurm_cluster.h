// A real one-node Slurm cluster for tests: Debian's slurm-wlm 22.05 and munge,
// started as root without systemd, on loopback, with everything under one
// folder. The executor tests submit real job arrays to it.
//
// What a test may rely on (observed on this machine, Debian 12, slurm 22.05.8,
// with the configuration SlurmCluster writes):
//
// - `sbatch --parsable --array=0-3 ...` prints the array job id alone ("12").
//   Over 8 runs the first task started 0.03-0.85 s after sbatch was called
//   (0.85-1.1 s in the ASan build), and a 4-task array of `echo` on 2 CPUs
//   left squeue empty 0.2-2.2 s after it (the second pair of tasks often
//   waits about 1 s for the next scheduling pass), with
//   SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1.
//   Start() returns (node idle) about 1 s after it is called.
// - Other settings a test may meet: MinJobAge=300 (the default, written out),
//   KillWait=5 (a cancelled task gets SIGKILL 5 s after SIGTERM), RealMemory =
//   this machine's memory (so `--mem` up to it is accepted; memory is not a
//   consumable resource, CR_Core), MpiDefault=none, no accounting.
// - `squeue -h -r -j J -o '%i %T'` lists pending array tasks one per line
//   ("12_0 PENDING", ..., "12_3 PENDING"); without -r they are one line,
//   "12_[0-3] PENDING". Ended tasks are not listed unless `-t all` is given
//   ("12_0 CANCELLED", "12_1 FAILED"), and only until MinJobAge passes.
// - `scontrol show job J_T` (multi-line; `scontrol -o show job` gives one line)
//   for an ended task, the lines the executor needs:
//     cancelled by scancel J_T while running:
//       JobId=6 ArrayJobId=5 ArrayTaskId=0 JobName=wrap
//       JobState=CANCELLED Reason=None Dependency=(null)
//       ... ExitCode=0:15
//     exited with code 3:
//       JobId=7 ArrayJobId=5 ArrayTaskId=1 JobName=wrap
//       JobState=FAILED Reason=NonZeroExitCode Dependency=(null)
//       ... ExitCode=3:0
//     exited with code 0:
//       JobId=2 ArrayJobId=1 ArrayTaskId=0 JobName=wrap
//       JobState=COMPLETED Reason=None Dependency=(null)
//       ... ExitCode=0:0
//   ExitCode is "<exit status>:<signal>". A task still pending in the array's
//   aggregate record prints "JobId=<J> ArrayJobId=<J> ArrayTaskId=<T>" and
//   "JobState=PENDING Reason=Resources" (or Reason=None); the LAST task to
//   leave the aggregate record keeps JobId == ArrayJobId, so never take JobId
//   as a task's own id. StdOut=/StdErr= give the task's log path with %A/%a
//   already expanded.
// - A job id slurmctld no longer knows (MinJobAge=300 s after it ended, or
//   never) makes `scontrol show job` exit 1 with "slurm_load_jobs error:
//   Invalid job id specified" on stderr. Accounting is off: `sacct` cannot
//   help, so a worker's marker file is the lasting record of success.
//
// Environment: Start() exports SLURM_CONF=<dir>/slurm.conf into this process
// (client commands find slurmctld's address and the private munge socket,
// AuthInfo=socket=..., through it) and Stop() removes it again. Jobs inherit
// the submitter's environment (sbatch's default --export=ALL).
//
// Isolation: munged, slurmctld and slurmd are children of this process, run in
// the foreground so their pids are known and they are reaped here. They have
// their own ports (FreeLoopbackPort), a munge key made for this cluster alone,
// and state, spool, logs and pid files in `dir`; a system munged or Slurm is
// neither needed nor touched. Two clusters (two test processes under ctest -j,
// or two in one test) run at the same time without trouble (tested); both
// register the machine's host name as their node, which separate controllers
// do not mind. slurmctld and slurmd listen on all interfaces (Slurm 22.05 has
// no bind address); nobody without this cluster's munge key can talk to them.
//
// A test process that dies without Stop() (a crash, ctest's timeout) leaves
// nothing running either: a small watchdog shell, blocked on a pipe only this
// process writes, wakes when the pipe closes and SIGKILLs every process whose
// environment holds this cluster's SLURM_CONF (the daemons, slurmstepd, the
// jobs). PR_SET_PDEATHSIG would not do: it fires when the starting thread
// ends, slurmctld's credential changes clear it, and slurmstepd and the jobs
// are not our descendants.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "util/fs.h"
#include "util/status.h"

namespace medpipe::testing {

class SlurmCluster {
 public:
  // Writes <dir>/slurm.conf, starts munged, slurmctld and slurmd and returns
  // once sinfo shows the node idle. `dir` (created if missing) must have a
  // short path: unix socket paths below it must stay under 108 bytes, which a
  // TempDir is. The folder must outlive the cluster (declare it first). The node has
  // `cpus` CPUs whatever the hardware has (SlurmdParameters=config_overrides).
  // Returns kNotFound, with a message saying what is missing, when
  // slurm-wlm/munge are not installed or this process is not root (tests then
  // GTEST_SKIP with that message); other errors carry the daemons' log tails.
  static Result<std::unique_ptr<SlurmCluster>> Start(const fs::path& dir, int cpus = 2);
  ~SlurmCluster();
  SlurmCluster(const SlurmCluster&) = delete;
  SlurmCluster& operator=(const SlurmCluster&) = delete;

  // Cancels every job (waiting up to 15 s for the queue to empty), stops
  // slurmd, slurmctld and munged by their pids (TERM, then KILL after 10 s),
  // SIGKILLs any other process whose environment holds this cluster's
  // SLURM_CONF (a slurmstepd or job process that outlived the cancel, or a
  // client such as a `medpipe run` the test left running), and unsets
  // SLURM_CONF if it names this cluster. Idempotent.
  void Stop();

  const fs::path& conf() const { return conf_; }
  const fs::path& dir() const { return dir_; }
  // The default (and only) partition's name.
  std::string partition() const { return "medpipe"; }
  // The node's name: this machine's short host name.
  const std::string& node() const { return node_; }
  int cpus() const { return cpus_; }

  // Waits until squeue lists no job (true) or the timeout passes (false).
  bool WaitQueueEmpty(double timeout_s) const;

  // Runs a Slurm client command (args[0] a name such as "sbatch", looked up on
  // PATH and in the sbin folders) against this cluster, whatever SLURM_CONF
  // currently says.
  ProcessResult Run(std::vector<std::string> args) const;

 private:
  struct Daemon;
  SlurmCluster() = default;
  Status StartDaemons();
  Status WaitNodeIdle(double timeout_s);
  std::string LogTails() const;

  fs::path dir_, conf_;
  std::string node_;
  int cpus_ = 0;
  std::vector<std::unique_ptr<Daemon>> daemons_;  // munged, slurmctld, slurmd: stopped in reverse order
  pid_t watchdog_pid_ = -1;  // cleans up after a test process that died without Stop()
  int watchdog_fd_ = -1;     // the write end of its pipe; closes when this process exits
};

}  // namespace medpipe::testing
