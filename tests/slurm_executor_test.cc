// `medpipe run --executor slurm` against a real one-node Slurm cluster the
// test starts on loopback (tests/servers/slurm_cluster.h): the example
// pipelines end byte-identical to a local run for 1, 3 and 8 shards; a task
// cancelled mid-stage is resubmitted and redoes nothing it had finished; a
// controller killed mid-stage and rerun takes its jobs over without
// submitting any shard twice, and repairs a torn journal part; a task that
// fails every attempt fails the stage naming its log; Ctrl-C cancels the
// stage's tasks; a per-item command stage runs as an array too.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <regex>
#include <thread>

#include "runner/slurm_dispatch.h"
#include "tests/servers/slurm_cluster.h"
#include "tests/test_util.h"
#include "util/strings.h"

namespace medpipe::testing {
namespace {

using Clock = std::chrono::steady_clock;

// The executor block the tests append: fast polls, a short marker grace (the
// workdir is a local disk), `shards` tasks at most.
std::string SlurmBlock(int shards, int retries = 2) {
  return fmt::format(
      "\nexecutor:\n  type: slurm\n  max_tasks: {}\n  poll_interval: 0.2\n  marker_grace: 2\n  retries: {}\n", shards,
      retries);
}

// Lines of every part and the sum of "N run by this attempt" over every task
// log of a stage's RunItems pass.
int64_t ItemsRunByTasks(const fs::path& call_dir) {
  int64_t total = 0;
  std::regex re(R"((\d+) run by this attempt)");
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(call_dir, ec)) {
    if (e.path().filename().string().rfind("task-", 0) != 0) continue;
    std::string log = ReadText(e.path());
    for (std::sregex_iterator it(log.begin(), log.end(), re), end; it != end; ++it) total += std::stoll((*it)[1]);
  }
  return total;
}

size_t JobLines(const fs::path& call_dir) { return Split(ReadText(call_dir / "jobs.tsv"), '\n').size(); }

int64_t PartLines(const fs::path& call_dir) {
  int64_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(call_dir, ec)) {
    if (e.path().extension() == ".jsonl") {
      std::string t = ReadText(e.path());
      n += std::count(t.begin(), t.end(), '\n');
    }
  }
  return n;
}

class SlurmExecutorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new TempDir;
    cluster_dir_ = new TempDir;
    Result<std::unique_ptr<SlurmCluster>> c = SlurmCluster::Start(cluster_dir_->path() / "s", 2);
    if (!c.ok()) {
      skip_ = c.status().code() == Status::Code::kNotFound ? c.status().message() : "";
      start_error_ = c.status().ToString();
      return;
    }
    cluster_ = std::move(c).value().release();
    fs::path d = data_->path();
    auto run = [](std::vector<std::string> argv) {
      ProcessResult r = RunProcess(argv);
      ASSERT_EQ(r.exit_code, 0) << r.err;
    };
    run({MEDPIPE_EXAMPLEGEN, "--out", (d / "v3").string(), "--classes", "IPH,IVH,SAH,SDH", "--prefix", "V3",
         "--patients", "12", "--slices", "6", "--size", "48", "--seed", "11"});
    run({MEDPIPE_EXAMPLEGEN, "--out", (d / "roboflow").string(), "--roboflow", "--patients", "12", "--slices", "5",
         "--size", "48", "--seed", "12"});
    run({MEDPIPE_CTGEN, "--out", (d / "ct").string(), "--patients", "30", "--slices", "3", "--size", "48", "--seed",
         "13"});
    run({MEDPIPE_CTVOLGEN, "--out", (d / "ct_rate").string(), "--patients", "8", "--size", "32", "--slices", "12",
         "--dicom-patients", "1", "--seed", "5"});
  }
  static void TearDownTestSuite() {
    delete cluster_;
    delete cluster_dir_;
    delete data_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_NE(cluster_, nullptr) << start_error_;
  }

  static std::string Config(const std::string& file, const std::string& from, const std::string& to) {
    std::string text = ReadText(fs::path(MEDPIPE_SOURCE_DIR) / "configs" / file);
    for (size_t pos; (pos = text.find(from)) != std::string::npos;) text.replace(pos, from.size(), to);
    return text;
  }
  static std::string V4() {
    std::string t = Config("hemorrhage_v4.yaml", "../examples/data/v4", data_->path().string());
    return std::regex_replace(t, std::regex("workdir: \\S+"), "workdir: work");
  }
  static std::string CtRate() {
    std::string t = Config("ct_rate.yaml", "../examples/data/ct_rate", (data_->path() / "ct_rate").string());
    t = std::regex_replace(t, std::regex("shape: \\[96, 96, 48\\]"), "shape: [32, 32, 16]");
    return std::regex_replace(t, std::regex("workdir: \\S+"), "workdir: work");
  }
  // One convert stage over the 90 synthetic CT slices.
  static std::string Convert() {
    return fmt::format("name: conv\nworkdir: work\nseed: 1\nstages:\n  - id: conv\n    kind: convert\n    params:\n"
                       "      dicoms: {}\n      window: brain\n",
                       (data_->path() / "ct" / "dicom").string());
  }

  // Runs `yaml` as <dir>/p.yaml from a clean workdir and returns its outputs.
  std::map<std::string, std::string> RunClean(const TempDir& dir, const std::string& yaml) {
    fs::remove_all(dir / "work");
    WriteText(dir / "p.yaml", yaml);
    ProcessResult r = RunMedpipe({"run", (dir / "p.yaml").string()}, env_);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    last_err_ = r.err;
    return Snapshot(dir / "work");
  }

  // Runs the convert pipeline locally (its outputs are returned), then starts
  // it on Slurm (3 shards, items slowed by `delay_ms`) from a clean workdir
  // in the background and waits until its tasks have journaled `lines`
  // items. The pid of the controller goes to `pid`.
  std::map<std::string, std::string> LocalThenSlurmInBackground(const TempDir& dir, int delay_ms, int64_t lines,
                                                                pid_t* pid) {
    std::map<std::string, std::string> local = RunClean(dir, Convert());
    fs::remove_all(dir / "work");
    WriteText(dir / "p.yaml", Convert() + SlurmBlock(3));
    env_ = {fmt::format("MEDPIPE_DEBUG_ITEM_DELAY_MS={}", delay_ms)};
    *pid = SpawnProcess({MedpipeBinary(), "run", (dir / "p.yaml").string()}, env_);
    EXPECT_TRUE(WaitFor(60, [&] { return PartLines(CallDir(dir / "work" / "conv", 0)) >= lines; }));
    return local;
  }

  static TempDir* data_;
  static TempDir* cluster_dir_;
  static SlurmCluster* cluster_;
  static std::string skip_, start_error_;
  std::string last_err_;
  std::vector<std::string> env_;  // of the background run
};
TempDir* SlurmExecutorTest::data_ = nullptr;
TempDir* SlurmExecutorTest::cluster_dir_ = nullptr;
SlurmCluster* SlurmExecutorTest::cluster_ = nullptr;
std::string SlurmExecutorTest::skip_;
std::string SlurmExecutorTest::start_error_;

TEST_F(SlurmExecutorTest, V4IsByteIdenticalToALocalRunFor1_3And8Shards) {
  TempDir dir;
  std::map<std::string, std::string> local = RunClean(dir, V4());
  ASSERT_GT(local.size(), 100u);
  for (int shards : {1, 3, 8}) {
    SCOPED_TRACE(fmt::format("{} shards", shards));
    std::map<std::string, std::string> slurm = RunClean(dir, V4() + SlurmBlock(shards));
    EXPECT_TRUE(Contains(last_err_, "run augmented (augment, items on Slurm)")) << last_err_;
    EXPECT_TRUE(Contains(last_err_, fmt::format("in {} tasks, job", shards))) << last_err_;
    EXPECT_TRUE(Contains(last_err_, "run merged (merge)")) << "whole-dataset stages stay in the controller";
    EXPECT_TRUE(slurm == local) << SnapshotDiff(local, slurm);
    // The task logs stay beside the journal; the merged parts are gone.
    fs::path call = CallDir(dir / "work" / "augmented", 0);
    EXPECT_TRUE(fs::exists(call / "task-0.log"));
    EXPECT_FALSE(fs::exists(PartPath(call, 0)));
  }
}

TEST_F(SlurmExecutorTest, CtPrepIsByteIdenticalToALocalRunFor1_3And8Shards) {
  TempDir dir;
  std::map<std::string, std::string> local = RunClean(dir, CtRate());
  ASSERT_GT(local.size(), 20u);
  for (int shards : {1, 3, 8}) {
    SCOPED_TRACE(fmt::format("{} shards", shards));
    std::map<std::string, std::string> slurm = RunClean(dir, CtRate() + SlurmBlock(shards));
    EXPECT_TRUE(Contains(last_err_, "run prep (ctprep, items on Slurm)")) << last_err_;
    EXPECT_TRUE(slurm == local) << SnapshotDiff(local, slurm);
  }
}

// A per-item command stage (issue 20) over convert's PNGs: its items go to
// array tasks like a built-in stage's, and end byte-identical to local.
TEST_F(SlurmExecutorTest, PerItemCommandStageIsByteIdenticalToALocalRun) {
  const std::string yaml = Convert() +
                           "  - id: sums\n    kind: command\n    inputs: [conv]\n    params:\n"
                           "      foreach: {files: '*.png'}\n"
                           "      run: 'cksum < \"${item}\" > sum.txt; echo \"${item_key}\" > key.txt'\n";
  TempDir dir;
  std::map<std::string, std::string> local = RunClean(dir, yaml);
  ASSERT_GT(local.size(), 100u);
  std::map<std::string, std::string> slurm = RunClean(dir, yaml + SlurmBlock(3));
  EXPECT_TRUE(Contains(last_err_, "run sums (command, items on Slurm)")) << last_err_;
  EXPECT_TRUE(slurm == local) << SnapshotDiff(local, slurm);
}

TEST_F(SlurmExecutorTest, ACancelledTaskIsResubmittedAndRedoesNothingItFinished) {
  TempDir dir;
  pid_t pid = -1;
  std::map<std::string, std::string> local = LocalThenSlurmInBackground(dir, 150, 1, &pid);
  const fs::path call = CallDir(dir / "work" / "conv", 0);
  // Shard 0 has journaled a few items: cancel its task.
  ASSERT_TRUE(WaitFor(60, [&] {
    std::string t = fs::exists(PartPath(call, 0)) ? ReadText(PartPath(call, 0)) : "";
    return std::count(t.begin(), t.end(), '\n') >= 3;
  }));
  std::string job = Split(ReadText(call / "jobs.tsv"), '\t').at(0);
  ProcessResult c = cluster_->Run({"scancel", job + "_0"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  ASSERT_EQ(WaitProcess(pid), 0);
  std::string log = ReadText(dir / "work" / ".medpipe" / "run.log");
  EXPECT_TRUE(Contains(log, "CANCELLED; resubmitting")) << log;
  EXPECT_EQ(JobLines(call), 2u) << "one resubmission, of shard 0 alone";
  // The resubmitted task took what its cancelled attempt journaled from its
  // part and ran the rest: no item was done twice by finished attempts.
  std::smatch m;
  std::string task0 = ReadText(call / "task-0.log");
  ASSERT_TRUE(std::regex_search(task0, m, std::regex(R"((\d+) items, (\d+) run by this attempt, (\d+) resumed)")))
      << task0;
  EXPECT_GE(std::stoi(m[3]), 3);
  EXPECT_EQ(std::stoi(m[2]) + std::stoi(m[3]), std::stoi(m[1]));
  EXPECT_EQ(ItemsRunByTasks(call) + std::stoi(m[3]), 90);
  EXPECT_TRUE(Snapshot(dir / "work") == local) << SnapshotDiff(local, Snapshot(dir / "work"));
}

TEST_F(SlurmExecutorTest, AKilledControllerRerunTakesItsJobsOverWithoutSubmittingTwice) {
  TempDir dir;
  pid_t pid = -1;
  std::map<std::string, std::string> local = LocalThenSlurmInBackground(dir, 100, 4, &pid);
  const fs::path call = CallDir(dir / "work" / "conv", 0);
  ProcessResult status = RunMedpipe({"status", (dir / "p.yaml").string()});
  std::string job = Split(ReadText(call / "jobs.tsv"), '\t').at(0);
  EXPECT_TRUE(Contains(status.out, "Slurm jobs " + job)) << status.out;
  ::kill(pid, SIGKILL);
  WaitProcess(pid);
  ProcessResult r = RunMedpipe({"run", (dir / "p.yaml").string()}, env_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, "taking over the plan of an interrupted run")) << r.err;
  EXPECT_EQ(JobLines(call), 1u) << "no shard submitted twice";
  EXPECT_EQ(ItemsRunByTasks(call), 90);
  EXPECT_TRUE(Snapshot(dir / "work") == local) << SnapshotDiff(local, Snapshot(dir / "work"));
}

TEST_F(SlurmExecutorTest, TasksCancelledWithTheirControllerResumeFromTornParts) {
  TempDir dir;
  pid_t pid = -1;
  std::map<std::string, std::string> local = LocalThenSlurmInBackground(dir, 100, 4, &pid);
  const fs::path call = CallDir(dir / "work" / "conv", 0);
  ASSERT_TRUE(WaitFor(30, [&] { return fs::exists(PartPath(call, 0)); }));
  ::kill(pid, SIGKILL);
  WaitProcess(pid);
  ASSERT_EQ(cluster_->Run({"scancel", "--me"}).exit_code, 0);
  ASSERT_TRUE(cluster_->WaitQueueEmpty(30));
  const int64_t journaled = PartLines(call);
  // A write cut short by the kill: a line without its newline.
  {
    std::ofstream torn(PartPath(call, 0), std::ios::app);
    torn << R"({"k":"ct/dicom/p)";
  }
  ProcessResult r = RunMedpipe({"run", (dir / "p.yaml").string()}, env_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, "taking over the plan")) << r.err;
  EXPECT_TRUE(Contains(r.err, "resubmitting")) << r.err;
  // Every task ran again, each redoing only what its part did not hold.
  EXPECT_LE(ItemsRunByTasks(call), 90 + 3);
  EXPECT_GE(journaled, 4);
  EXPECT_TRUE(Snapshot(dir / "work") == local) << SnapshotDiff(local, Snapshot(dir / "work"));
}

TEST_F(SlurmExecutorTest, ATaskFailingEveryAttemptFailsTheStageNamingItsLog) {
  TempDir dir;
  std::string yaml = Convert() + SlurmBlock(2, /*retries=*/1) + "  command: /bin/false\n";
  WriteText(dir / "p.yaml", yaml);
  ProcessResult r = RunMedpipe({"run", (dir / "p.yaml").string()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(Contains(r.err, "FAILED (exit 1); resubmitting")) << r.err;
  EXPECT_TRUE(Contains(r.err, "Slurm tasks failed every attempt")) << r.err;
  EXPECT_TRUE(Contains(r.err, "task-0.log")) << r.err;
  EXPECT_TRUE(Contains(r.err, "attempt 2")) << r.err;
}

TEST_F(SlurmExecutorTest, CtrlCCancelsTheStagesTasks) {
  TempDir dir;
  WriteText(dir / "p.yaml", Convert() + SlurmBlock(3));
  pid_t pid = SpawnProcess({MedpipeBinary(), "run", (dir / "p.yaml").string()}, {"MEDPIPE_DEBUG_ITEM_DELAY_MS=200"});
  const fs::path call = CallDir(dir / "work" / "conv", 0);
  ASSERT_TRUE(WaitFor(60, [&] { return PartLines(call) >= 1; }));
  ::kill(pid, SIGINT);
  EXPECT_EQ(WaitProcess(pid), 130);
  EXPECT_TRUE(cluster_->WaitQueueEmpty(20)) << "the stage's tasks were cancelled";
  EXPECT_LT(PartLines(call), 90);
}

}  // namespace
}  // namespace medpipe::testing
