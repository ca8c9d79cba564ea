// The parts of the Slurm executor that need no cluster: shard cutting, the
// plan file, Slurm's task lists, the executor block of a pipeline file, the
// worker's confinement to its stage folder and its refusal of a plan made
// for another stage. The executor against a real cluster is in
// tests/slurm_executor_test.cc.
#include <gtest/gtest.h>

#include "cluster/slurm.h"
#include "graph/pipeline.h"
#include "runner/slurm_dispatch.h"
#include "stages/registry.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::Contains;
using testing::TempDir;

TEST(SlurmDispatch, CutShardsIsContiguousBalancedAndBounded) {
  std::vector<size_t> pending;
  for (size_t i = 0; i < 10; ++i) pending.push_back(i * 2);
  auto shards = CutShards(pending, 3, 1);
  ASSERT_EQ(shards.size(), 3u);
  EXPECT_EQ(shards[0], (std::vector<size_t>{0, 2, 4, 6}));
  EXPECT_EQ(shards[1], (std::vector<size_t>{8, 10, 12}));
  EXPECT_EQ(shards[2], (std::vector<size_t>{14, 16, 18}));
  EXPECT_EQ(CutShards(pending, 64, 4).size(), 3u) << "at least 4 items per task";
  EXPECT_EQ(CutShards(pending, 64, 1).size(), 10u) << "never more tasks than items";
  EXPECT_EQ(CutShards({7}, 8, 1), (std::vector<std::vector<size_t>>{{7}}));
}

TEST(SlurmDispatch, PlanRoundTripsAndATruncatedPlanIsCorruption) {
  TempDir dir;
  ShardPlan plan{"conv", "fp1", "digest1", "pending1", "medpipe.conv.0.abcd", {{0, 1, 2}, {5}, {}}};
  ASSERT_TRUE(WriteShardPlan(DefaultDisk(), dir.path(), plan).ok());
  Result<ShardPlan> back = ReadShardPlan(dir.path());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->stage, "conv");
  EXPECT_EQ(back->fingerprint, "fp1");
  EXPECT_EQ(back->digest, "digest1");
  EXPECT_EQ(back->pending, "pending1");
  EXPECT_EQ(back->job_name, "medpipe.conv.0.abcd");
  EXPECT_EQ(back->shards, plan.shards);
  std::string text = testing::ReadText(dir / "plan");
  testing::WriteText(dir / "plan", text.substr(0, text.find("shards")));
  EXPECT_EQ(ReadShardPlan(dir.path()).status().code(), Status::Code::kCorruption);
}

TEST(SlurmDispatch, TaskListsAsSlurmWritesThem) {
  EXPECT_EQ(slurm::FormatArray({5, 0, 1, 2, 3, 7, 8}), "0-3,5,7-8");
  EXPECT_EQ(slurm::FormatArray({4}), "4");
  EXPECT_EQ(*slurm::ParseArray("[4-6,9%2]"), (std::vector<int>{4, 5, 6, 9}));
  EXPECT_EQ(*slurm::ParseArray("3"), (std::vector<int>{3}));
  EXPECT_FALSE(slurm::ParseArray("[3-").ok());
  EXPECT_FALSE(slurm::ParseArray("6-2").ok());
  std::vector<std::string> argv = slurm::SbatchArgv(
      {"n", "/w/job.sh", {0, 1, 2}, 2, "/w/task-%a.log", "/w", "gpu", "", "1:00:00", "4G", 2, {"--qos=long"}});
  EXPECT_TRUE(std::find(argv.begin(), argv.end(), "--array=0-2%2") != argv.end());
  EXPECT_TRUE(std::find(argv.begin(), argv.end(), "--partition=gpu") != argv.end());
  EXPECT_TRUE(std::find(argv.begin(), argv.end(), "--cpus-per-task=2") != argv.end());
  EXPECT_EQ(argv.back(), "/w/job.sh");
}

TEST(SlurmDispatch, ConfinedDiskRefusesEveryWriteOutsideItsRoot) {
  TempDir dir;
  fs::create_directories(dir / "stage");
  ConfinedDisk disk(dir / "stage");
  EXPECT_TRUE(disk.WriteAtomic(dir / "stage" / "a" / "b.png", "x", false).ok());
  EXPECT_TRUE(disk.CreateDirs(dir / "stage" / ".medpipe" / "slurm").ok());
  for (const fs::path& outside : {dir / "other" / "b.png", dir / "stage" / ".." / "escape.png",
                                  fs::path("/tmp/medpipe-confined-test.png")}) {
    SCOPED_TRACE(outside.string());
    Status s = disk.WriteAtomic(outside, "x", false);
    EXPECT_EQ(s.code(), Status::Code::kInvalid);
    EXPECT_TRUE(Contains(s.message(), "outside"));
    EXPECT_FALSE(disk.SymlinkAtomic(outside, "target").ok());
    EXPECT_FALSE(disk.OpenAppend(outside).ok());
    EXPECT_FALSE(disk.Remove(outside).ok());
  }
  EXPECT_FALSE(fs::exists(dir / "escape.png"));
  EXPECT_FALSE(fs::exists("/tmp/medpipe-confined-test.png"));
}

TEST(SlurmDispatch, TheExecutorBlockIsValidatedLikeParams) {
  const std::string stages = "stages:\n  - id: c\n    kind: convert\n    params: {dicoms: d}\n";
  Result<Pipeline> ok = ParsePipeline(
      "name: t\nexecutor: {type: slurm, partition: cpu, max_tasks: 16, sbatch_args: [--qos=long]}\n" + stages, "p.yaml",
      BuiltinRegistry());
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->executor.type, "slurm");
  EXPECT_EQ(ok->executor.partition, "cpu");
  EXPECT_EQ(ok->executor.max_tasks, 16);
  EXPECT_EQ(ok->executor.sbatch_args, std::vector<std::string>{"--qos=long"});
  EXPECT_EQ(ok->executor.retries, 2);

  auto error = [&](std::string text) {
    text = text.substr(0, text.find("stages: []")) + stages;
    Result<Pipeline> p = ParsePipeline(text, "p.yaml", BuiltinRegistry());
    return p.ok() ? std::string() : p.status().message();
  };
  EXPECT_TRUE(Contains(error("executor: {partiton: cpu}\nstages: []\n"), "p.yaml:1:12: executor: unknown param "
                                                                          "'partiton' of the executor (did you mean "
                                                                          "'partition'?)"));
  EXPECT_TRUE(Contains(error("executor: {type: kubernetes}\nstages: []\n"), "local, slurm"));
  EXPECT_TRUE(Contains(error("executor: {max_tasks: many}\nstages: []\n"), "max_tasks"));
  EXPECT_TRUE(Contains(error("executor: {max_tasks: 5000}\nstages: []\n"), "expected 1 to 1000"));
  EXPECT_TRUE(Contains(error("executor: {sbatch_args: [--array=0-3]}\nstages: []\n"), "set by medpipe"));
  EXPECT_TRUE(Contains(error("executor: slurm\nstages: []\n"), "'executor' must be a mapping"));
}

TEST(SlurmDispatch, RunWithoutSlurmClientsFailsTheStageSayingSo) {
  TempDir dir;
  fs::create_directories(dir / "dicoms");
  fs::copy_file(fs::path(MEDPIPE_PUBLIC_DATA) / "ct_head_ge_dcm_qa_ct" / "01.dcm", dir / "dicoms" / "a.dcm");
  testing::WriteText(dir / "p.yaml", "name: t\nworkdir: work\nstages:\n  - id: conv\n    kind: convert\n"
                                     "    params: {dicoms: dicoms}\n");
  testing::ProcessResult r =
      testing::RunMedpipe({"run", (dir / "p.yaml").string(), "--executor", "slurm"}, {"PATH=/nonexistent"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(Contains(r.err, "not found: the Slurm client commands must be on PATH for --executor slurm")) << r.err;
  // The same pipeline runs locally.
  EXPECT_EQ(testing::RunMedpipe({"run", (dir / "p.yaml").string()}).exit_code, 0);
}

TEST(SlurmDispatch, AWorkerRefusesAPlanMadeForOtherItems) {
  TempDir dir;
  fs::create_directories(dir / "dicoms");
  fs::copy_file(fs::path(MEDPIPE_PUBLIC_DATA) / "ct_head_ge_dcm_qa_ct" / "01.dcm", dir / "dicoms" / "a.dcm");
  testing::WriteText(dir / "p.yaml", "name: t\nworkdir: work\nstages:\n  - id: conv\n    kind: convert\n"
                                     "    params: {dicoms: dicoms}\n");
  const fs::path call = CallDir(dir / "work" / "conv", 0);
  ASSERT_TRUE(WriteShardPlan(DefaultDisk(), call, ShardPlan{"conv", "not-this-stage", "d", "p", "n", {{0}}}).ok());
  testing::ProcessResult r = testing::RunMedpipe(
      {"worker", (dir / "p.yaml").string(), "--stage", "conv", "--call", "0", "--shard", "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "is not the one the controller planned")) << r.err;
  EXPECT_FALSE(fs::exists(MarkerPath(call, 0)));
  r = testing::RunMedpipe({"worker", (dir / "p.yaml").string(), "--stage", "conv", "--call", "0", "--shard", "4"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "shard 4 of a plan with 1 shards")) << r.err;
  r = testing::RunMedpipe({"worker", (dir / "p.yaml").string(), "--stage", "conv"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "worker needs --stage, --call and --shard")) << r.err;
}

}  // namespace
}  // namespace medpipe
