// Shared helpers for the test suite: temp folders, subprocesses, output
// trees, and running a pipeline text through the real runner.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "graph/pipeline.h"
#include "runner/runner.h"
#include "stages/registry.h"
#include "util/fs.h"

namespace medpipe::testing {

// A fresh folder under the test temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& rel) const { return path_ / rel; }

 private:
  fs::path path_;
};

void WriteText(const fs::path& path, const std::string& text);
std::string ReadText(const fs::path& path);

struct ProcessResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string out;     // stdout
  std::string err;     // stderr
};

// Runs argv[0] with `argv`, extra environment entries ("K=V"), and waits.
ProcessResult RunProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});
// Starts a process with stdout/stderr to /dev/null and returns its pid.
pid_t SpawnProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});
// Waits for `pid`; returns the exit code or 128 + signal.
int WaitProcess(pid_t pid);

// The medpipe binary and the example generator built with the tests.
std::string MedpipeBinary();
// Runs the medpipe binary with `args` and extra environment entries.
ProcessResult RunMedpipe(std::vector<std::string> args, const std::vector<std::string>& env = {});
// Whether `text` contains `part`: for asserting on console output.
inline bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
// Writes the synthetic example dataset into `dir` (images/, boxes.coco.json,
// labels.csv).
void MakeExampleData(const fs::path& dir, int patients, int slices, int size = 64);

// Every file under `dir` except checkpoint metadata (.medpipe folders) and
// the run log, mapped to its content (or "-> target" for a symlink).
std::map<std::string, std::string> Snapshot(const fs::path& dir);

// Polls `done` every 100 ms until it is true (true) or `timeout_s` passes
// (false).
bool WaitFor(double timeout_s, const std::function<bool()>& done);

// The paths whose content differs between two snapshots, or that only one
// has (the first 10, then how many more): for a readable failure.
std::string SnapshotDiff(const std::map<std::string, std::string>& a, const std::map<std::string, std::string>& b);

// Number of complete lines in a stage's item journal.
size_t JournalLines(const fs::path& stage_dir);

// The builtin stage kinds plus "emit", a test-only kind (no inputs; param
// `coco`, a path) that publishes the dataset of a COCO file the test wrote as
// its own, each image linked from the file's folder (the targets need not
// exist), so a test can hand a stage any dataset no builtin stage produces.
const Registry& TestKinds();

// Parses `yaml` (written to <dir>/pipeline.yaml) against `registry`, builds
// its stages and runs it. Fails the test on config errors.
struct RunResult {
  RunSummary summary;
  Pipeline pipeline;
  const StageOutcome& Of(const std::string& id) const;
};
RunResult RunYaml(const Registry& registry, const fs::path& dir, const std::string& yaml, RunOptions options = {});

}  // namespace medpipe::testing
