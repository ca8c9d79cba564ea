// The `command` stage: the user's own shell or Python step between built-in
// stages, whole-stage and per item, with its failures, its safety checks,
// resume after kill -9 and fingerprints; and the subprocess runner under it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "dataset/coco_io.h"
#include "runner/planner.h"
#include "tests/test_util.h"
#include "util/subprocess.h"

namespace medpipe {
namespace {

using testing::Contains;
using testing::ReadText;
using testing::TempDir;
using testing::WriteText;
using State = StageOutcome::State;

// --- util/subprocess ---------------------------------------------------------

TEST(Subprocess, RunsWithTheGivenEnvironmentAndFolder) {
  TempDir dir;
  std::vector<std::string> env = {"ONLY=this", "PATH=/usr/bin:/bin"};
  ProcessOptions o;
  o.env = &env;
  o.cwd = dir.path();
  Result<ProcessResult> r = RunProcess({"/bin/sh", "-c", "echo \"$ONLY $HOME\"; pwd; echo err >&2; exit 4"}, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 4);
  EXPECT_EQ(r->out, "this \n" + fs::canonical(dir.path()).string() + "\n") << "HOME is not passed: env replaces it";
  EXPECT_EQ(r->err, "err\n");
}

TEST(Subprocess, ATimeoutKillsTheWholeProcessGroup) {
  TempDir dir;
  ProcessOptions o;
  o.timeout_s = 0.3;
  auto t0 = std::chrono::steady_clock::now();
  // The shell's child would keep the pipe open for 30 s if only the shell died.
  Result<ProcessResult> r = RunProcess({"/bin/sh", "-c", "sleep 30 & sleep 30; echo never"}, o);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(s, 5.0);
}

TEST(Subprocess, LogsEverythingAndKeepsTheTail) {
  TempDir dir;
  ProcessOptions o;
  o.log = dir / "log.txt";
  o.keep_bytes = 100;
  Result<ProcessResult> r =
      RunProcess({"/bin/sh", "-c", "i=0; while [ $i -lt 1000 ]; do echo line$i >&2; i=$((i+1)); done"}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_LE(r->err.size(), 100u);
  EXPECT_EQ(LastLines(r->err, 2), "line998\nline999");
  std::string log = ReadText(dir / "log.txt");
  EXPECT_TRUE(Contains(log, "line0\nline1\n"));
  EXPECT_TRUE(Contains(log, "line999\n"));
}

TEST(Subprocess, CancelKillsTheChild) {
  std::atomic<bool> cancel{false};
  ProcessOptions o;
  o.cancel = &cancel;
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  Result<ProcessResult> r = RunProcess({"sleep", "30"}, o);
  t.join();
  EXPECT_EQ(r.status().code(), Status::Code::kCancelled);
}

// --- the command stage ---------------------------------------------------------

class CommandTest : public ::testing::Test {
 protected:
  void SetUp() override { testing::MakeExampleData(dir_ / "data", 2, 3); }

  // annotate -> `stages` (indented entries of the stages list).
  std::string Pipeline(const std::string& stages) {
    return "workdir: work\nseed: 7\nstages:\n  - id: ann\n    kind: annotate\n    params: {images: data/images}\n" +
           stages;
  }
  testing::RunResult Run(const std::string& stages, RunOptions options = {}) {
    options.threads = 2;
    return testing::RunYaml(BuiltinRegistry(), dir_.path(), Pipeline(stages), options);
  }
  Status Load(const std::string& stages) {
    testing::WriteText(dir_ / "pipeline.yaml", Pipeline(stages));
    Result<medpipe::Pipeline> p = LoadPipeline((dir_ / "pipeline.yaml").string(), BuiltinRegistry());
    if (!p.ok()) return p.status();
    Result<std::vector<std::unique_ptr<Stage>>> s = BuiltinRegistry().Instantiate(*p);
    return s.ok() ? Status::OK() : s.status();
  }
  std::vector<std::string> Manifest(const std::string& stage) {
    std::vector<std::string> out;
    Result<std::vector<FileRecord>> files = ReadManifest(dir_ / "work" / stage);
    EXPECT_TRUE(files.ok());
    if (files.ok()) {
      for (const auto& f : *files) out.push_back(f.path);
    }
    return out;
  }
  TempDir dir_;
};

// A per-item shell command over annotate's images, a Python script reading
// annotate's dataset and the sizes, and analyze reading the script's dataset.
const char* kScript = R"(import json, os, sys
out = os.environ["MEDPIPE_OUT"]
ds = json.load(open(os.path.join(sys.argv[1], "dataset.json")))
for img in ds["images"]:
    stem = os.path.splitext(img["file_name"])[0]
    with open(os.path.join(sys.argv[2], stem, "size.txt")) as f:
        img.setdefault("attributes", {})["bytes"] = int(f.read().split()[0])
    img["attributes"]["tag"] = os.environ["MEDPIPE_PARAM_TAG"]
json.dump(ds, open(os.path.join(out, "dataset.json"), "w"), indent=1, sort_keys=True)
open("seed.txt", "w").write(os.environ["MEDPIPE_SEED"] + "\n")
)";

std::string MiddleStages(const std::string& script) {
  return "  - id: sizes\n    kind: command\n    inputs: [ann]\n    params:\n"
         "      foreach: {files: 'images/*.png'}\n"
         "      run: 'wc -c < \"${item}\" > size.txt && test \"$(pwd)\" = \"${item_out}\"'\n"
         "  - id: py\n    kind: command\n    inputs: [ann, sizes]\n    params:\n"
         "      script: " + script + "\n"
         "      run: [python3, '${script}', '${inputs.ann}', '${inputs.sizes}']\n"
         "      params: {tag: mine}\n"
         "  - id: stats\n    kind: analyze\n    inputs: [py]\n";
}

TEST_F(CommandTest, ShellAndPythonStagesBetweenBuiltinStages) {
  WriteText(dir_ / "tag.py", kScript);
  auto r = Run(MiddleStages("tag.py"));
  ASSERT_EQ(r.summary.exit_code, 0);
  EXPECT_EQ(r.Of("sizes").state, State::kRan);
  EXPECT_EQ(r.Of("sizes").items.total, 6);
  EXPECT_EQ(ReadText(dir_ / "work/sizes/images/P0001_001/size.txt"),
            std::to_string(fs::file_size(dir_ / "data/images/P0001_001.png")) + "\n");
  Result<Dataset> ds = ReadCoco(dir_ / "work/py/dataset.json");
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  ASSERT_EQ(ds->images.size(), 6u);
  EXPECT_EQ(std::get<std::string>(ds->images[0].attributes.at("tag")), "mine");
  EXPECT_EQ(ReadText(dir_ / "work/py/seed.txt"), "7\n");
  // The runner recorded what the commands wrote, so the commit covers it.
  EXPECT_EQ(Manifest("py"), (std::vector<std::string>{"dataset.json", "report.json", "seed.txt"}));
  EXPECT_EQ(Manifest("sizes").size(), 7u) << "six size.txt and report.json";
  EXPECT_TRUE(StatPath(dir_ / "work/stats/analysis.json").exists);
  EXPECT_TRUE(Contains(ReadText(dir_ / "work/stats/analysis.txt"), "6"));

  auto again = Run(MiddleStages("tag.py"));
  for (const char* id : {"ann", "sizes", "py", "stats"}) EXPECT_EQ(again.Of(id).state, State::kSkipped) << id;
}

TEST_F(CommandTest, AChangedScriptRerunsOnlyItAndDownstreamAndStatusSaysWhy) {
  WriteText(dir_ / "tag.py", kScript);
  ASSERT_EQ(Run(MiddleStages("tag.py")).summary.exit_code, 0);
  WriteText(dir_ / "tag.py", std::string(kScript) + "open('extra.txt', 'w').write('x')\n");

  Result<medpipe::Pipeline> p = LoadPipeline((dir_ / "pipeline.yaml").string(), BuiltinRegistry());
  ASSERT_TRUE(p.ok());
  auto stages = BuiltinRegistry().Instantiate(*p);
  ASSERT_TRUE(stages.ok());
  std::vector<StageReport> status = InspectPipeline(*p, *stages);
  EXPECT_EQ(status[0].state, "done");
  EXPECT_EQ(status[1].state, "done");
  EXPECT_EQ(status[2].state, "stale");
  EXPECT_EQ(status[2].reason, "script changed");

  auto r = Run(MiddleStages("tag.py"));
  ASSERT_EQ(r.summary.exit_code, 0);
  EXPECT_EQ(r.Of("ann").state, State::kSkipped);
  EXPECT_EQ(r.Of("sizes").state, State::kSkipped);
  EXPECT_EQ(r.Of("py").state, State::kRan);
  EXPECT_EQ(r.Of("py").reason, "script changed");
  EXPECT_EQ(r.Of("stats").state, State::kRan) << "downstream of the changed stage";
  EXPECT_TRUE(StatPath(dir_ / "work/py/extra.txt").exists);
}

TEST_F(CommandTest, ANonZeroExitFailsTheStageWithItsStderrAndCommitsNothing) {
  auto r = Run("  - id: bad\n    kind: command\n    inputs: [ann]\n    params:\n"
               "      run: 'echo partial > part.txt; echo first >&2; echo \"it broke\" >&2; exit 3'\n"
               "  - id: after\n    kind: analyze\n    inputs: [bad]\n");
  EXPECT_EQ(r.summary.exit_code, 1);
  EXPECT_EQ(r.Of("bad").state, State::kFailed);
  EXPECT_TRUE(Contains(r.Of("bad").reason, "exited with status 3")) << r.Of("bad").reason;
  EXPECT_TRUE(Contains(r.Of("bad").reason, "| first\n  | it broke")) << r.Of("bad").reason;
  EXPECT_EQ(r.Of("after").state, State::kBlocked);
  EXPECT_FALSE(ReadCommit(dir_ / "work/bad").ok());
  EXPECT_EQ(ReadText(dir_ / "work/bad/.medpipe/command.log"), "first\nit broke\n");
}

TEST_F(CommandTest, ATimeoutFailsTheStage) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = Run("  - id: slow\n    kind: command\n    params:\n      run: 'echo waiting >&2; sleep 30'\n"
               "      timeout: 0.5\n");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  EXPECT_EQ(r.Of("slow").state, State::kFailed);
  EXPECT_TRUE(Contains(r.Of("slow").reason, "timed out after 0.5 s")) << r.Of("slow").reason;
  EXPECT_TRUE(Contains(r.Of("slow").reason, "waiting"));
}

TEST_F(CommandTest, AFailingItemIsAProblemAndTheRunGoesOn) {
  const std::string stage =
      "  - id: each\n    kind: command\n    inputs: [ann]\n    params:\n"
      "      foreach: {files: 'images/*.png'}\n"
      "      run: 'case \"${item_key}\" in *P0002_002*) echo \"cannot read it\" >&2; exit 2;; esac; echo ok > r.txt'\n";
  auto r = Run(stage);
  ASSERT_EQ(r.summary.exit_code, 0);
  EXPECT_EQ(r.Of("each").items.total, 6);
  EXPECT_EQ(r.Of("each").items.failed, 1);
  Result<CommitRecord> c = ReadCommit(dir_ / "work/each");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->problems.at("failed: the command exited with status 2"), 1);
  std::string report = ReadText(dir_ / "work/each/report.json");
  EXPECT_TRUE(Contains(report, "images/P0002_002.png")) << report;
  EXPECT_TRUE(Contains(report, "exited with status 2")) << report;
  EXPECT_TRUE(Contains(report, "cannot read it")) << report;
  EXPECT_EQ(Manifest("each").size(), 6u) << "five r.txt and report.json";

  RunOptions strict;
  strict.strict = true;
  strict.force = {"each"};
  EXPECT_EQ(Run(stage, strict).Of("each").state, State::kFailed);
}

TEST_F(CommandTest, WritingOutsideOutIsAProblemAndEscapingLinksAreRefused) {
  auto r = Run("  - id: messy\n    kind: command\n    inputs: [ann]\n    params:\n"
               "      run: 'echo x > \"${inputs.ann}/evil.txt\"; echo y > ../stray.txt; echo ok > good.txt;"
               " ln -s /etc/hostname host; ln -s good.txt alias'\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  Result<CommitRecord> c = ReadCommit(dir_ / "work/messy");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->problems.at("wrote outside ${out}"), 2);
  EXPECT_EQ(c->problems.at("unsafe output"), 1);
  std::string report = ReadText(dir_ / "work/messy/report.json");
  EXPECT_TRUE(Contains(report, "work/ann/evil.txt")) << report;
  EXPECT_TRUE(Contains(report, "work/stray.txt")) << report;
  EXPECT_EQ(Manifest("messy"), (std::vector<std::string>{"alias", "good.txt", "report.json"}));
  EXPECT_FALSE(StatPath(dir_ / "work/messy/host").exists) << "not recorded, so not kept";
}

TEST_F(CommandTest, ConfigErrorsNameTheParamAndEnvironmentExpansionStillWorks) {
  Status s = Load("  - id: c\n    kind: command\n    inputs: [ann]\n    params: {run: 'cat ${inputs.nope}'}\n");
  EXPECT_EQ(s.code(), Status::Code::kConfig);
  EXPECT_TRUE(Contains(s.message(), "pipeline.yaml:10:19:")) << s.message();
  EXPECT_TRUE(Contains(s.message(), "'nope' is not an input of this stage (inputs: ann)")) << s.message();
  s = Load("  - id: c\n    kind: command\n    params: {run: 'echo ${item}'}\n");
  EXPECT_TRUE(Contains(s.message(), "${item} is an item's: it needs `foreach`")) << s.message();
  s = Load("  - id: c\n    kind: command\n    params: {run: 'true', env: [AWS_SECRET_ACCESS_KEY]}\n");
  EXPECT_TRUE(Contains(s.message(), "AWS_SECRET_ACCESS_KEY holds a credential")) << s.message();
  s = Load("  - id: c\n    kind: command\n    params: {run: 'true', foreach: {files: '*.png'}}\n");
  EXPECT_TRUE(Contains(s.message(), "this stage has no inputs")) << s.message();
  // Environment variables are still expanded around the placeholders.
  ::setenv("MEDPIPE_TEST_WORD", "hello", 1);
  auto r = Run("  - id: c\n    kind: command\n    params: {run: 'echo ${MEDPIPE_TEST_WORD} > \"${out}/w.txt\"'}\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  EXPECT_EQ(ReadText(dir_ / "work/c/w.txt"), "hello\n");
  ::unsetenv("MEDPIPE_TEST_WORD");
  // `$${f}` is the shell's own variable, kept for the shell.
  r = Run("  - id: c\n    kind: command\n    params: {run: 'for f in a b; do echo $${f}; done > l.txt'}\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  EXPECT_EQ(ReadText(dir_ / "work/c/l.txt"), "a\nb\n");
}

TEST_F(CommandTest, PlaceholdersAreKeptOnlyInTheParamsOfKindsThatDeclareThem) {
  Status s = Load("  - id: other\n    kind: analyze\n    inputs: [ann]\n    params: {}\n    description: '${out}'\n");
  EXPECT_TRUE(Contains(s.message(), "environment variable out is not set")) << s.message();
}

TEST_F(CommandTest, ThreadsPerItemBoundsHowManyItemsRunAtOnce) {
  TempDir lock;
  // mkdir is atomic: an item that finds the folder taken ran beside another.
  auto r = Run("  - id: each\n    kind: command\n    inputs: [ann]\n    params:\n"
               "      foreach: {files: 'images/*.png'}\n      threads_per_item: 2\n"
               "      run: 'mkdir " + (lock / "busy").string() + " || exit 9; sleep 0.1; rmdir " +
               (lock / "busy").string() + "; echo \"$OMP_NUM_THREADS ${threads}\" > t.txt'\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  EXPECT_EQ(r.Of("each").items.failed, 0) << "with 2 threads and 2 per item, one item at a time";
  EXPECT_EQ(ReadText(dir_ / "work/each/images/P0001_001/t.txt"), "2 2\n");
}

TEST_F(CommandTest, NamedEnvironmentVariablesArePassedAndFingerprinted) {
  const std::string stage = "  - id: c\n    kind: command\n    params:\n"
                            "      run: 'echo \"$MEDPIPE_TEST_MODEL/$HIDDEN_ONE\" > m.txt'\n"
                            "      env: [MEDPIPE_TEST_MODEL]\n";
  ::setenv("MEDPIPE_TEST_MODEL", "v1", 1);
  ::setenv("HIDDEN_ONE", "seen", 1);
  ASSERT_EQ(Run(stage).summary.exit_code, 0);
  EXPECT_EQ(ReadText(dir_ / "work/c/m.txt"), "v1/\n") << "only named variables reach the command";
  EXPECT_EQ(Run(stage).Of("c").state, State::kSkipped);
  ::setenv("MEDPIPE_TEST_MODEL", "v2", 1);
  auto r = Run(stage);
  EXPECT_EQ(r.Of("c").state, State::kRan);
  EXPECT_EQ(r.Of("c").reason, "env changed");
  EXPECT_EQ(ReadText(dir_ / "work/c/m.txt"), "v2/\n");
  ::unsetenv("MEDPIPE_TEST_MODEL");
  ::unsetenv("HIDDEN_ONE");
}

TEST_F(CommandTest, RowsOfACsvAreItemsWithTheirColumns) {
  auto r = Run("  - id: table\n    kind: command\n    params:\n"
               "      run: 'printf \"id,label\\nb,1\\na,0\\n../x,2\\n\" > t.csv'\n"
               "  - id: rows\n    kind: command\n    inputs: [table]\n    params:\n"
               "      foreach: {rows: t.csv, key: id}\n"
               "      run: [sh, -c, 'echo \"$1\" > label.txt', sh, '${item.label}']\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  EXPECT_EQ(ReadText(dir_ / "work/rows/a/label.txt"), "0\n");
  EXPECT_EQ(ReadText(dir_ / "work/rows/b/label.txt"), "1\n");
  EXPECT_EQ(r.Of("rows").items.failed, 1) << "the key '../x' cannot name a folder";
}

// kill -9 at several points of a per-item command stage, then a resume: the
// same bytes as an uninterrupted run, and the journaled items are not redone.
TEST_F(CommandTest, KillNineDuringPerItemStageThenResumeGivesTheSameBytes) {
  testing::MakeExampleData(dir_ / "data", 4, 10);
  const std::string yaml = Pipeline(
      "  - id: each\n    kind: command\n    inputs: [ann]\n    params:\n"
      "      foreach: {files: 'images/*.png'}\n"
      "      run: 'sleep 0.02; cksum < \"${item}\" > sum.txt; mkdir -p deep; echo \"${item_key}\" > deep/key.txt'\n");
  TempDir ref;
  WriteText(ref / "pipeline.yaml", yaml);
  fs::create_symlink(dir_ / "data", ref / "data");
  auto full = testing::RunMedpipe({"run", (ref / "pipeline.yaml").string(), "--threads", "2"});
  ASSERT_EQ(full.exit_code, 0) << full.err;
  auto expected = testing::Snapshot(ref / "work/each");
  ASSERT_EQ(expected.size(), 81u);
  for (size_t lines : {1u, 17u, 35u}) {
    SCOPED_TRACE("kill after " + std::to_string(lines) + " items");
    TempDir run;
    WriteText(run / "pipeline.yaml", yaml);
    fs::create_symlink(dir_ / "data", run / "data");
    fs::path stage = run / "work/each";
    pid_t pid = testing::SpawnProcess({testing::MedpipeBinary(), "run", (run / "pipeline.yaml").string(), "--threads",
                                       "2"});
    bool hit = testing::WaitFor(20, [&] { return testing::JournalLines(stage) >= lines; });
    ::kill(pid, SIGKILL);
    testing::WaitProcess(pid);
    ASSERT_TRUE(hit);
    size_t journaled = testing::JournalLines(stage);
    EXPECT_FALSE(ReadCommit(stage).ok());
    auto again = testing::RunMedpipe({"run", (run / "pipeline.yaml").string(), "--threads", "2"});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(testing::Snapshot(stage), expected) << testing::SnapshotDiff(testing::Snapshot(stage), expected);
    Result<CommitRecord> c = ReadCommit(stage);
    ASSERT_TRUE(c.ok());
    EXPECT_GE(c->items.resumed, static_cast<int64_t>(journaled));
  }
}

}  // namespace
}  // namespace medpipe
