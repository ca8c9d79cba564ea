// Kill -9 of the real binary at several points of a run; the rerun must end
// with outputs byte-identical to an uninterrupted run and must not redo the
// items that had finished.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "runner/checkpoint.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::Snapshot;
using testing::TempDir;

constexpr const char* kPipeline = R"(name: crash
workdir: work
seed: 3
stages:
  - id: annotate
    kind: annotate
    params:
      images: DATA/images
      annotations: DATA/boxes.coco.json
      labels_csv: DATA/labels.csv
      patient_pattern: '^(P\d+)_'
  - id: four
    kind: filter
    inputs: [annotate]
    params: {categories: [IPH, IVH, SAH, SDH]}
  - id: two
    kind: filter
    inputs: [annotate]
    params: {categories: [SDH, EDH], emptied_images: drop}
)";

class CrashTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new TempDir;
    testing::MakeExampleData(data_->path() / "data", 10, 12);
  }
  static void TearDownTestSuite() { delete data_; }

  // Writes the pipeline into `dir` and returns its path.
  std::string Pipeline(const TempDir& dir) {
    std::string text = kPipeline;
    for (size_t pos; (pos = text.find("DATA")) != std::string::npos;) {
      text.replace(pos, 4, (data_->path() / "data").string());
    }
    testing::WriteText(dir / "pipeline.yaml", text);
    return (dir / "pipeline.yaml").string();
  }

  static TempDir* data_;
};
TempDir* CrashTest::data_ = nullptr;

// Waits until `done()` holds or the process exits; true if it held.
template <typename Pred>
bool WaitFor(Pred done, pid_t pid) {
  for (int i = 0; i < 20000; ++i) {
    if (done()) return true;
    int status;
    if (::waitpid(pid, &status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return false;
}

TEST_F(CrashTest, KillNineAtSeveralPointsThenRerunGivesIdenticalOutputs) {
  TempDir ref;
  testing::ProcessResult full = testing::RunProcess({testing::MedpipeBinary(), "run", Pipeline(ref), "--threads", "2"});
  ASSERT_EQ(full.exit_code, 0) << full.err;
  auto expected = Snapshot(ref / "work");
  ASSERT_EQ(expected.count("four/dataset.json"), 1u);

  struct KillPoint {
    const char* stage;  // kill once this stage's journal has `lines` items
    size_t lines;
  };
  const KillPoint points[] = {{"annotate", 1}, {"annotate", 60}, {"annotate", 119}, {"four", 30}, {"two", 5}};
  for (const KillPoint& kp : points) {
    SCOPED_TRACE(std::string("kill in ") + kp.stage + " after " + std::to_string(kp.lines) + " items");
    TempDir run;
    std::string pipeline = Pipeline(run);
    fs::path stage_dir = run / "work" / kp.stage;
    pid_t pid = testing::SpawnProcess({testing::MedpipeBinary(), "run", pipeline, "--threads", "2"},
                                      {"MEDPIPE_DEBUG_ITEM_DELAY_MS=3"});
    bool hit = WaitFor([&] { return testing::JournalLines(stage_dir) >= kp.lines; }, pid);
    ::kill(pid, SIGKILL);
    testing::WaitProcess(pid);
    ASSERT_TRUE(hit) << "the run ended before the kill point";
    size_t journaled = testing::JournalLines(stage_dir);
    EXPECT_FALSE(ReadCommit(stage_dir).ok()) << "killed mid-stage, so not committed";

    testing::ProcessResult again = testing::RunProcess({testing::MedpipeBinary(), "run", pipeline, "--threads", "2"});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(Snapshot(run / "work"), expected);
    Result<CommitRecord> commit = ReadCommit(stage_dir);
    ASSERT_TRUE(commit.ok());
    EXPECT_GE(commit->items.resumed, static_cast<int64_t>(journaled))
        << "every item journaled before the kill is taken from the journal";
    EXPECT_EQ(commit->items.resumed + commit->items.done, commit->items.total);
  }
}

TEST_F(CrashTest, SameBytesWithOneAndTwoThreads) {
  TempDir one, two;
  ASSERT_EQ(testing::RunProcess({testing::MedpipeBinary(), "run", Pipeline(one), "--threads", "1"}).exit_code, 0);
  ASSERT_EQ(testing::RunProcess({testing::MedpipeBinary(), "run", Pipeline(two), "--threads", "2"}).exit_code, 0);
  EXPECT_EQ(Snapshot(one / "work"), Snapshot(two / "work"));
}

}  // namespace
}  // namespace medpipe
