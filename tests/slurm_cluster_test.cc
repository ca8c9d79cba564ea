// The Slurm test cluster itself: it runs job arrays, reports cancelled,
// failed and completed tasks the way the Slurm executor expects (see the
// observations in tests/servers/slurm_cluster.h), two clusters run side by
// side, and Stop leaves no daemon or job process behind.
#include "tests/servers/slurm_cluster.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>
#include <thread>

namespace medpipe::testing {
namespace {

using Clock = std::chrono::steady_clock;

// Starts a cluster in `dir`, or skips the test where Slurm cannot run.
#define START_CLUSTER_OR_SKIP(var, dir, cpus)                                 \
  auto var##_result = SlurmCluster::Start(dir, cpus);                         \
  if (var##_result.status().code() == Status::Code::kNotFound) {              \
    GTEST_SKIP() << var##_result.status().message();                          \
  }                                                                           \
  ASSERT_TRUE(var##_result.ok()) << var##_result.status().ToString();         \
  std::unique_ptr<SlurmCluster> var = std::move(var##_result).value()

// The value of `key=` in `scontrol show job` output ("" when absent).
std::string Field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    if (word.rfind(key + "=", 0) == 0) return word.substr(key.size() + 1);
  }
  return "";
}

double NowEpoch() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool ProcessAlive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

pid_t PidFromFile(const fs::path& path) { return static_cast<pid_t>(std::atol(ReadText(path).c_str())); }

TEST(SlurmClusterTest, RunsAJobArrayToTheEnd) {
  TempDir tmp;
  START_CLUSTER_OR_SKIP(cluster, tmp / "slurm", 2);
  EXPECT_EQ(std::getenv("SLURM_CONF"), cluster->conf().string());
  fs::path out = tmp / "out";
  fs::create_directories(out);
  const std::string o = out.string();

  double submitted = NowEpoch();
  ProcessResult sb = cluster->Run({"sbatch", "--parsable", "--array=0-3", "-D", o, "-o", o + "/%A_%a.log", "--wrap",
                                   "date +%s.%N > " + o + "/start_$SLURM_ARRAY_TASK_ID; echo $SLURM_ARRAY_TASK_ID > " +
                                       o + "/t_$SLURM_ARRAY_TASK_ID"});
  ASSERT_EQ(sb.exit_code, 0) << sb.err;
  std::string job = sb.out.substr(0, sb.out.find('\n'));
  ASSERT_FALSE(job.empty());
  EXPECT_EQ(job.find_first_not_of("0123456789"), std::string::npos) << "--parsable printed " << sb.out;

  ASSERT_TRUE(cluster->WaitQueueEmpty(60)) << cluster->Run({"squeue"}).out;
  double emptied = NowEpoch();
  double first_start = 1e300;
  for (int t = 0; t < 4; ++t) {
    EXPECT_EQ(ReadText(out / ("t_" + std::to_string(t))), std::to_string(t) + "\n") << "task " << t;
    first_start = std::min(first_start, std::atof(ReadText(out / ("start_" + std::to_string(t))).c_str()));
    ProcessResult show = cluster->Run({"scontrol", "show", "job", job + "_" + std::to_string(t)});
    EXPECT_EQ(Field(show.out, "JobState"), "COMPLETED") << show.out << show.err;
    EXPECT_EQ(Field(show.out, "ExitCode"), "0:0");
    EXPECT_EQ(Field(show.out, "StdOut"), o + "/" + job + "_" + std::to_string(t) + ".log");
  }
  std::printf("sbatch to first task start %.2f s, to empty queue %.2f s\n", first_start - submitted,
              emptied - submitted);
}

TEST(SlurmClusterTest, ReportsCancelledFailedAndCompletedTasks) {
  TempDir tmp;
  START_CLUSTER_OR_SKIP(cluster, tmp / "slurm", 2);
  fs::path out = tmp / "out";
  fs::create_directories(out);
  const std::string o = out.string();
  // Task 1 fails with 3, task 2 succeeds, the others sleep: on 2 CPUs two or
  // three run and the rest stay pending.
  ProcessResult sb = cluster->Run(
      {"sbatch", "--parsable", "--array=0-5", "-D", o, "-o", o + "/%A_%a.log", "--wrap",
       "echo $$ > " + o + "/pid_$SLURM_ARRAY_TASK_ID; case $SLURM_ARRAY_TASK_ID in 1) exit 3;; 2) exit 0;; esac; "
       "exec sleep 120"});
  ASSERT_EQ(sb.exit_code, 0) << sb.err;
  std::string job = sb.out.substr(0, sb.out.find('\n'));
  auto show = [&](int task) { return cluster->Run({"scontrol", "show", "job", job + "_" + std::to_string(task)}).out; };
  auto state = [&](int task) { return Field(show(task), "JobState"); };

  ASSERT_TRUE(WaitFor(30, [&] { return state(1) == "FAILED" && state(2) == "COMPLETED" && state(0) == "RUNNING"; }))
      << show(0) << show(1) << show(2);
  std::string failed = show(1);
  EXPECT_EQ(Field(failed, "Reason"), "NonZeroExitCode");
  EXPECT_EQ(Field(failed, "ExitCode"), "3:0");
  EXPECT_EQ(Field(failed, "ArrayJobId"), job);
  EXPECT_EQ(Field(failed, "ArrayTaskId"), "1");
  EXPECT_EQ(Field(show(2), "ExitCode"), "0:0");

  // Two sleepers hold both CPUs, so tasks 4 and 5 are pending, and squeue -r
  // lists them one per line.
  ASSERT_TRUE(WaitFor(30, [&] { return state(3) == "RUNNING"; })) << show(3);
  ProcessResult q = cluster->Run({"squeue", "-h", "-r", "-j", job, "-o", "%i %T"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_TRUE(Contains(q.out, job + "_4 PENDING\n")) << q.out;
  EXPECT_TRUE(Contains(q.out, job + "_5 PENDING\n")) << q.out;
  EXPECT_TRUE(Contains(q.out, job + "_0 RUNNING\n")) << q.out;
  EXPECT_FALSE(Contains(q.out, job + "_1 ")) << "ended tasks are not listed without -t all: " << q.out;
  EXPECT_EQ(Field(show(4), "JobState"), "PENDING");
  EXPECT_EQ(Field(show(4), "ArrayTaskId"), "4");

  ProcessResult cancel = cluster->Run({"scancel", job + "_0"});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  ASSERT_TRUE(WaitFor(30, [&] { return state(0) == "CANCELLED"; })) << show(0);
  EXPECT_EQ(Field(show(0), "ExitCode"), "0:15");
  // The cancelled task's slot goes to a pending one; the others are untouched.
  EXPECT_EQ(state(1), "FAILED");
  EXPECT_EQ(state(3), "RUNNING");

  ProcessResult unknown = cluster->Run({"scontrol", "show", "job", "999999"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_TRUE(Contains(unknown.err, "Invalid job id specified")) << unknown.err;

  // Stop cancels what still runs and leaves no daemon or job process alive.
  pid_t sleeper = PidFromFile(out / "pid_3");
  ASSERT_TRUE(ProcessAlive(sleeper));
  std::vector<pid_t> daemons = {PidFromFile(cluster->dir() / "run" / "slurmctld.pid"),
                                PidFromFile(cluster->dir() / "run" / "slurmd.pid"),
                                PidFromFile(cluster->dir() / "run" / "munged.pid")};
  cluster->Stop();
  EXPECT_FALSE(ProcessAlive(sleeper));
  for (pid_t pid : daemons) EXPECT_FALSE(ProcessAlive(pid)) << pid;
  EXPECT_EQ(std::getenv("SLURM_CONF"), nullptr);
  cluster->Stop();  // idempotent
}

TEST(SlurmClusterTest, TwoClustersRunSideBySide) {
  TempDir tmp;
  START_CLUSTER_OR_SKIP(a, tmp / "a", 2);
  START_CLUSTER_OR_SKIP(b, tmp / "b", 4);
  EXPECT_NE(Field(ReadText(a->conf()), "SlurmctldPort"), Field(ReadText(b->conf()), "SlurmctldPort"));
  // Each sees only its own jobs; b's node has the 4 CPUs it was given.
  fs::create_directories(tmp / "out");
  const std::string o = (tmp / "out").string();
  for (auto* c : {a.get(), b.get()}) {
    std::string name = c == a.get() ? "a" : "b";
    ProcessResult sb = c->Run({"sbatch", "--parsable", "--array=0-1", "-o", "/dev/null", "--wrap",
                               "echo " + name + " > " + o + "/" + name + "_$SLURM_ARRAY_TASK_ID"});
    ASSERT_EQ(sb.exit_code, 0) << sb.err;
  }
  ASSERT_TRUE(a->WaitQueueEmpty(60));
  ASSERT_TRUE(b->WaitQueueEmpty(60));
  for (const char* f : {"a_0", "a_1", "b_0", "b_1"}) EXPECT_EQ(ReadText(tmp / "out" / f), std::string(1, f[0]) + "\n");
  ProcessResult cpus = b->Run({"sinfo", "-h", "-N", "-o", "%c"});
  EXPECT_EQ(cpus.out, "4\n") << cpus.err;
  ProcessResult partitions = a->Run({"sinfo", "-h", "-o", "%P"});
  EXPECT_EQ(partitions.out, a->partition() + "*\n");
}

TEST(SlurmClusterTest, StartFailureCarriesTheDaemonLogs) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root, as the cluster does";
  TempDir tmp;
  // munged cannot bind a unix socket whose path exceeds 108 bytes.
  fs::path dir = tmp / std::string(120, 'x');
  auto cluster = SlurmCluster::Start(dir, 2);
  if (cluster.status().code() == Status::Code::kNotFound) GTEST_SKIP() << cluster.status().message();
  ASSERT_FALSE(cluster.ok());
  EXPECT_TRUE(Contains(cluster.status().message(), "munged")) << cluster.status().message();
  // munged's own words, from its output.
  EXPECT_TRUE(Contains(cluster.status().message(), "maximum length of 108 bytes for socket pathname"))
      << cluster.status().message();
  EXPECT_EQ(std::getenv("SLURM_CONF"), nullptr);
}

}  // namespace
}  // namespace medpipe::testing
