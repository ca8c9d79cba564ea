// bench_noop_rerun: how long does a rerun take when nothing changed?
//
// Builds a 20,000-image pipeline (annotate -> two filters that run at the same
// time), runs the real `medpipe` binary on it, then reruns it unchanged and
// prints the no-op time next to the full-run time measured in the same run,
// so the ratio means something on any machine. Also times `medpipe status`
// and a rerun after deleting one output file, which must redo that item
// alone. Prints figures; asserts only that each scenario did what it claims
// (a no-op that ran a stage would make its time meaningless).
//
//   bench_noop_rerun [--medpipe PATH] [--examplegen PATH] [--work DIR] [--keep]
//                    [--patients N] [--slices N] [--size PX] [--repeats N] [--threads N]
//
// The binaries default to the ones next to this executable (the build dir).
// The work dir defaults to a fresh temp dir, removed at the end unless --keep.
#include <fmt/format.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "runner/checkpoint.h"
#include "util/fs.h"

extern char** environ;

namespace medpipe {
namespace {

struct Options {
  fs::path medpipe, examplegen, work;
  bool keep = false;
  int patients = 400, slices = 50, size = 64, repeats = 7, threads = 0;
};

// The pipeline under test. Two filters read annotate, so the flow graph runs
// them side by side; `sah_only` drops emptied images, so its item count
// differs from its sibling's.
constexpr const char* kPipeline = R"(name: bench_noop_rerun
workdir: work
seed: 1
stages:
  - id: annotate
    kind: annotate
    params:
      images: data/images
      annotations: data/boxes.coco.json
      labels_csv: data/labels.csv
      patient_pattern: '^(P\d+)_'
  - id: four_class
    kind: filter
    inputs: [annotate]
    params:
      categories: [IPH, IVH, SAH, SDH]
  - id: sah_only
    kind: filter
    inputs: [annotate]
    params:
      categories: [SAH]
      emptied_images: drop
)";

const char* kStageIds[] = {"annotate", "four_class", "sah_only"};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "bench_noop_rerun: %s\n", message.c_str());
  std::exit(1);
}

// Runs `argv` with stdout and stderr appended to `log`, and returns the wall
// time in seconds. Dies on a non-zero exit: a failed run has no meaningful
// time.
double Spawn(const std::vector<std::string>& argv, const fs::path& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) Die(fmt::format("cannot start {}: {}", argv[0], std::strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) Die("waitpid failed");
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    Die(fmt::format("'{}' failed (status {}); see {}", cmd, status, log.string()));
  }
  return seconds;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

CommitRecord Commit(const fs::path& stage_dir) {
  Result<CommitRecord> c = ReadCommit(stage_dir);
  if (!c.ok()) Die(c.status().ToString());
  return *c;
}

// The commit records' bytes: a stage that ran rewrites its record (a new
// finished_at and seconds at least), so equal bytes mean it was skipped.
std::string CommitBytes(const fs::path& workdir, const char* id) {
  Result<std::string> text = ReadFile(workdir / id / kMetaDir / "commit.json");
  if (!text.ok()) Die(text.status().ToString());
  return *text;
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  // Default binaries: siblings of this executable, i.e. the same build dir.
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  fs::path dir = ec ? fs::path(argv[0]).parent_path() : self.parent_path();
  o.medpipe = dir / "medpipe";
  o.examplegen = dir / "medpipe-examplegen";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    auto number = [&]() {
      std::string v = next();
      int n = std::atoi(v.c_str());
      if (n < 1) Die(a + ": expected a positive number, got '" + v + "'");
      return n;
    };
    if (a == "--medpipe") o.medpipe = next();
    else if (a == "--examplegen") o.examplegen = next();
    else if (a == "--work") o.work = next();
    else if (a == "--keep") o.keep = true;
    else if (a == "--patients") o.patients = number();
    else if (a == "--slices") o.slices = number();
    else if (a == "--size") o.size = number();
    else if (a == "--repeats") o.repeats = number();
    else if (a == "--threads") o.threads = number();
    else {
      std::fprintf(stderr,
                   "usage: bench_noop_rerun [--medpipe PATH] [--examplegen PATH] [--work DIR] [--keep]\n"
                   "                        [--patients N] [--slices N] [--size PX] [--repeats N] [--threads N]\n");
      std::exit(2);
    }
  }
  for (const fs::path& bin : {o.medpipe, o.examplegen}) {
    if (::access(bin.c_str(), X_OK) != 0) Die(bin.string() + ": not an executable (pass --medpipe / --examplegen)");
  }
  o.medpipe = fs::absolute(o.medpipe);
  o.examplegen = fs::absolute(o.examplegen);
  return o;
}

int Main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  bool temp = o.work.empty();
  if (temp) o.work = fs::temp_directory_path() / fmt::format("medpipe-bench-{}", ::getpid());
  o.work = fs::absolute(o.work);
  // Start clean: a leftover workdir would turn the "full run" into a rerun.
  std::error_code ec;
  fs::remove_all(o.work / "work", ec);
  fs::remove_all(o.work / "data", ec);
  fs::remove(o.work / "bench.log", ec);
  if (Status s = DefaultDisk()->WriteAtomic(o.work / "pipeline.yaml", kPipeline, false); !s.ok()) Die(s.ToString());
  const fs::path yaml = o.work / "pipeline.yaml", workdir = o.work / "work", log = o.work / "bench.log";
  const std::string file = yaml.string(), bin = o.medpipe.string();
  std::vector<std::string> threads;
  if (o.threads > 0) threads = {"--threads", std::to_string(o.threads)};
  auto run_args = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {bin, "run", file};
    args.insert(args.end(), threads.begin(), threads.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };

  double gen_s = Spawn({o.examplegen.string(), "--out", (o.work / "data").string(), "--patients",
                        std::to_string(o.patients), "--slices", std::to_string(o.slices), "--size",
                        std::to_string(o.size)},
                       log);

  // 1. Full run from nothing.
  double full_s = Spawn(run_args({}), log);
  std::vector<CommitRecord> commits;
  int64_t outputs = 0;
  for (const char* id : kStageIds) {
    commits.push_back(Commit(workdir / id));
    outputs += commits.back().items.total;
  }
  const int64_t items = commits[0].items.total;

  // 2. No-op reruns: each must leave every commit record untouched.
  std::vector<std::string> before;
  for (const char* id : kStageIds) before.push_back(CommitBytes(workdir, id));
  std::vector<double> noop, status, validate;
  for (int r = 0; r < o.repeats; ++r) noop.push_back(Spawn(run_args({}), log));
  for (size_t k = 0; k < std::size(kStageIds); ++k) {
    if (CommitBytes(workdir, kStageIds[k]) != before[k]) Die(fmt::format("a no-op rerun ran stage {}", kStageIds[k]));
  }
  for (int r = 0; r < o.repeats; ++r) status.push_back(Spawn({bin, "status", file}, log));
  // The floor every command pays: process start, loading the registry,
  // parsing and validating the YAML file.
  for (int r = 0; r < o.repeats; ++r) validate.push_back(Spawn({bin, "validate", file}, log));

  // 3. One output deleted: annotate must redo that item alone, and since its
  // outputs come out byte-identical, both filters must stay done (restat).
  const std::string victim = fmt::format("images/P{:04d}_{:03d}.png", (o.patients + 1) / 2, (o.slices + 1) / 2);
  if (!fs::remove(workdir / "annotate" / victim, ec)) Die("cannot delete annotate/" + victim);
  double redo_s = Spawn(run_args({}), log);
  CommitRecord redo = Commit(workdir / "annotate");
  bool filters_kept = CommitBytes(workdir, "four_class") == before[1] && CommitBytes(workdir, "sah_only") == before[2];
  bool same_output = redo.output_fingerprint == commits[0].output_fingerprint;

  const double noop_s = Median(noop);
  std::printf("medpipe no-op rerun benchmark: %d patients x %d slices of %dx%d px; annotate -> {four_class, sah_only}; "
              "threads %s; median of %d\n",
              o.patients, o.slices, o.size, o.size, o.threads > 0 ? std::to_string(o.threads).c_str() : "all",
              o.repeats);
  std::printf("%-8s %-9s %-10s %-12s %-9s %-10s %-11s %s\n", "items", "outputs", "full run", "no-op rerun",
              "ratio", "status", "validate", "1 deleted, rerun");
  std::printf("%-8lld %-9lld %-10s %-12s %-9s %-10s %-11s %s\n", static_cast<long long>(items),
              static_cast<long long>(outputs), fmt::format("{:.2f} s", full_s).c_str(),
              fmt::format("{:.0f} ms", noop_s * 1e3).c_str(), fmt::format("{:.3f}", noop_s / full_s).c_str(),
              fmt::format("{:.0f} ms", Median(status) * 1e3).c_str(),
              fmt::format("{:.0f} ms", Median(validate) * 1e3).c_str(),
              fmt::format("{:.0f} ms", redo_s * 1e3).c_str());
  std::printf("no-op rerun: min %.0f ms, max %.0f ms over %d runs (%.1fx faster than the full run)\n",
              *std::min_element(noop.begin(), noop.end()) * 1e3, *std::max_element(noop.begin(), noop.end()) * 1e3,
              o.repeats, full_s / noop_s);
  std::printf("1 deleted (annotate/%s): annotate items total %lld, done %lld, resumed %lld, failed %lld; "
              "output %s; four_class and sah_only %s\n",
              victim.c_str(), static_cast<long long>(redo.items.total), static_cast<long long>(redo.items.done),
              static_cast<long long>(redo.items.resumed), static_cast<long long>(redo.items.failed),
              same_output ? "byte-identical" : "CHANGED", filters_kept ? "left done (restat)" : "RERAN");
  std::printf("setup: examplegen %.2f s; work dir %s%s\n", gen_s, o.work.c_str(),
              temp && !o.keep ? " (removed)" : "");

  int rc = 0;
  if (redo.items.done != 1) {
    std::fprintf(stderr, "bench_noop_rerun: the rerun after one deletion redid %lld items, not 1\n",
                 static_cast<long long>(redo.items.done));
    rc = 1;
  }
  if (!filters_kept || !same_output) {
    std::fprintf(stderr, "bench_noop_rerun: redoing one identical item did not leave the dependants done\n");
    rc = 1;
  }
  if (temp && !o.keep) fs::remove_all(o.work, ec);
  return rc;
}

}  // namespace
}  // namespace medpipe

int main(int argc, char** argv) { return medpipe::Main(argc, argv); }
