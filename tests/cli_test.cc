// The command line as users meet it: exit codes, messages, status and graph
// output, clean and dry runs, through the real binary.
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::ProcessResult;
using testing::TempDir;

ProcessResult Medpipe(std::vector<std::string> args) {
  args.insert(args.begin(), testing::MedpipeBinary());
  return testing::RunProcess(args);
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeExampleData(dir_ / "data", 3, 4);
    WritePipeline("[IPH, IVH, SAH, SDH]");
  }
  void WritePipeline(const std::string& categories) {
    testing::WriteText(dir_ / "p.yaml",
                       "name: cli\nworkdir: work\nstages:\n"
                       "  - id: ann\n    kind: annotate\n    params: {images: data/images, annotations: "
                       "data/boxes.coco.json, patient_pattern: '^(P\\d+)_'}\n"
                       "  - id: four\n    kind: filter\n    inputs: [ann]\n    params: {categories: " +
                           categories + "}\n");
  }
  std::string P() { return (dir_ / "p.yaml").string(); }
  TempDir dir_;
};

TEST_F(CliTest, RunThenStatusShowsDoneWithItemCounts) {
  ProcessResult r = Medpipe({"run", P()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("pipeline cli done; outputs in"), std::string::npos) << r.err;
  ProcessResult s = Medpipe({"status", P()});
  EXPECT_EQ(s.exit_code, 0);
  EXPECT_NE(s.out.find("ann                  annotate   done        12 (0 failed)"), std::string::npos) << s.out;
  EXPECT_TRUE(fs::exists(dir_ / "work/.medpipe/run.log"));
}

TEST_F(CliTest, StatusSaysWhyAStageIsStale) {
  ASSERT_EQ(Medpipe({"run", P()}).exit_code, 0);
  WritePipeline("[IPH, SDH]");
  ProcessResult s = Medpipe({"status", P()});
  EXPECT_NE(s.out.find("stale"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("params.categories changed"), std::string::npos) << s.out;
  ProcessResult dry = Medpipe({"run", P(), "--dry-run"});
  EXPECT_EQ(dry.exit_code, 0);
  EXPECT_NE(dry.out.find("would run four: params.categories changed"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("skip ann: up to date"), std::string::npos) << dry.out;
}

TEST_F(CliTest, ConfigErrorsExitTwoWithLocation) {
  testing::WriteText(dir_ / "bad.yaml",
                     "workdir: work\nstages:\n  - id: a\n    kind: anotate\n    params: {images: x}\n");
  ProcessResult r = Medpipe({"run", (dir_ / "bad.yaml").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad.yaml:4:11: stage 'a': unknown kind 'anotate' (did you mean 'annotate'?)"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "work")) << "nothing starts on a config error";
  EXPECT_EQ(Medpipe({"validate", (dir_ / "bad.yaml").string()}).exit_code, 2);
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Medpipe({}).exit_code, 2);
  EXPECT_EQ(Medpipe({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(Medpipe({"run", P(), "--threads", "zero"}).exit_code, 2);
  EXPECT_EQ(Medpipe({"run", P(), "--bogus"}).exit_code, 2);
  EXPECT_EQ(Medpipe({"run", P(), "--only", "four", "--from", "ann"}).exit_code, 2);
  ProcessResult r = Medpipe({"run", P(), "--until", "fuor"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("did you mean 'four'"), std::string::npos) << r.err;
  EXPECT_EQ(Medpipe({"run", (dir_ / "missing.yaml").string()}).exit_code, 2);
}

TEST_F(CliTest, FailingStageExitsOneNamingStageAndReason) {
  WritePipeline("[NOPE]");
  ProcessResult r = Medpipe({"run", P()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("stage four FAILED: category 'NOPE' is not in input ann"), std::string::npos) << r.err;
  ProcessResult s = Medpipe({"status", P()});
  EXPECT_NE(s.out.find("failed"), std::string::npos) << s.out;
}

TEST_F(CliTest, GraphPrintsDotAndMermaid) {
  ProcessResult dot = Medpipe({"graph", P()});
  EXPECT_EQ(dot.exit_code, 0);
  EXPECT_NE(dot.out.find("digraph \"cli\""), std::string::npos) << dot.out;
  EXPECT_NE(dot.out.find("\"ann\" -> \"four\";"), std::string::npos) << dot.out;
  ProcessResult mm = Medpipe({"graph", P(), "--format", "mermaid"});
  EXPECT_NE(mm.out.find("flowchart LR"), std::string::npos);
  EXPECT_NE(mm.out.find("s0 --> s1"), std::string::npos) << mm.out;
}

TEST_F(CliTest, CleanRemovesStageFolders) {
  ASSERT_EQ(Medpipe({"run", P()}).exit_code, 0);
  EXPECT_EQ(Medpipe({"clean", P(), "four"}).exit_code, 0);
  EXPECT_FALSE(fs::exists(dir_ / "work/four"));
  EXPECT_TRUE(fs::exists(dir_ / "work/ann"));
  EXPECT_EQ(Medpipe({"clean", P(), "nope"}).exit_code, 2);
  ProcessResult r = Medpipe({"run", P()});
  EXPECT_NE(r.err.find("skip ann: up to date"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("run four (filter): never run"), std::string::npos) << r.err;
}

TEST_F(CliTest, StagesListsKindsWithParams) {
  ProcessResult r = Medpipe({"stages"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("annotate (v1)"), std::string::npos);
  EXPECT_NE(r.out.find("filter (v1)"), std::string::npos);
  EXPECT_NE(r.out.find("emptied_images"), std::string::npos);
  EXPECT_NE(r.out.find("{keep, drop}"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace medpipe
