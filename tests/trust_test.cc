// Nothing lost quietly (issue 7, the runner and CLI half): clean previews and
// refuses to break other stages, dangling links are redone, per-item problems
// reach the console and `status`, --strict fails on them, and status and
// progress tell the truth during and after a run. Through the real binary.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <csignal>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "runner/checkpoint.h"
#include "runner/progress.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::ProcessResult;
using testing::TempDir;

using testing::Contains;

ProcessResult Medpipe(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
  return testing::RunMedpipe(std::move(args), env);
}

class TrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeExampleData(dir_ / "data", 3, 4);
    Write("^(P\\d+)_", "[IPH, IVH, SAH, SDH]");
  }
  // Two stages: annotate (links to the data) and a filter linking into it.
  void Write(const std::string& pattern, const std::string& categories, const std::string& extra = "",
             const std::string& second_id = "four") {
    testing::WriteText(dir_ / "p.yaml",
                       "name: trust\nworkdir: work\n" + extra +
                           "stages:\n"
                           "  - id: ann\n    kind: annotate\n    params: {images: data/images, annotations: "
                           "data/boxes.coco.json, patient_pattern: '" +
                           pattern + "'}\n  - id: " + second_id + "\n    kind: filter\n    inputs: [ann]\n"
                           "    params: {categories: " + categories + "}\n");
  }
  std::string P() { return (dir_ / "p.yaml").string(); }
  TempDir dir_;
};

TEST_F(TrustTest, CleanDryRunRemovesNothingAndSaysWhatWouldGo) {
  ASSERT_EQ(Medpipe({"run", P()}).exit_code, 0);
  for (const char* flag : {"--dry-run", "-n"}) {
    ProcessResult r = Medpipe({"clean", P(), flag});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(Contains(r.out, "would remove " + (dir_ / "work/ann").string() + " (")) << r.out;
    EXPECT_FALSE(Contains(r.out, "removed")) << r.out;
    EXPECT_TRUE(fs::exists(dir_ / "work/ann/dataset.json"));
    EXPECT_TRUE(fs::exists(dir_ / "work/four/dataset.json"));
  }
  ProcessResult one = Medpipe({"clean", P(), "four", "-n"});
  EXPECT_EQ(one.exit_code, 0);
  EXPECT_TRUE(fs::exists(dir_ / "work/four/dataset.json"));
  EXPECT_EQ(Medpipe({"status", P()}).out.find("never run"), std::string::npos) << "both stages still done";
}

TEST_F(TrustTest, CleanRejectsFlagsItDoesNotTakeAndSuggestsStageIds) {
  ASSERT_EQ(Medpipe({"run", P()}).exit_code, 0);
  ProcessResult bad = Medpipe({"clean", P(), "--threads", "2"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(Contains(bad.err, "clean does not take --threads")) << bad.err;
  ProcessResult typo = Medpipe({"clean", P(), "fuor"});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_TRUE(Contains(typo.err, "did you mean 'four'")) << typo.err;
  EXPECT_TRUE(fs::exists(dir_ / "work/four/dataset.json")) << "a usage error touches nothing";
  EXPECT_EQ(Medpipe({"status", P(), "--force", "x"}).exit_code, 2);
}

TEST_F(TrustTest, SecondCleanDoesNotClaimToRemoveWhatIsGone) {
  ASSERT_EQ(Medpipe({"run", P()}).exit_code, 0);
  ProcessResult first = Medpipe({"clean", P(), "four"});
  EXPECT_TRUE(Contains(first.out, "removed " + (dir_ / "work/four").string())) << first.out;
  ProcessResult second = Medpipe({"clean", P(), "four"});
  EXPECT_EQ(second.exit_code, 0);
  EXPECT_FALSE(Contains(second.out, "removed")) << second.out;
  EXPECT_TRUE(Contains(second.out, "nothing to remove")) << second.out;
}

TEST_F(TrustTest, CleaningAStageOthersLinkIntoIsRefusedOrCascades) {
  ASSERT_EQ(Medpipe({"run", P()}).exit_code, 0);
  ProcessResult refused = Medpipe({"clean", P(), "ann"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_TRUE(Contains(refused.err, "the outputs of four link into its files")) << refused.err;
  EXPECT_TRUE(fs::exists(dir_ / "work/ann/dataset.json"));

  ProcessResult preview = Medpipe({"clean", P(), "ann", "--cascade", "-n"});
  EXPECT_TRUE(Contains(preview.out, "would remove " + (dir_ / "work/four").string())) << preview.out;
  EXPECT_TRUE(fs::exists(dir_ / "work/four/dataset.json"));

  ProcessResult cascade = Medpipe({"clean", P(), "ann", "--cascade"});
  EXPECT_EQ(cascade.exit_code, 0) << cascade.err;
  EXPECT_FALSE(fs::exists(dir_ / "work/ann"));
  EXPECT_FALSE(fs::exists(dir_ / "work/four"));
}

TEST_F(TrustTest, DanglingOutputLinksAreRedone) {
  ASSERT_EQ(Medpipe({"run", P()}).exit_code, 0);
  ProcessResult forced = Medpipe({"clean", P(), "ann", "--force"});
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_TRUE(fs::exists(dir_ / "work/four/dataset.json"));
  // four's links now dangle: status must not call it done.
  ProcessResult s = Medpipe({"status", P()});
  EXPECT_FALSE(Contains(s.out, "four                 filter     done")) << s.out;
  ProcessResult r = Medpipe({"run", P()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "work/four")) {
    if (e.is_symlink()) {
      EXPECT_TRUE(fs::exists(e.path())) << e.path() << " still dangles";
    }
  }
}

TEST(CheckOutputsTest, ADanglingLinkIsNotAnOutputThatMatches) {
  TempDir dir;
  testing::WriteText(dir / "target.png", "x");
  fs::create_symlink("target.png", dir / "link.png");
  FileStat st = StatPath(dir / "link.png");
  std::vector<FileRecord> files = {{"link.png", st.size, st.mtime_ns, "h"}};
  EXPECT_EQ(CheckOutputs(dir.path(), files), "");
  fs::remove(dir / "target.png");
  EXPECT_EQ(CheckOutputs(dir.path(), files), "output link.png is a dangling link");
}

TEST_F(TrustTest, ProblemsReachTheConsoleAndStatusAndStrictFailsOnThem) {
  Write("^(P0001)_", "[IPH, IVH, SAH, SDH]");  // 8 of 12 images match no patient
  ProcessResult r = Medpipe({"run", P()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, "problems ann: 8 problems (8 no patient id); first: ")) << r.err;
  EXPECT_TRUE(Contains(r.err, "first: P0002_001.png: no patient id")) << "names the first items: " << r.err;
  EXPECT_TRUE(Contains(r.err, "done ann in")) << r.err;
  EXPECT_TRUE(Contains(r.err, ", 8 problems")) << r.err;
  ProcessResult s = Medpipe({"status", P()});
  EXPECT_TRUE(Contains(s.out, "problems ann: 8 no patient id")) << s.out;

  // Strict is not in the fingerprint: the up-to-date stage is judged on the
  // problems its commit recorded, with no rerun.
  ProcessResult skipped = Medpipe({"run", P(), "--strict"});
  EXPECT_EQ(skipped.exit_code, 1) << skipped.err;
  EXPECT_TRUE(Contains(skipped.err, "strict: up to date, but its last run recorded 8 problems")) << skipped.err;
  EXPECT_FALSE(Contains(skipped.err, "run ann")) << "nothing is redone: " << skipped.err;
  EXPECT_EQ(Medpipe({"run", P()}).exit_code, 0) << "without --strict the same workdir passes";

  ProcessResult strict = Medpipe({"run", P(), "--strict", "--force", "ann"});
  EXPECT_EQ(strict.exit_code, 1) << strict.err;
  EXPECT_TRUE(Contains(strict.err, "stage ann FAILED: strict: 8 problems")) << strict.err;

  Write("^(P0001)_", "[IPH, IVH, SAH, SDH]", "strict: true\n");
  EXPECT_EQ(Medpipe({"run", P()}).exit_code, 1) << "strict: true in the file";
  Write("^(P0001)_", "[IPH, IVH, SAH, SDH]", "strict: maybe\n");
  ProcessResult typo = Medpipe({"run", P()});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_TRUE(Contains(typo.err, "p.yaml:3:9: strict: expected true or false")) << typo.err;
}

// A stage none of whose items worked fails (a run that "succeeds" with
// nothing in it hides the cause), and so does its rerun; one good item is
// enough for it to pass with its problems.
TEST_F(TrustTest, AStageWhoseEveryItemFailedFails) {
  fs::remove_all(dir_ / "data/images");
  fs::create_directories(dir_ / "data/images");
  for (int i = 0; i < 3; ++i) testing::WriteText(dir_ / fmt::format("data/images/P{:04}_00{}.png", i + 1, i), "not a png");
  testing::WriteText(dir_ / "data/boxes.coco.json", "{\"images\": [], \"annotations\": [], \"categories\": []}");
  ProcessResult r = Medpipe({"run", P()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(Contains(r.err, "every one of its 3 items failed")) << r.err;
  EXPECT_TRUE(Contains(r.err, "problems ann: 3 problems")) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "work/ann/.medpipe/commit.json"));
  ProcessResult again = Medpipe({"run", P()});
  EXPECT_EQ(again.exit_code, 1) << again.err;
  EXPECT_TRUE(Contains(again.err, "every one of its 3 items failed")) << again.err;
  ProcessResult s = Medpipe({"status", P()});
  EXPECT_TRUE(Contains(s.out, "every one of its 3 items failed")) << s.out;

  testing::MakeExampleData(dir_ / "data", 1, 1);
  ProcessResult fixed = Medpipe({"run", P()});
  EXPECT_EQ(fixed.exit_code, 0) << fixed.err;
}

// A workdir belongs to one pipeline name: a variant file pointing at the
// same workdir is refused before any work, and the original is untouched.
TEST_F(TrustTest, AnotherPipelineCannotUseTheWorkdir) {
  ASSERT_EQ(Medpipe({"run", P()}).exit_code, 0);
  std::string text = testing::ReadText(dir_ / "p.yaml");
  text.replace(text.find("name: trust"), 11, "name: variant");
  text.replace(text.find("categories: [IPH, IVH, SAH, SDH]"), 32, "categories: [SDH]");
  testing::WriteText(dir_ / "variant.yaml", text);
  const std::string v = (dir_ / "variant.yaml").string();
  for (const char* cmd : {"run", "status", "clean"}) {
    ProcessResult r = Medpipe({cmd, v});
    EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, "belongs to pipeline 'trust'")) << cmd << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, "pipeline 'variant'")) << r.err;
  }
  EXPECT_TRUE(fs::exists(dir_ / "work/four/dataset.json"));
  ProcessResult s = Medpipe({"status", P()});
  EXPECT_TRUE(Contains(s.out, "four                 filter     done")) << s.out;
  EXPECT_TRUE(Contains(s.out, "ann                  annotate   done")) << s.out;
  ProcessResult own = Medpipe({"run", v, "--set", "workdir=work_variant"});
  EXPECT_EQ(own.exit_code, 0) << own.err;
}

TEST_F(TrustTest, StatusDuringALiveRunSaysRunningWithItsPid) {
  pid_t pid = testing::SpawnProcess({testing::MedpipeBinary(), "run", P(), "-j", "1"},
                                    {"MEDPIPE_DEBUG_ITEM_DELAY_MS=150"});
  std::string out;
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    out = Medpipe({"status", P()}).out;
    seen = Contains(out, fmt::format("running: pid {}", pid)) && Contains(out, "annotate   running");
  }
  ProcessResult dry = Medpipe({"run", P(), "-n"});
  ::kill(pid, SIGKILL);
  testing::WaitProcess(pid);
  EXPECT_TRUE(seen) << out;
  EXPECT_TRUE(Contains(out, fmt::format("pid {}, started ", pid))) << out;
  EXPECT_FALSE(Contains(out, "interrupted with")) << out;
  EXPECT_TRUE(Contains(dry.out, fmt::format("running now (pid {}", pid))) << dry.out;
}

TEST_F(TrustTest, WithoutATerminalProgressIsPrintedAsPlainLines) {
  ProcessResult r = Medpipe({"run", P(), "-j", "1"},
                            {"MEDPIPE_DEBUG_ITEM_DELAY_MS=40", "MEDPIPE_PROGRESS_INTERVAL_MS=100"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, "progress  ann")) << r.err;
  EXPECT_TRUE(Contains(r.err, "/12 (")) << r.err;
  EXPECT_FALSE(Contains(r.err, "\x1b[")) << "no cursor codes when stderr is not a terminal";
}

// A stage's second pass starts its count again: 5066/2970 (171%) was the
// first pass's items counted against the second's total.
// Problem kinds group problems: a path or file name leading the reason is
// the item, never a kind of its own (it was "/tmp/x/ct/LI..." per file).
TEST(ProblemKindTest, KindsAreWhatWentWrongNotWhere) {
  EXPECT_EQ(ProblemKind("/data/ct/series_a/LICENSE: not a DICOM file (no DICM preamble)"), "not a DICOM file");
  EXPECT_EQ(ProblemKind("labels.csv:7: column Cardiomegaly: '2' is not 0 or 1"), "column Cardiomegaly");
  EXPECT_EQ(ProblemKind("27 image files have no patient id"), "image files have no patient id");
  EXPECT_EQ(ProblemKind("no patient id"), "no patient id");
  EXPECT_EQ(ProblemKind("vol_003.nii.gz: truncated: 1048576 of 2097152 bytes"), "truncated");
  EXPECT_EQ(ProblemKind("/a/b.dcm"), "other");
  std::string long_reason(100, 'x');
  long_reason.replace(30, 1, " ");
  EXPECT_LE(ProblemKind(long_reason).size(), 60u);
}

TEST(ProgressTest, ASecondPassNeverCountsPastItsTotal) {
  Progress p("checked");
  p.StartPass(5);
  p.AdvanceResumed(2);
  p.Advance(3);
  EXPECT_TRUE(Contains(p.Line(), "5/5 (100%)")) << p.Line();
  p.StartPass(3);
  EXPECT_TRUE(Contains(p.Line(), "0/3 (0%)")) << p.Line();
  EXPECT_FALSE(Contains(p.Line(), "resumed")) << p.Line();
  p.Advance(2);
  EXPECT_TRUE(Contains(p.Line(), "2/3 (67%)")) << p.Line();
  p.Advance(5);  // a miscount upstream is still never shown past the total
  EXPECT_TRUE(Contains(p.Line(), "3/3 (100%)")) << p.Line();
}

TEST(ProgressTest, EtaAfterAResumeCountsOnlyThisAttemptsItems) {
  // 100 items, 60 resumed from the journal at once, then 10 ms per item: the
  // 40 left take about 400 ms, whatever the resumed items' speed suggests.
  Progress p("s");
  p.SetTotal(100);
  p.AdvanceResumed(60);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    p.Advance();
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double real_left = 30 * elapsed / 10;  // 30 items left at the measured pace
  EXPECT_NEAR(p.EtaSeconds(), real_left, 0.3 * real_left) << p.Line();
  EXPECT_TRUE(Contains(p.Line(), "70/100")) << p.Line();
  EXPECT_TRUE(Contains(p.Line(), "(60 resumed)")) << p.Line();
}

TEST_F(TrustTest, OrphanFoldersAreListedAndCleanedOnRequest) {
  ASSERT_EQ(Medpipe({"run", P()}).exit_code, 0);
  Write("^(P\\d+)_", "[IPH, IVH, SAH, SDH]", "", "four_class");  // the filter stage renamed
  ProcessResult s = Medpipe({"status", P()});
  EXPECT_TRUE(Contains(s.out, "orphan " + (dir_ / "work/four").string())) << s.out;
  ProcessResult preview = Medpipe({"clean", P(), "--orphans", "-n"});
  EXPECT_TRUE(Contains(preview.out, "would remove " + (dir_ / "work/four").string())) << preview.out;
  EXPECT_FALSE(Contains(preview.out, "work/ann")) << "only orphans: " << preview.out;
  EXPECT_TRUE(fs::exists(dir_ / "work/four"));
  ASSERT_EQ(Medpipe({"clean", P(), "--orphans"}).exit_code, 0);
  EXPECT_FALSE(fs::exists(dir_ / "work/four"));
  EXPECT_TRUE(fs::exists(dir_ / "work/ann/dataset.json"));
}

TEST_F(TrustTest, StatusSaysHowAParamChangedAndWhichInputIsStale) {
  ASSERT_EQ(Medpipe({"run", P()}).exit_code, 0);
  Write("^(P\\d)_", "[IPH, SDH]");
  ProcessResult s = Medpipe({"status", P()});
  EXPECT_TRUE(Contains(s.out, "params.patient_pattern changed: \"^(P\\\\d+)_\" -> \"^(P\\\\d)_\"")) << s.out;
  EXPECT_TRUE(Contains(s.out, "input ann changed (it is stale)")) << s.out;
  EXPECT_FALSE(Contains(s.out, "not done")) << s.out;
}

}  // namespace
}  // namespace medpipe
