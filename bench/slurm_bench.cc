// bench_slurm: what running a stage's items as Slurm job arrays costs
// (issue 15), measured against a local run of the same stage in the same run.
//
// Part 1, a real cluster: starts the one-node loopback Slurm cluster of the
// test suite (tests/servers/slurm_cluster.h, 2 CPUs), writes N synthetic CT
// slices with medpipe-ctgen and runs one `convert` stage over them as a
// child `medpipe run`: locally (--threads 2) and with `executor: slurm` at
// max_tasks 2, 4 and 8, in `--repeats` rounds (5) of every mode, each run
// from a clean workdir; the medians are printed. Per run: the wall time and
// the controller's own CPU time (user + sys from wait4, which counts the
// controller and the Slurm clients it waits for, squeue and sbatch, but not
// the array tasks: slurmstepd starts those), and where the time went, from
// the file times of the pass's folder. Every Slurm output tree must equal the
// local one byte for byte (outside the .medpipe folders), or the benchmark
// fails.
//
// Part 2, no cluster: what the controller does outside the tasks for one
// pass of 300,000 items cut into 64 shards, through the functions the
// dispatcher uses (runner/slurm_dispatch.h, runner/item_journal.h): digest
// the tasks, cut the shards and write the plan; then, with 64 journal parts
// of realistic records written as the workers would (not timed), what
// SlurmDispatcher::Merge does (open each part, find every item, append them
// all to the stage's journal, sync, remove the parts) and the next resume
// check (reopen the journal, find every item). Also the steps every run has
// at its end, local or not (the journal's compaction, the output
// fingerprint), and one progress poll of the dispatcher's loop when every
// part grew.
//
// Prints figures and ratios; fails only when a scenario did not do what it
// claims (a run failed, outputs differ, a merge lost an item).
//
//   bench_slurm [--medpipe PATH] [--ctgen PATH] [--items N] [--shards 2,4,8]
//               [--merge-items N] [--merge-shards N] [--repeats N] [--work DIR]
//               [--keep] [--no-cluster]
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "runner/checkpoint.h"
#include "runner/item_journal.h"
#include "runner/slurm_dispatch.h"
#include "runner/stage_context.h"
#include "tests/servers/slurm_cluster.h"
#include "tests/test_util.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/strings.h"

extern char** environ;

namespace medpipe {
namespace {

using Clock = std::chrono::steady_clock;
using testing::ReadText;
using testing::SlurmCluster;
using testing::Snapshot;
using testing::WriteText;

struct Options {
  fs::path medpipe = MEDPIPE_BINARY, ctgen = MEDPIPE_CTGEN, work;
  bool keep = false, cluster = true;
  int items = 2000, slices = 4, size = 64, threads = 2, repeats = 5;
  std::vector<int> shards = {2, 4, 8};
  size_t merge_items = 300000;
  int merge_shards = 64;
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "bench_slurm: %s\n", what.c_str());
  std::exit(1);
}

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

fs::path MakeTemp(const char* prefix) {
  std::string tmpl = fmt::format("/tmp/{}XXXXXX", prefix);
  if (!::mkdtemp(tmpl.data())) Die("mkdtemp failed");
  return tmpl;
}

// A child process, timed: its wall time and the CPU time wait4 reports for it
// (the child and the descendants it reaped).
struct Timed {
  int exit_code = -1;
  double wall = 0, cpu = 0;
  double started = 0, ended = 0;  // wall-clock seconds since the epoch, to compare with file times
  std::string err;                // its stderr
};

double Now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

Timed RunTimed(const std::vector<std::string>& argv, const fs::path& log_dir, const std::string& name) {
  const std::string out = (log_dir / (name + ".out")).string(), err = (log_dir / (name + ".err")).string();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Timed t;
  const auto t0 = Clock::now();
  t.started = Now();
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) Die(fmt::format("cannot start {}: {}", argv[0], std::strerror(rc)));
  int status = 0;
  struct rusage ru {};
  while (::wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) Die(fmt::format("wait4: {}", std::strerror(errno)));
  }
  t.wall = Since(t0);
  t.ended = Now();
  auto secs = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  t.cpu = secs(ru.ru_utime) + secs(ru.ru_stime);
  t.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  t.err = ReadText(err);
  return t;
}

std::vector<int> ParseList(const std::string& s) {
  std::vector<int> out;
  for (const std::string& f : Split(s, ',')) {
    if (!f.empty()) out.push_back(std::atoi(f.c_str()));
  }
  return out;
}

constexpr const char* kUsage =
    "usage: bench_slurm [--medpipe PATH] [--ctgen PATH] [--items N] [--shards 2,4,8] [--repeats N]\n"
    "                   [--merge-items N] [--merge-shards N] [--work DIR] [--keep] [--no-cluster]\n"
    "  --items N         CT slices for the convert stage (2000)\n"
    "  --shards LIST     max_tasks of the Slurm runs (2,4,8)\n"
    "  --repeats N       rounds of every mode; medians printed (5)\n"
    "  --merge-items N   items of the controller-merge figure (300000)\n"
    "  --merge-shards N  its shards (64)\n"
    "  --work DIR        where everything goes (a fresh temp folder); --keep keeps it\n"
    "  --no-cluster      only the controller-merge figure (no root, no Slurm needed)";

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--medpipe") {
      o.medpipe = next();
    } else if (a == "--ctgen") {
      o.ctgen = next();
    } else if (a == "--items") {
      o.items = std::atoi(next().c_str());
    } else if (a == "--shards") {
      o.shards = ParseList(next());
    } else if (a == "--merge-items") {
      o.merge_items = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--merge-shards") {
      o.merge_shards = std::atoi(next().c_str());
    } else if (a == "--repeats") {
      o.repeats = std::atoi(next().c_str());
    } else if (a == "--work") {
      o.work = next();
    } else if (a == "--keep") {
      o.keep = true;
    } else if (a == "--no-cluster") {
      o.cluster = false;
    } else if (a == "--help" || a == "-h") {
      std::printf("%s\n", kUsage);
      std::exit(0);
    } else {
      Die("unknown argument " + a + "\n" + kUsage);
    }
  }
  if (o.items < 1 || o.repeats < 1 || o.shards.empty() || o.merge_items < 1 || o.merge_shards < 1 ||
      o.merge_shards > 1000) {
    Die("--items, --merge-items and --merge-shards (1 to 1000) must be positive and --shards not empty");
  }
  return o;
}

// ---------------------------------------------------------------------------
// Part 1: one convert stage, locally and through the loopback cluster.

// Where a Slurm run's wall time went, from the times of the files in the
// pass's folder (seconds): the controller spawned -> jobs.tsv written (sbatch
// returned) -> the first task-I.log created (slurmstepd opens it as the task
// starts) -> the last done-I marker written -> the controller exited.
struct Phases {
  double submit = 0;     // start, planning, sbatch
  double queue = 0;      // sbatch returned -> the first task started
  double tasks = 0;      // the first task started -> the last marker
  double task = 0;       // one task, its log created -> its marker (median over the tasks)
  double after = 0;      // the last marker -> the controller's exit: the poll's wait, merge, commit
};

// A file's birth time (statx), or its mtime where the filesystem keeps no
// birth time; 0 when it cannot be read.
double BirthTime(const fs::path& path) {
  struct statx sx {};
  if (::statx(AT_FDCWD, path.c_str(), 0, STATX_BTIME | STATX_MTIME, &sx) != 0) return 0;
  const statx_timestamp& ts = (sx.stx_mask & STATX_BTIME) ? sx.stx_btime : sx.stx_mtime;
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

double ModifiedTime(const fs::path& path) {
  struct statx sx {};
  if (::statx(AT_FDCWD, path.c_str(), 0, STATX_MTIME, &sx) != 0) return 0;
  return static_cast<double>(sx.stx_mtime.tv_sec) + sx.stx_mtime.tv_nsec / 1e9;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

Phases PhasesOf(const fs::path& call, size_t shards, const Timed& t) {
  Phases p;
  const double submitted = ModifiedTime(call / "jobs.tsv");
  double first_start = 0, last_marker = 0;
  std::vector<double> task;
  for (size_t s = 0; s < shards; ++s) {
    double start = BirthTime(TaskLogPath(call, s)), end = ModifiedTime(MarkerPath(call, s));
    if (start <= 0 || end <= 0) Die(fmt::format("{}: no log or marker of shard {}", call.string(), s));
    first_start = s == 0 ? start : std::min(first_start, start);
    last_marker = std::max(last_marker, end);
    task.push_back(end - start);
  }
  p.submit = submitted - t.started;
  p.queue = first_start - submitted;
  p.tasks = last_marker - first_start;
  p.task = Median(task);
  p.after = t.ended - last_marker;
  return p;
}

struct Row {
  int shards = 0;       // 0: local
  Timed t;
  size_t submissions = 0;  // lines of jobs.tsv: more than one means a task was resubmitted
  Phases phases;
};

std::string Pipeline(const fs::path& dicoms, int shards) {
  std::string y = fmt::format(
      "name: slurm_bench\nworkdir: work\nseed: 1\nstages:\n  - id: conv\n    kind: convert\n    params:\n"
      "      dicoms: {}\n      window: brain\n",
      dicoms.string());
  if (shards > 0) {
    // Fast polls and a short marker grace: the workdir is a local disk here.
    y += fmt::format(
        "\nexecutor:\n  type: slurm\n  max_tasks: {}\n  poll_interval: 0.5\n  marker_grace: 5\n  cpus_per_task: 1\n",
        shards);
  }
  return y;
}

Row RunOnce(const Options& o, const fs::path& root, const fs::path& dicoms, const std::string& name, int shards,
            const std::map<std::string, std::string>* reference) {
  const fs::path dir = root / name;
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  WriteText(dir / "p.yaml", Pipeline(dicoms, shards));
  Row row;
  row.shards = shards;
  row.t = RunTimed({o.medpipe.string(), "run", (dir / "p.yaml").string(), "--threads", std::to_string(o.threads)},
                   dir, "run");
  if (row.t.exit_code != 0) Die(fmt::format("{}: medpipe run exited {}:\n{}", name, row.t.exit_code, row.t.err));
  if (shards > 0) {
    const fs::path call = CallDir(dir / "work" / "conv", 0);
    Result<ShardPlan> plan = ReadShardPlan(call);
    if (!plan.ok()) Die(name + ": no shard plan: " + plan.status().ToString());
    const int expected = std::min(shards, o.items);
    if (static_cast<int>(plan->shards.size()) != expected) {
      Die(fmt::format("{}: {} shards planned, expected {}", name, plan->shards.size(), expected));
    }
    for (const std::string& line : Split(ReadText(call / "jobs.tsv"), '\n')) row.submissions += !line.empty();
    row.phases = PhasesOf(call, plan->shards.size(), row.t);
  }
  if (reference) {
    std::map<std::string, std::string> snap = Snapshot(dir / "work");
    size_t differing = 0;
    for (const auto& [rel, bytes] : *reference) {
      auto it = snap.find(rel);
      differing += it == snap.end() || it->second != bytes;
    }
    for (const auto& [rel, bytes] : snap) differing += !reference->count(rel);
    if (differing) Die(fmt::format("{}: {} files differ from the local run's", name, differing));
  }
  return row;
}

// Mean bytes of a line of `file`; 0 when it has none.
double MeanLineBytes(const fs::path& file) {
  std::string t = ReadText(file);
  size_t lines = static_cast<size_t>(std::count(t.begin(), t.end(), '\n'));
  return lines ? static_cast<double>(t.size()) / static_cast<double>(lines) : 0;
}

// Every run of one mode, over the rounds.
struct Mode {
  int shards = 0;  // 0: local
  std::vector<double> wall, cpu;
  std::vector<Phases> phases;
  size_t submissions = 0;  // sbatch calls over every round
};

double ClusterPart(const Options& o, const fs::path& root) {
  const fs::path cluster_dir = MakeTemp("msb-");  // short: munge's and slurmd's sockets live below it
  auto t0 = Clock::now();
  Result<std::unique_ptr<SlurmCluster>> cluster = SlurmCluster::Start(cluster_dir / "s", 2);
  if (!cluster.ok()) Die("cannot start the loopback Slurm cluster: " + cluster.status().ToString());
  const double start_s = Since(t0);

  const int patients = (o.items + o.slices - 1) / o.slices;
  t0 = Clock::now();
  Timed gen = RunTimed({o.ctgen.string(), "--out", (root / "ct").string(), "--patients", std::to_string(patients),
                        "--slices", std::to_string(o.slices), "--size", std::to_string(o.size), "--seed", "3"},
                       root, "ctgen");
  if (gen.exit_code != 0) Die("medpipe-ctgen failed:\n" + gen.err);
  const fs::path dicoms = root / "ct" / "dicom";
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dicoms)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (size_t i = static_cast<size_t>(o.items); i < files.size(); ++i) fs::remove(files[i]);  // exactly N
  files.resize(std::min(files.size(), static_cast<size_t>(o.items)));
  for (const auto& f : files) (void)ReadText(f);  // a warm page cache for every run
  const double gen_s = Since(t0);

  // The reference, and the page cache warmed by a first local run.
  const Row first = RunOnce(o, root, dicoms, "local-ref", 0, nullptr);
  const std::map<std::string, std::string> reference = Snapshot(root / "local-ref" / "work");
  const double record_bytes = MeanLineBytes(ItemJournal::PathFor(root / "local-ref" / "work" / "conv"));

  // The modes interleaved round by round, so a change in the machine's load
  // spreads over all of them rather than landing on one.
  std::vector<Mode> modes(1 + o.shards.size());
  for (size_t m = 1; m < modes.size(); ++m) modes[m].shards = o.shards[m - 1];
  for (int round = 0; round < o.repeats; ++round) {
    for (Mode& m : modes) {
      std::string name = m.shards ? fmt::format("slurm-{}", m.shards) : "local";
      Row r = RunOnce(o, root, dicoms, name, m.shards, &reference);
      m.wall.push_back(r.t.wall);
      m.cpu.push_back(r.t.cpu);
      m.submissions += r.submissions;
      m.phases.push_back(r.phases);
    }
  }
  // What every task redoes before its items, at least: start, parse the
  // pipeline, list and stat the stage's sources (a task lists them twice:
  // for the stage's fingerprint and for its items).
  std::vector<double> plan_walls, start_walls;
  {
    const fs::path dir = root / "plan-only";
    fs::create_directories(dir);
    WriteText(dir / "p.yaml", Pipeline(dicoms, 0));
    for (int i = 0; i < 3; ++i) {
      Timed t = RunTimed({o.medpipe.string(), "run", (dir / "p.yaml").string(), "-n"}, dir, "plan");
      if (t.exit_code != 0) Die("medpipe run -n failed:\n" + t.err);
      plan_walls.push_back(t.wall);
      Timed v = RunTimed({o.medpipe.string(), "--version"}, dir, "version");
      if (v.exit_code != 0) Die("medpipe --version failed:\n" + v.err);
      start_walls.push_back(v.wall);
    }
  }

  const double local = Median(modes[0].wall);
  std::printf("slurm benchmark, part 1: one convert stage over %zu synthetic CT slices (%dx%d, medpipe-ctgen), "
              "brain window to PNG\n", files.size(), o.size, o.size);
  std::printf("loopback Slurm cluster: 1 node, 2 CPUs; tasks: cpus_per_task 1 (medpipe worker --threads 1), "
              "poll_interval 0.5 s, marker_grace 5 s; local: --threads %d\n", o.threads);
  std::printf("this machine: %d cores shared with other builders, load average at the end %s: compare the rows, "
              "do not quote the absolute times\n", static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)),
              ReadText("/proc/loadavg").substr(0, 14).c_str());
  std::printf("median of %d rounds (each mode once a round, each run from a clean workdir); every output tree "
              "byte-identical to the local one (%zu files)\n", o.repeats, reference.size());
  std::printf("%-6s %6s %8s %15s %11s %17s %11s %8s\n", "mode", "shards", "wall s", "(min-max)", "overhead s",
              "controller CPU s", "wall/local", "items/s");
  for (const Mode& m : modes) {
    const double wall = Median(m.wall);
    std::string range = fmt::format("({:.2f}-{:.2f})", *std::min_element(m.wall.begin(), m.wall.end()),
                                    *std::max_element(m.wall.begin(), m.wall.end()));
    std::string overhead = m.shards ? fmt::format("{:+.2f}", wall - local) : "-";
    std::printf("%-6s %6s %8.2f %15s %11s %17.2f %11.2f %8.0f\n", m.shards ? "slurm" : "local",
                m.shards ? std::to_string(m.shards).c_str() : "-", wall, range.c_str(), overhead.c_str(),
                Median(m.cpu), wall / local, static_cast<double>(files.size()) / wall);
  }
  size_t extra = 0;
  for (const Mode& m : modes) extra += m.shards && m.submissions > static_cast<size_t>(o.repeats);
  std::printf("overhead = wall - the local median; sbatch calls: one per Slurm run%s\n",
              extra ? " except some (a task was resubmitted: see the runs' logs)" : " (no task resubmitted)");
  std::printf("controller CPU: user + sys of the `medpipe run` process and the Slurm clients it ran (sbatch, "
              "squeue, scontrol), not the array tasks'\n");
  std::printf("a task's fixed cost is at least `medpipe run -n` (start, parse, list + stat the %zu sources): "
              "%.2f s, of which the process start (`medpipe --version`) %.2f s (medians of 3)\n",
              files.size(), Median(plan_walls), Median(start_walls));
  std::printf("setup: cluster start %.1f s, ctgen %.1f s, first local run %.2f s (not counted); journal record of "
              "a convert item: %.0f bytes\n\n", start_s, gen_s, first.t.wall, record_bytes);

  std::printf("where a Slurm run's time goes (medians, from the pass's file times: jobs.tsv, task-I.log created, "
              "done-I written)\n");
  std::printf("%6s %20s %20s %17s %15s %25s\n", "shards", "start+plan+sbatch s", "sbatch->1st task s",
              "1st task->last s", "one task s", "last marker->exit s");
  for (const Mode& m : modes) {
    if (!m.shards) continue;
    auto med = [&](double Phases::*f) {
      std::vector<double> v;
      for (const Phases& p : m.phases) v.push_back(p.*f);
      return Median(v);
    };
    std::printf("%6d %20.2f %20.2f %17.2f %15.2f %25.2f\n", m.shards, med(&Phases::submit), med(&Phases::queue),
                med(&Phases::tasks), med(&Phases::task), med(&Phases::after));
  }
  std::printf("one task: its log created -> its marker: the worker's start, re-planning the stage and its items; "
              "last marker -> exit: the rest of the poll interval, the merge, the commit\n\n");
  (*cluster)->Stop();
  std::error_code ec;
  fs::remove_all(cluster_dir, ec);
  return record_bytes;
}

// ---------------------------------------------------------------------------
// Part 2: the controller's merge for a large pass, without a cluster.

// A payload like convert's (the kept DICOM metadata and one written frame),
// laid out as a real record is; UIDs of the 2.25 form, 39 digits.
std::string Payload(size_t i, const std::string& file) {
  const std::string uid = HashBytes(std::to_string(i / 60));
  auto digits = [&](size_t salt) {
    std::string d;
    for (char c : HashBytes(uid + std::to_string(salt))) d += static_cast<char>('0' + (c % 10));
    return d.substr(0, 20) + d.substr(0, 19);
  };
  return fmt::format(
      "{{\"patient_id\":\"HCT{:06}\",\"study_uid\":\"2.25.{}\",\"series_uid\":\"2.25.{}\",\"sop_uid\":"
      "\"2.25.{}\",\"modality\":\"CT\",\"manufacturer\":\"medpipe-ctgen\",\"model\":\"Synthetic Head CT 1\","
      "\"slice_thickness\":5.0,\"pixel_spacing\":\"0.48828125/0.48828125\",\"frames\":[{{\"file\":\"{}\","
      "\"frame\":0,\"width\":512,\"height\":512,\"window\":\"40/80\"}}]}}",
      i / 60, digits(1), digits(2), digits(i), file);
}

struct Step {
  std::string name;
  double seconds;
  bool in_total;  // part of the Slurm-only controller work (the target)
};

void MergePart(const Options& o, const fs::path& root, double real_record_bytes) {
  Disk* disk = DefaultDisk();
  const size_t n = o.merge_items;
  const fs::path stage = root / "merge" / "conv";
  const fs::path cdir = CallDir(stage, 0);
  if (Status s = disk->CreateDirs(MetaDir(stage)); !s.ok()) Die(s.ToString());
  std::vector<Step> steps;
  auto step = [&](const std::string& name, bool in_total, auto&& fn) {
    auto t0 = Clock::now();
    fn();
    steps.push_back({name, Since(t0), in_total});
  };

  // The pass's tasks, as convert makes them: a source path and a digest.
  std::vector<ItemTask> tasks(n);
  for (size_t i = 0; i < n; ++i) {
    tasks[i].key = fmt::format("case_{:06}/series_1/IM{:04}.dcm", i / 60, i % 60 + 1);
    tasks[i].fingerprint = HashBytes(tasks[i].key);
  }
  std::vector<size_t> pending(n);
  for (size_t i = 0; i < n; ++i) pending[i] = i;

  ShardPlan plan;
  step("tasks digest (TasksDigest)", true, [&] { plan.digest = TasksDigest("", tasks); });
  step("cut shards + pending digest + write plan", true, [&] {
    Hasher h;
    for (size_t i : pending) h.Field(std::to_string(i));
    plan.stage = "conv";
    plan.fingerprint = HashBytes("stage");
    plan.pending = h.HexDigest();
    plan.job_name = "medpipe.conv.0.bench";
    plan.shards = CutShards(pending, o.merge_shards, 1);
    if (Status s = WriteShardPlan(disk, cdir, plan); !s.ok()) Die(s.ToString());
  });
  double read_plan = 0;
  {
    auto t0 = Clock::now();
    Result<ShardPlan> back = ReadShardPlan(cdir);
    read_plan = Since(t0);
    if (!back.ok() || back->shards != plan.shards || back->digest != plan.digest) Die("the plan did not read back");
  }

  // The workers (not timed): one part per shard, one record per item with
  // one output file each, appended as RunHere does.
  auto t0 = Clock::now();
  uint64_t part_bytes = 0;
  for (size_t s = 0; s < plan.shards.size(); ++s) {
    Result<std::unique_ptr<ItemJournal>> part = ItemJournal::OpenFile(disk, PartPath(cdir, s));
    if (!part.ok()) Die(part.status().ToString());
    std::vector<ItemRecord> recs;
    recs.reserve(plan.shards[s].size());
    for (size_t i : plan.shards[s]) {
      ItemRecord r;
      r.key = ItemKey("", tasks[i]);
      r.fingerprint = tasks[i].fingerprint;
      std::string file = fmt::format("images/case_{:06}/series_1/IM{:04}.png", i / 60, i % 60 + 1);
      r.payload = Payload(i, file);
      r.files.push_back(FileRecord{file, 61000 + i % 5000, 1795000000000000000 + static_cast<int64_t>(i) * 1000,
                                   HashBytes(file + "bytes")});
      recs.push_back(std::move(r));
    }
    std::vector<const ItemRecord*> ptrs;
    for (const auto& r : recs) ptrs.push_back(&r);
    if (Status st = (*part)->AppendAll(ptrs); !st.ok()) Die(st.ToString());
    if (Status st = (*part)->Sync(); !st.ok()) Die(st.ToString());
    part_bytes += StatPath(PartPath(cdir, s)).size;
  }
  const double workers_s = Since(t0);

  // One poll of the dispatcher's loop when every part grew: it stats each
  // part and reads the grown ones to count their new lines.
  step("one progress poll, every part grown (per poll, not once)", false, [&] {
    int64_t lines = 0;
    for (size_t s = 0; s < plan.shards.size(); ++s) {
      if (!StatPath(PartPath(cdir, s)).exists) continue;
      Result<std::string> text = ReadFile(PartPath(cdir, s));
      if (text.ok()) lines += std::count(text->begin(), text->end(), '\n');
    }
    if (lines != static_cast<int64_t>(n)) Die("the parts hold " + std::to_string(lines) + " lines");
  });

  // SlurmDispatcher::Merge.
  std::unique_ptr<ItemJournal> journal;
  {
    Result<std::unique_ptr<ItemJournal>> j = ItemJournal::Open(disk, stage);
    if (!j.ok()) Die(j.status().ToString());
    journal = std::move(j).value();
  }
  std::map<size_t, ItemRecord> out;
  std::vector<const ItemRecord*> merged;
  step(fmt::format("merge: open the {} parts + find every item", plan.shards.size()), true, [&] {
    for (size_t s = 0; s < plan.shards.size(); ++s) {
      Result<std::unique_ptr<ItemJournal>> part = ItemJournal::OpenFile(disk, PartPath(cdir, s), /*repair=*/true);
      if (!part.ok()) Die(part.status().ToString());
      for (size_t i : plan.shards[s]) {
        const ItemRecord* rec = (*part)->Find(ItemKey("", tasks[i]));
        if (!rec || rec->fingerprint != tasks[i].fingerprint) Die("a part lacks item " + tasks[i].key);
        auto [it, inserted] = out.emplace(i, *rec);
        merged.push_back(&it->second);
      }
    }
  });
  step("merge: append all to the journal + sync", true, [&] {
    if (Status s = journal->AppendAll(merged); !s.ok()) Die(s.ToString());
    if (Status s = journal->Sync(); !s.ok()) Die(s.ToString());
  });
  step("merge: remove the parts", true, [&] {
    for (size_t s = 0; s < plan.shards.size(); ++s) {
      if (Status st = disk->Remove(PartPath(cdir, s)); !st.ok()) Die(st.ToString());
    }
  });
  step("next resume check: reopen the journal + find every item", true, [&] {
    Result<std::unique_ptr<ItemJournal>> j = ItemJournal::Open(disk, stage);
    if (!j.ok()) Die(j.status().ToString());
    if ((*j)->loaded() != n) Die(fmt::format("the journal holds {} items of {}", (*j)->loaded(), n));
    for (const ItemTask& t : tasks) {
      const ItemRecord* rec = (*j)->Find(ItemKey("", t));
      if (!rec || rec->fingerprint != t.fingerprint) Die("the journal lacks item " + t.key);
    }
  });
  // What every run does at the stage's end, local or on Slurm.
  std::vector<ItemRecord> records;
  records.reserve(n);
  for (auto& [i, rec] : out) records.push_back(rec);
  step("end of any run: compact the journal", false, [&] {
    if (Status s = journal->Compact(records); !s.ok()) Die(s.ToString());
  });
  step("end of any run: output fingerprint", false, [&] {
    std::vector<FileRecord> files;
    files.reserve(n);
    for (const auto& r : records) files.insert(files.end(), r.files.begin(), r.files.end());
    std::sort(files.begin(), files.end(), [](const FileRecord& a, const FileRecord& b) { return a.path < b.path; });
    if (OutputFingerprint(files).empty()) Die("no output fingerprint");
  });

  double total = 0, all = 0;
  for (const Step& s : steps) {
    if (s.in_total) total += s.seconds;
    if (s.name.rfind("one progress poll", 0) != 0) all += s.seconds;
  }
  std::printf("slurm benchmark, part 2: the controller's work outside the tasks for one pass of %zu items in %zu "
              "shards (no cluster; runner/slurm_dispatch.h and runner/item_journal.h on this disk)\n",
              n, plan.shards.size());
  std::string real = real_record_bytes > 0 ? fmt::format("a real convert record above: {:.0f} bytes", real_record_bytes)
                                            : std::string("no real record to compare: --no-cluster");
  std::printf("journal parts: %.1f MB, %.0f bytes a record (%s); written as the workers would in %.2f s (not "
              "counted)\n",
              static_cast<double>(part_bytes) / 1e6, static_cast<double>(part_bytes) / static_cast<double>(n),
              real.c_str(), workers_s);
  std::printf("%-62s %9s\n", "step", "seconds");
  for (const Step& s : steps) {
    if (s.in_total) std::printf("%-62s %9.2f\n", s.name.c_str(), s.seconds);
  }
  std::printf("%-62s %9.2f   target < 10 s (issue 15)\n", "total, Slurm's controller work outside the tasks", total);
  for (const Step& s : steps) {
    if (!s.in_total) std::printf("%-62s %9.2f\n", s.name.c_str(), s.seconds);
  }
  std::printf("%-62s %9.2f\n", "total with the end-of-run steps (not the per-poll line)", all);
  std::printf("a worker reads the plan once: %.3f s (%zu workers: %.2f s in all, spread over the tasks)\n",
              read_plan, plan.shards.size(), read_plan * static_cast<double>(plan.shards.size()));
}

int Main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  const bool temp = o.work.empty();
  const fs::path root = temp ? MakeTemp("medpipe-slurm-bench.") : fs::absolute(o.work);
  fs::create_directories(root);
  double record_bytes = 0;
  if (o.cluster) record_bytes = ClusterPart(o, root);
  MergePart(o, root, record_bytes);
  if (!o.keep) {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  std::printf("work dir %s%s\n", root.c_str(), o.keep ? " (kept)" : " (removed)");
  return 0;
}

}  // namespace
}  // namespace medpipe

int main(int argc, char** argv) { return medpipe::Main(argc, argv); }
