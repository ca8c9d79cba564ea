// The hemorrhage v4 workflow (configs/hemorrhage_v4.yaml) end to end on
// synthetic data: it balances every split to 48-52% negatives, validates,
// and a run killed at several points and resumed ends byte-identical to an
// uninterrupted one.
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "dataset/coco_io.h"
#include "runner/checkpoint.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::Snapshot;
using testing::TempDir;

class HemorrhageV4Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new TempDir;
    fs::path d = data_->path();
    auto run = [](std::vector<std::string> argv) {
      testing::ProcessResult r = testing::RunProcess(argv);
      ASSERT_EQ(r.exit_code, 0) << r.err;
    };
    run({MEDPIPE_EXAMPLEGEN, "--out", (d / "v3").string(), "--classes", "IPH,IVH,SAH,SDH", "--prefix", "V3",
         "--patients", "30", "--slices", "10", "--size", "64", "--seed", "11"});
    run({MEDPIPE_EXAMPLEGEN, "--out", (d / "roboflow").string(), "--roboflow", "--patients", "30", "--slices", "8",
         "--size", "64", "--seed", "12"});
    run({MEDPIPE_CTGEN, "--out", (d / "ct").string(), "--patients", "80", "--slices", "4", "--size", "64", "--seed",
         "13"});
  }
  static void TearDownTestSuite() { delete data_; }

  // The real config with its data and workdir pointed into `dir`.
  std::string Pipeline(const TempDir& dir) {
    std::string text = testing::ReadText(fs::path(MEDPIPE_SOURCE_DIR) / "configs/hemorrhage_v4.yaml");
    auto replace = [&](const std::string& from, const std::string& to) {
      for (size_t pos; (pos = text.find(from)) != std::string::npos;) text.replace(pos, from.size(), to);
    };
    replace("../examples/data/v4", data_->path().string());
    replace("workdir: ../examples/work/hemorrhage_v4", "workdir: work");
    testing::WriteText(dir / "v4.yaml", text);
    return (dir / "v4.yaml").string();
  }

  static TempDir* data_;
};
TempDir* HemorrhageV4Test::data_ = nullptr;

double NegativeShare(const Dataset& ds, const std::string& split) {
  auto by_image = ds.AnnotationsByImage();
  int images = 0, negatives = 0;
  for (const auto& img : ds.images) {
    if (img.split != split) continue;
    ++images;
    negatives += by_image.count(img.id) ? 0 : 1;
  }
  return images ? static_cast<double>(negatives) / images : -1;
}

TEST_F(HemorrhageV4Test, BalancedValidatedAndResumableAtEveryStage) {
  TempDir ref;
  testing::ProcessResult full = testing::RunProcess({testing::MedpipeBinary(), "run", Pipeline(ref)});
  ASSERT_EQ(full.exit_code, 0) << full.err;

  Result<Dataset> out = ReadCoco(ref / "work/checked/dataset.json");
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  for (const char* split : {"train", "valid", "test"}) {
    double share = NegativeShare(*out, split);
    EXPECT_GE(share, 0.48) << split;
    EXPECT_LE(share, 0.52) << split;
  }
  ASSERT_FALSE(HasFailure()) << "the seed's balance target is 48-52% negatives in every split";
  for (const char* split : {"train", "valid", "test"}) {
    EXPECT_TRUE(fs::exists(ref / "work/6class_coco" / split / "_annotations.coco.json")) << split;
    EXPECT_TRUE(fs::exists(ref / "work/4class_coco" / split / "_annotations.coco.json")) << split;
  }
  Result<Dataset> four = ReadRoboflow(ref / "work/4class_coco");
  ASSERT_TRUE(four.ok());
  ASSERT_EQ(four->categories.size(), 4u);
  EXPECT_EQ(four->categories[0].name, "IPH");
  // The 4-class set keeps the balance: images whose only bleed was EDH or HC
  // are dropped by filter, not turned into negatives.
  for (const char* split : {"train", "valid", "test"}) {
    double share = NegativeShare(*four, split);
    EXPECT_GE(share, 0.48) << "4-class " << split;
    EXPECT_LE(share, 0.52) << "4-class " << split;
  }
  EXPECT_NE(testing::ReadText(ref / "work/checked/validation.json").find("\"passed\": true"), std::string::npos);
  auto expected = Snapshot(ref / "work");

  // Kill -9 inside several stages, then resume.
  const std::pair<const char*, size_t> points[] = {{"no_hem_download", 20}, {"augmented", 100}, {"6class_coco", 600}};
  for (const auto& [stage, lines] : points) {
    SCOPED_TRACE(std::string("kill in ") + stage);
    TempDir run;
    std::string pipeline = Pipeline(run);
    fs::path stage_dir = run / "work" / stage;
    pid_t pid = testing::SpawnProcess({testing::MedpipeBinary(), "run", pipeline, "--threads", "2"},
                                      {"MEDPIPE_DEBUG_ITEM_DELAY_MS=1"});
    bool hit = false;
    for (int i = 0; i < 60000 && !hit; ++i) {
      if (testing::JournalLines(stage_dir) >= lines) hit = true;
      int status;
      if (!hit && ::waitpid(pid, &status, WNOHANG) == pid) break;
      if (!hit) std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    ::kill(pid, SIGKILL);
    testing::WaitProcess(pid);
    ASSERT_TRUE(hit) << "the run ended before the kill point";
    EXPECT_FALSE(ReadCommit(stage_dir).ok());
    testing::ProcessResult again = testing::RunProcess({testing::MedpipeBinary(), "run", pipeline});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    auto got = Snapshot(run / "work");
    EXPECT_TRUE(got == expected) << testing::SnapshotDiff(expected, got);
  }
}

}  // namespace
}  // namespace medpipe
