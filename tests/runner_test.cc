// Skip and rerun decisions of the runner, over small stage kinds defined here
// whose runs and item executions are counted.
#include <gtest/gtest.h>

#include <mutex>

#include "runner/planner.h"
#include "tests/test_util.h"
#include "util/hash.h"

namespace medpipe {
namespace {

using testing::RunYaml;
using testing::Snapshot;
using testing::TempDir;
using State = StageOutcome::State;

std::mutex g_mu;
std::map<std::string, int> g_stage_runs;  // stage id -> Run calls
std::map<std::string, int> g_item_runs;   // stage id -> item work calls
std::atomic<int> g_flaky_failures{0};      // transient failures left for the flaky item

void Counted(std::map<std::string, int>& m, const std::string& id) {
  std::lock_guard<std::mutex> lock(g_mu);
  ++m[id];
}

// "source": writes `items` files items/<i>.txt with "<value>-<i>". Param
// `comment` is fingerprinted but does not change the output (for restat).
class SourceStage : public Stage {
 public:
  SourceStage(std::string value, int64_t items, int64_t fail_item, int64_t flaky_item)
      : value_(value), items_(items), fail_item_(fail_item), flaky_item_(flaky_item) {}
  Status Run(StageContext& ctx) const override {
    Counted(g_stage_runs, ctx.id());
    std::vector<ItemTask> tasks;
    for (int64_t i = 0; i < items_; ++i) tasks.push_back({std::to_string(i), HashBytes(value_)});
    MEDPIPE_ASSIGN_OR_RETURN(auto results, ctx.RunItems(tasks, [&](size_t i, ItemOutput& out) -> Result<std::string> {
      Counted(g_item_runs, ctx.id());
      if (static_cast<int64_t>(i) == fail_item_) return Status::Invalid("item " + std::to_string(i) + " is bad");
      if (static_cast<int64_t>(i) == flaky_item_ && g_flaky_failures > 0) {
        --g_flaky_failures;
        return Status::Unavailable("HTTP 503 (server busy)");
      }
      MEDPIPE_RETURN_IF_ERROR(out.WriteFile("items/" + std::to_string(i) + ".txt", value_ + "-" + std::to_string(i)));
      return std::to_string(i);
    }));
    std::string all;
    for (const auto& r : results) all += r.ok ? r.payload + "," : "x,";
    return ctx.WriteOutput("summary.txt", all);
  }

 private:
  std::string value_;
  int64_t items_, fail_item_, flaky_item_;
};

// "concat": joins its inputs' summary.txt files.
class ConcatStage : public Stage {
 public:
  Status Run(StageContext& ctx) const override {
    Counted(g_stage_runs, ctx.id());
    std::string all;
    for (const auto& in : ctx.inputs()) {
      MEDPIPE_ASSIGN_OR_RETURN(std::string text, ReadFile(in.dir / "summary.txt"));
      all += in.id + ":" + text + "\n";
    }
    return ctx.WriteOutput("summary.txt", all);
  }
};

class FailStage : public Stage {
 public:
  Status Run(StageContext& ctx) const override {
    Counted(g_stage_runs, ctx.id());
    return Status::Failed("this stage always fails");
  }
};

const Registry& TestRegistry() {
  static const Registry* r = [] {
    auto* reg = new Registry;
    KindSpec source{"source", 1, "test source", {}, 0, 0};
    source.params = {{"value", ParamType::kString, "v", false, "", {}},
                     {"items", ParamType::kInt, "4", false, "", {}},
                     {"fail_item", ParamType::kInt, "-1", false, "", {}},
                     {"flaky_item", ParamType::kInt, "-1", false, "", {}},
                     {"comment", ParamType::kString, "", false, "", {}}};
    reg->Add({source, [](const StageDecl& d, uint64_t) -> Result<std::unique_ptr<Stage>> {
                return std::unique_ptr<Stage>(new SourceStage(d.params.GetString("value"), d.params.GetInt("items"),
                                                              d.params.GetInt("fail_item"),
                                                              d.params.GetInt("flaky_item")));
              }});
    reg->Add({KindSpec{"concat", 1, "test concat", {}, 1, -1},
              [](const StageDecl&, uint64_t) -> Result<std::unique_ptr<Stage>> {
                return std::unique_ptr<Stage>(new ConcatStage);
              }});
    reg->Add({KindSpec{"fail", 1, "test failure", {}, 0, -1},
              [](const StageDecl&, uint64_t) -> Result<std::unique_ptr<Stage>> {
                return std::unique_ptr<Stage>(new FailStage);
              }});
    return reg;
  }();
  return *r;
}

// a -> b, c independent; b reads a.
std::string Diamond(const std::string& a_value = "v", const std::string& a_comment = "", int items = 4) {
  return "name: t\nworkdir: work\nseed: 1\nstages:\n"
         "  - id: a\n    kind: source\n    params: {value: " + a_value + ", comment: '" + a_comment +
         "', items: " + std::to_string(items) + "}\n"
         "  - id: b\n    kind: concat\n    inputs: [a]\n"
         "  - id: c\n    kind: source\n    params: {value: other}\n";
}

class RunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_stage_runs.clear();
    g_item_runs.clear();
    g_flaky_failures = 0;
  }
  testing::RunResult Run(const std::string& yaml, RunOptions o = {}) {
    o.threads = o.threads ? o.threads : 2;
    return RunYaml(TestRegistry(), dir_.path(), yaml, o);
  }
  int Runs(const std::string& id) { return g_stage_runs[id]; }
  int Items(const std::string& id) { return g_item_runs[id]; }
  TempDir dir_;
};

TEST_F(RunnerTest, FirstRunRunsEverythingSecondRunSkipsEverything) {
  auto r1 = Run(Diamond());
  EXPECT_EQ(r1.summary.exit_code, 0);
  EXPECT_EQ(r1.Of("a").state, State::kRan);
  EXPECT_EQ(r1.Of("a").reason, "never run");
  EXPECT_EQ(Items("a"), 4);
  auto r2 = Run(Diamond());
  EXPECT_EQ(r2.summary.exit_code, 0);
  for (const char* id : {"a", "b", "c"}) {
    EXPECT_EQ(r2.Of(id).state, State::kSkipped) << id;
    EXPECT_EQ(Runs(id), 1) << id;
  }
}

TEST_F(RunnerTest, ParamChangeRerunsThatStageAndDownstreamOnly) {
  Run(Diamond("v"));
  auto r = Run(Diamond("w"));
  EXPECT_EQ(r.Of("a").state, State::kRan);
  EXPECT_EQ(r.Of("a").reason, "params.value changed: \"v\" -> \"w\"");
  EXPECT_EQ(r.Of("b").state, State::kRan);
  EXPECT_EQ(r.Of("b").reason, "input a changed");
  EXPECT_EQ(r.Of("c").state, State::kSkipped);
  EXPECT_EQ(Runs("a"), 2);
  EXPECT_EQ(Runs("c"), 1);
  EXPECT_EQ(testing::ReadText(dir_ / "work/a/items/0.txt"), "w-0");
}

TEST_F(RunnerTest, StatusExplainsStaleness) {
  Run(Diamond("v"));
  testing::WriteText(dir_ / "pipeline.yaml", Diamond("w"));
  Result<Pipeline> p = LoadPipeline((dir_ / "pipeline.yaml").string(), TestRegistry());
  ASSERT_TRUE(p.ok());
  auto stages = TestRegistry().Instantiate(*p);
  ASSERT_TRUE(stages.ok());
  std::vector<StageReport> reports = InspectPipeline(*p, *stages);
  EXPECT_EQ(reports[0].state, "stale");
  EXPECT_EQ(reports[0].reason, "params.value changed: \"v\" -> \"w\"");
  EXPECT_EQ(reports[1].state, "stale");
  EXPECT_EQ(reports[1].reason, "input a changed (it is stale)");
  EXPECT_EQ(reports[2].state, "done");
  ASSERT_TRUE(reports[2].commit.has_value());
  EXPECT_EQ(reports[2].commit->items.total, 4);
}

TEST_F(RunnerTest, RerunWithIdenticalOutputsLeavesDependantsDone) {
  Run(Diamond("v", "first"));
  auto r = Run(Diamond("v", "second"));
  EXPECT_EQ(r.Of("a").state, State::kRan);
  EXPECT_EQ(r.Of("a").reason, "params.comment changed: \"first\" -> \"second\"");
  // The items' fingerprints did not change: they come from the journal.
  EXPECT_EQ(Items("a"), 4);
  EXPECT_EQ(r.Of("a").items.resumed, 4);
  EXPECT_EQ(r.Of("b").state, State::kSkipped);
  EXPECT_EQ(Runs("b"), 1);
}

TEST_F(RunnerTest, FromRerunsStageAndEverythingDownstream) {
  Run(Diamond());
  RunOptions o;
  o.from = "a";
  auto r = Run(Diamond(), o);
  EXPECT_EQ(r.Of("a").state, State::kRan);
  EXPECT_EQ(r.Of("a").reason, "forced");
  EXPECT_EQ(r.Of("b").state, State::kRan);
  EXPECT_EQ(r.Of("c").state, State::kSkipped);
  EXPECT_EQ(Items("a"), 8) << "a forced rerun redoes its items";
}

TEST_F(RunnerTest, UntilRunsOnlyTheStageAndWhatItNeeds) {
  RunOptions o;
  o.until = "a";
  auto r = Run(Diamond(), o);
  EXPECT_EQ(r.Of("a").state, State::kRan);
  EXPECT_EQ(r.Of("b").state, State::kNotSelected);
  EXPECT_EQ(r.Of("c").state, State::kNotSelected);
  EXPECT_FALSE(fs::exists(dir_ / "work/b"));
}

TEST_F(RunnerTest, OnlyRunsExactlyOneStageOnCheckpointedInputs) {
  Run(Diamond());
  RunOptions o;
  o.only = "b";
  auto r = Run(Diamond(), o);
  EXPECT_EQ(r.Of("b").state, State::kRan);
  EXPECT_EQ(r.Of("a").state, State::kNotSelected);
  EXPECT_EQ(r.Of("c").state, State::kNotSelected);
  EXPECT_EQ(Runs("a"), 1);
  EXPECT_EQ(Runs("b"), 2);
}

TEST_F(RunnerTest, OnlyFailsClearlyWhenAnInputIsNotCheckpointed) {
  RunOptions o;
  o.only = "b";
  try {
    Run(Diamond(), o);
    FAIL() << "expected a config error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--only b: input 'a' has no checkpoint (never run)"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(Runs("b"), 0);
}

TEST_F(RunnerTest, ForceRerunsOneStageAndRestatSparesItsDependants) {
  Run(Diamond());
  RunOptions o;
  o.force = {"a"};
  auto r = Run(Diamond(), o);
  EXPECT_EQ(r.Of("a").state, State::kRan);
  EXPECT_EQ(Items("a"), 8);
  EXPECT_EQ(r.Of("b").state, State::kSkipped) << "a's outputs came out identical";
}

TEST_F(RunnerTest, UnknownSelectionIdIsAConfigErrorWithSuggestion) {
  RunOptions o;
  o.from = "aa";
  try {
    Run(Diamond(), o);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--from aa: no such stage"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("did you mean 'a'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(Runs("a"), 0);
}

TEST_F(RunnerTest, DeletedOutputFileIsRedoneAloneAndDependantsStayDone) {
  Run(Diamond());
  fs::remove(dir_ / "work/a/items/2.txt");
  auto r = Run(Diamond());
  EXPECT_EQ(r.Of("a").state, State::kRan);
  EXPECT_EQ(r.Of("a").reason, "output items/2.txt was deleted");
  EXPECT_EQ(Items("a"), 5) << "4 items first, then only the deleted one";
  EXPECT_EQ(r.Of("a").items.resumed, 3);
  EXPECT_EQ(testing::ReadText(dir_ / "work/a/items/2.txt"), "v-2");
  EXPECT_EQ(r.Of("b").state, State::kSkipped);
}

TEST_F(RunnerTest, ChangedOutputFileIsRedone) {
  Run(Diamond());
  testing::WriteText(dir_ / "work/a/items/1.txt", "tampered, and longer");
  auto r = Run(Diamond());
  EXPECT_EQ(r.Of("a").reason, "output items/1.txt was changed");
  EXPECT_EQ(Items("a"), 5);
  EXPECT_EQ(testing::ReadText(dir_ / "work/a/items/1.txt"), "v-1");
}

TEST_F(RunnerTest, StaleFilesOfEarlierParamsAreRemovedAtCommit) {
  Run(Diamond("v", "", 6));
  ASSERT_TRUE(fs::exists(dir_ / "work/a/items/5.txt"));
  Run(Diamond("v", "", 3));
  EXPECT_FALSE(fs::exists(dir_ / "work/a/items/5.txt"));
  EXPECT_FALSE(fs::exists(dir_ / "work/a/items/3.txt"));
  EXPECT_TRUE(fs::exists(dir_ / "work/a/items/2.txt"));
}

TEST_F(RunnerTest, PerItemProblemsAreRecordedAndTheStageGoesOn) {
  std::string yaml =
      "workdir: work\nstages:\n  - id: a\n    kind: source\n    params: {items: 5, fail_item: 3}\n";
  auto r = Run(yaml);
  EXPECT_EQ(r.summary.exit_code, 0);
  EXPECT_EQ(r.Of("a").items.failed, 1);
  std::string report = testing::ReadText(dir_ / "work/a/report.json");
  EXPECT_NE(report.find("\"item\": \"3\""), std::string::npos) << report;
  EXPECT_NE(report.find("item 3 is bad"), std::string::npos) << report;
  EXPECT_EQ(testing::ReadText(dir_ / "work/a/summary.txt"), "0,1,2,x,4,");
}

TEST_F(RunnerTest, TransientItemFailuresAreRetriedByTheNextRunAlone) {
  std::string yaml = "workdir: work\nstages:\n  - id: a\n    kind: source\n    params: {items: 5, flaky_item: 2}\n";
  g_flaky_failures = 1;
  auto first = Run(yaml);
  EXPECT_EQ(first.summary.exit_code, 0);
  EXPECT_EQ(first.Of("a").items.failed, 1);
  EXPECT_EQ(testing::ReadText(dir_ / "work/a/summary.txt"), "0,1,x,3,4,");
  auto second = Run(yaml);
  EXPECT_EQ(second.Of("a").state, State::kRan);
  EXPECT_EQ(second.Of("a").reason, "retrying 1 items that failed transiently");
  EXPECT_EQ(second.Of("a").items.resumed, 4);
  EXPECT_EQ(second.Of("a").items.failed, 0);
  EXPECT_EQ(Items("a"), 6);
  EXPECT_EQ(testing::ReadText(dir_ / "work/a/summary.txt"), "0,1,2,3,4,");
  EXPECT_EQ(Run(yaml).Of("a").state, State::kSkipped);
}

TEST_F(RunnerTest, FailedStageBlocksDependantsAndIndependentBranchesFinish) {
  std::string yaml =
      "workdir: work\nstages:\n"
      "  - id: bad\n    kind: fail\n"
      "  - id: after\n    kind: concat\n    inputs: [bad]\n"
      "  - id: side\n    kind: source\n";
  auto r = Run(yaml);
  EXPECT_EQ(r.summary.exit_code, 1);
  EXPECT_EQ(r.Of("bad").state, State::kFailed);
  EXPECT_NE(r.Of("bad").reason.find("this stage always fails"), std::string::npos);
  EXPECT_EQ(r.Of("after").state, State::kBlocked);
  EXPECT_EQ(r.Of("after").reason, "input bad failed");
  EXPECT_EQ(r.Of("side").state, State::kRan);
  EXPECT_EQ(Runs("after"), 0);
  Result<FailureRecord> f = ReadFailure(dir_ / "work/bad");
  ASSERT_TRUE(f.ok());
  EXPECT_NE(f->reason.find("always fails"), std::string::npos);
}

TEST_F(RunnerTest, DryRunSaysWhatWouldRunAndTouchesNothing) {
  Run(Diamond("v"));
  auto before = Snapshot(dir_ / "work");
  RunOptions o;
  o.dry_run = true;
  auto r = Run(Diamond("w"), o);
  EXPECT_EQ(r.Of("a").state, State::kWouldRun);
  EXPECT_EQ(r.Of("a").reason, "params.value changed: \"v\" -> \"w\"");
  EXPECT_EQ(r.Of("b").state, State::kWouldRun);
  EXPECT_EQ(r.Of("b").reason, "input a will run");
  EXPECT_EQ(r.Of("c").state, State::kSkipped);
  EXPECT_EQ(Runs("a"), 1);
  EXPECT_EQ(Snapshot(dir_ / "work"), before);
}

TEST_F(RunnerTest, SameOutputBytesForOneAndTwoThreads) {
  TempDir other;
  RunOptions one;
  one.threads = 1;
  auto r1 = RunYaml(TestRegistry(), dir_.path(), Diamond("v", "", 50), one);
  RunOptions two;
  two.threads = 2;
  auto r2 = RunYaml(TestRegistry(), other.path(), Diamond("v", "", 50), two);
  EXPECT_EQ(Snapshot(dir_ / "work"), Snapshot(other / "work"));
}

TEST_F(RunnerTest, FullDiskFailsTheStageKeepsFinishedItemsAndTheRerunResumes) {
  Run(Diamond());  // everything committed once
  FullDiskAfter disk(6);  // with one thread: 3 items of one write and one journal append
  RunOptions o;
  o.disk = &disk;
  o.threads = 1;
  auto r = Run(Diamond("w", "", 10), o);
  EXPECT_EQ(r.summary.exit_code, 1);
  EXPECT_EQ(r.Of("a").state, State::kFailed);
  EXPECT_NE(r.Of("a").reason.find("No space left on device"), std::string::npos) << r.Of("a").reason;
  EXPECT_EQ(r.Of("c").state, State::kSkipped);
  // c's checkpoint is intact; a's is not claimed done.
  EXPECT_TRUE(ReadCommit(dir_ / "work/c").ok());
  EXPECT_FALSE(ReadCommit(dir_ / "work/a").ok());
  int before = Items("a");
  auto again = Run(Diamond("w", "", 10));
  EXPECT_EQ(again.summary.exit_code, 0);
  EXPECT_EQ(again.Of("a").items.resumed, 3) << "the 3 items written before the disk filled are kept";
  EXPECT_EQ(Items("a") - before, 7);
}

TEST_F(RunnerTest, StatusNeverRewritesAJournal) {
  Run(Diamond());
  fs::path journal = dir_ / "work/a/.medpipe/items.jsonl";
  std::string torn = testing::ReadText(journal) + "{\"k\":\"torn";
  testing::WriteText(journal, torn);
  Result<Pipeline> p = LoadPipeline((dir_ / "pipeline.yaml").string(), TestRegistry());
  ASSERT_TRUE(p.ok());
  auto stages = TestRegistry().Instantiate(*p);
  ASSERT_TRUE(stages.ok());
  InspectPipeline(*p, *stages);
  EXPECT_EQ(testing::ReadText(journal), torn) << "a running stage may be appending to it";
}

TEST_F(RunnerTest, CancelledRunKeepsFinishedItems) {
  std::atomic<bool> cancel{true};
  RunOptions o;
  o.cancel = &cancel;
  auto r = Run(Diamond(), o);
  EXPECT_EQ(r.summary.exit_code, 130);
  EXPECT_EQ(r.Of("a").state, State::kCancelled);
  EXPECT_FALSE(ReadCommit(dir_ / "work/a").ok());
}

}  // namespace
}  // namespace medpipe
