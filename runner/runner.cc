#include "runner/runner.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>
#include <tbb/flow_graph.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <chrono>
#include <set>
#include <thread>

#include "runner/item_journal.h"
#include "runner/planner.h"
#include "runner/progress.h"
#include "runner/slurm_dispatch.h"
#include "util/strings.h"

namespace medpipe {

namespace {

using State = StageOutcome::State;

// Holds an exclusive flock on <workdir>/.medpipe/lock for the life of a run,
// so two runs never write one workdir at once.
class WorkdirLock {
 public:
  ~WorkdirLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  // Takes the lock and writes "<pid> <start time>" into the lock file, so
  // `status` can say which run holds it.
  Status Acquire(const fs::path& workdir) {
    MEDPIPE_RETURN_IF_ERROR(DefaultDisk()->CreateDirs(workdir / kMetaDir));
    fs::path path = workdir / kMetaDir / "lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return Status::IOError("cannot open " + path.string());
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      LockHolder h = ProbeWorkdirLock(workdir);
      return Status::Config(fmt::format("another medpipe run is using {}{}", workdir.string(),
                                        h.pid > 0 ? fmt::format(" (pid {}, started {})", h.pid, h.started) : ""));
    }
    std::string who = fmt::format("{} {}\n", static_cast<long>(::getpid()), UtcNow());
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, who.data(), who.size(), 0) != static_cast<ssize_t>(who.size())) {
      return Status::IOError("cannot write " + path.string());
    }
    return Status::OK();
  }

 private:
  int fd_ = -1;
};

// Removes files in `dir` that the stage did not write this time (leftovers of
// earlier params, temp files of a killed attempt), so the folder holds exactly
// the recorded outputs whatever its history.
Status CollectGarbage(const fs::path& dir, const std::vector<FileRecord>& files) {
  std::set<std::string> keep;
  for (const auto& f : files) keep.insert(f.path);
  std::vector<fs::path> remove, dirs;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const fs::path& path = it->path();
    std::string rel = path.lexically_relative(dir).string();
    if (rel == kMetaDir) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory(ec) && !it->is_symlink(ec)) {
      dirs.push_back(path);
    } else if (!keep.count(rel)) {
      remove.push_back(path);
    }
  }
  if (ec) return Status::IOError("cannot list " + dir.string() + ": " + ec.message());
  for (const auto& path : remove) fs::remove(path, ec);
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    if (fs::is_empty(*it, ec)) fs::remove(*it, ec);
  }
  return Status::OK();
}

// Item files are written without a per-file fsync (it would dominate small
// items); one syncfs(2) before the manifest and commit record makes every
// output durable before the stage claims to be done, so power loss after a
// commit cannot leave a committed stage with missing data.
Status SyncFilesystem(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot open " + dir.string());
  int rc = ::syncfs(fd);
  ::close(fd);
  if (rc != 0) return Status::IOError("syncfs " + dir.string() + " failed");
  return Status::OK();
}

class Execution {
 public:
  Execution(const Pipeline& p, const std::vector<std::unique_ptr<Stage>>& stages, const RunOptions& o,
            ProgressBoard* board)
      : p_(p), stages_(stages), o_(o), disk_(o.disk ? o.disk : DefaultDisk()), board_(board),
        outcomes_(p.stages.size()), selected_(p.stages.size(), true), forced_(p.stages.size(), false),
        live_(o.dry_run ? ProbeWorkdirLock(p.workdir) : LockHolder{}) {}

  Status Select() {
    auto find = [&](const std::string& id, const char* flag) -> Result<size_t> {
      int i = p_.Find(id);
      if (i < 0) {
        std::vector<std::string> ids;
        for (const auto& s : p_.stages) ids.push_back(s.id);
        std::string hint = ClosestName(id, ids);
        return Status::Config(fmt::format("{} {}: no such stage in {}{}", flag, id, p_.file,
                                          hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
      }
      return static_cast<size_t>(i);
    };
    if (!o_.until.empty()) {
      MEDPIPE_ASSIGN_OR_RETURN(size_t u, find(o_.until, "--until"));
      selected_ = p_.Upstream(u);
    }
    if (!o_.from.empty()) {
      MEDPIPE_ASSIGN_OR_RETURN(size_t f, find(o_.from, "--from"));
      std::vector<bool> down = p_.Downstream(f);
      for (size_t i = 0; i < down.size(); ++i) forced_[i] = forced_[i] || (down[i] && selected_[i]);
    }
    for (const auto& id : o_.force) {
      MEDPIPE_ASSIGN_OR_RETURN(size_t f, find(id, "--force"));
      forced_[f] = true;
    }
    if (!o_.only.empty()) {
      MEDPIPE_ASSIGN_OR_RETURN(size_t only, find(o_.only, "--only"));
      std::fill(selected_.begin(), selected_.end(), false);
      selected_[only] = true;
      forced_[only] = true;
      for (const auto& in : p_.stages[only].inputs) {
        Result<CommitRecord> c = ReadCommit(p_.workdir / in);
        if (!c.ok()) {
          return Status::Config(fmt::format("--only {}: input '{}' has no checkpoint ({}); run it first", o_.only, in,
                                            c.status().code() == Status::Code::kNotFound ? "never run"
                                                                                          : c.status().message()));
        }
        outcomes_[static_cast<size_t>(p_.Find(in))].output_fingerprint = c->output_fingerprint;
      }
    }
    return Status::OK();
  }

  // Runs the selected stages: in the flow graph, or in order for a dry run.
  void Go() {
    if (o_.dry_run) {
      for (size_t i = 0; i < p_.stages.size(); ++i) {
        if (selected_[i]) Execute(i);
      }
      return;
    }
    tbb::flow::graph g;
    tbb::flow::broadcast_node<tbb::flow::continue_msg> start(g);
    std::vector<std::unique_ptr<tbb::flow::continue_node<tbb::flow::continue_msg>>> nodes(p_.stages.size());
    for (size_t i = 0; i < p_.stages.size(); ++i) {
      if (!selected_[i]) continue;
      // Stage bodies are plain calls; every failure becomes an outcome inside
      // Execute, so nothing escapes into the graph and independent branches
      // always finish.
      nodes[i] = std::make_unique<tbb::flow::continue_node<tbb::flow::continue_msg>>(
          g, [this, i](const tbb::flow::continue_msg&) { Execute(i); });
    }
    for (size_t i = 0; i < p_.stages.size(); ++i) {
      if (!nodes[i]) continue;
      bool has_pred = false;
      for (const auto& in : p_.stages[i].inputs) {
        size_t j = static_cast<size_t>(p_.Find(in));
        if (nodes[j]) {
          tbb::flow::make_edge(*nodes[j], *nodes[i]);
          has_pred = true;
        }
      }
      if (!has_pred) tbb::flow::make_edge(start, *nodes[i]);
    }
    start.try_put(tbb::flow::continue_msg());
    g.wait_for_all();
  }

  RunSummary Summary() const {
    RunSummary s;
    s.outcomes = outcomes_;
    for (const auto& o : outcomes_) {
      if (o.state == State::kCancelled) s.exit_code = 130;
      if ((o.state == State::kFailed || o.state == State::kBlocked) && s.exit_code == 0) s.exit_code = 1;
    }
    return s;
  }

 private:
  void Execute(size_t i) {
    StageOutcome& out = outcomes_[i];
    try {
      ExecuteUnsafe(i, out);
    } catch (const std::exception& e) {
      Fail(i, out, std::string("unexpected error: ") + e.what());
    } catch (...) {
      Fail(i, out, "unexpected error");
    }
  }

  void Fail(size_t i, StageOutcome& out, const std::string& reason) {
    out.state = State::kFailed;
    out.reason = reason;
    if (!o_.dry_run) WriteFailure(disk_, p_.workdir / p_.stages[i].id, FailureRecord{reason, UtcNow()});
    board_->Log(fmt::format("FAILED {}: {}", p_.stages[i].id, reason));
  }

  void ExecuteUnsafe(size_t i, StageOutcome& out) {
    const StageDecl& d = p_.stages[i];
    const fs::path dir = p_.workdir / d.id;
    std::map<std::string, std::string> input_fps;
    std::vector<std::string> fps;
    std::vector<InputArtifact> artifacts;
    for (const auto& in : d.inputs) {
      const StageOutcome& up = outcomes_[static_cast<size_t>(p_.Find(in))];
      if (up.state == State::kFailed || up.state == State::kBlocked || up.state == State::kCancelled) {
        out.state = up.state == State::kCancelled ? State::kCancelled : State::kBlocked;
        out.reason = "input " + in + (up.state == State::kCancelled ? " was interrupted" : " failed");
        return;
      }
      if (up.state == State::kWouldRun) {
        out.state = State::kWouldRun;
        out.reason = "input " + in + " will run";
        return;
      }
      input_fps[in] = up.output_fingerprint;
      fps.push_back(up.output_fingerprint);
      artifacts.push_back(InputArtifact{in, p_.workdir / in});
    }
    if (o_.cancel && o_.cancel->load()) {
      out.state = State::kCancelled;
      out.reason = "interrupted before it started";
      return;
    }
    Result<std::string> external = stages_[i]->ExternalFingerprint();
    if (!external.ok()) return Fail(i, out, external.status().message());
    const std::string fp = StageFingerprint(d, p_.dir, p_.seed, *external, fps);

    std::string reason;
    if (forced_[i]) {
      reason = "forced";
    } else {
      Verdict v = Judge(d, p_.dir, dir, p_.seed, *external, input_fps, fp);
      if (v.up_to_date) {
        Result<CommitRecord> commit = ReadCommit(dir);
        out.output_fingerprint = commit->output_fingerprint;
        int64_t problems = 0;
        for (const auto& [kind, n] : commit->problems) problems += n;
        // --strict is not in the fingerprint (it changes no output), so an
        // up-to-date stage is judged on the problems its commit recorded:
        // a strict rerun fails where a strict first run would have.
        if (o_.strict && problems > 0) {
          out.state = State::kFailed;
          out.reason = fmt::format("strict: up to date, but its last run recorded {} problem{} (see {}/report.json)",
                                   problems, problems == 1 ? "" : "s", d.id);
          if (!o_.dry_run) board_->Log(fmt::format("FAILED {}: {}", d.id, out.reason));
          return;
        }
        out.state = State::kSkipped;
        out.reason = "up to date";
        if (!o_.dry_run) board_->Log(fmt::format("skip {}: up to date", d.id));
        return;
      }
      reason = v.reason;
    }
    if (o_.dry_run) {
      // A dry run beside a live run: what looks interrupted is being done.
      if (live_.held && !forced_[i] && !ReadCommit(dir).ok() && StatPath(MetaDir(dir)).exists) {
        reason = fmt::format("running now (pid {}, started {})", live_.pid, live_.started);
      }
      out.state = State::kWouldRun;
      out.reason = reason;
      return;
    }

    const bool on_cluster = o_.executor == "slurm" && d.spec && d.spec->cluster_items;
    board_->Log(fmt::format("run {} ({}{}): {}", d.id, d.kind, on_cluster ? ", items on Slurm" : "", reason));
    auto t0 = std::chrono::steady_clock::now();
    auto log = [this](const std::string& line) { board_->Log(line); };
    Status s = InvalidateCommit(dir);
    if (s.ok() && forced_[i]) s = disk_->Remove(ItemJournal::PathFor(dir));
    // Plans of an earlier cluster attempt are taken over only by a cluster
    // run of the same items; any other run first cancels their tasks.
    if (s.ok() && (forced_[i] || !on_cluster)) s = ForgetSlurmPlans(dir, log);
    if (s.ok()) s = disk_->CreateDirs(MetaDir(dir));
    if (!s.ok()) return Fail(i, out, s.message());

    std::shared_ptr<Progress> progress = board_->Begin(d.id);
    StageContext ctx(d.id, p_.seed, dir, artifacts, disk_, progress, o_.cancel, log);
    std::unique_ptr<ItemDispatcher> dispatcher;
    if (on_cluster) {
      dispatcher = MakeSlurmDispatcher(SlurmStage{d.id, dir, p_.workdir, fp, fs::absolute(p_.file), p_.overrides,
                                                  p_.executor, disk_, log});
      ctx.SetDispatcher(dispatcher.get());
    }
    s = stages_[i]->Run(ctx);
    // The report is written for a failed stage too: its problems explain it.
    Status report = ctx.WriteReport();
    if (s.ok()) s = report;
    // Problems are never only in report.json: one console line per stage.
    if (std::string summary = ctx.ProblemSummary(); !summary.empty() && s.code() != Status::Code::kCancelled) {
      board_->Log(fmt::format("problems {}: {}", d.id, summary));
    }
    // A stage none of whose items worked produced nothing a user wants: it
    // fails (its journal keeps the failures, so a rerun does not repeat them
    // unless the inputs or params changed).
    if (const ItemCounts& c = ctx.item_counts();
        s.ok() && c.total > 0 && c.failed == c.total && !(d.spec && d.spec->items_are_extras)) {
      s = Status::Failed(fmt::format("every one of its {} item{} failed (see the problems above and {}/report.json)",
                                     c.total, c.total == 1 ? "" : "s", d.id));
    }
    if (s.ok() && o_.strict && ctx.problem_total() > 0) {
      s = Status::Invalid(fmt::format("strict: {} problem{} (see {}/report.json)", ctx.problem_total(),
                                      ctx.problem_total() == 1 ? "" : "s", d.id));
    }
    if (s.ok()) s = ctx.CompactJournal();
    board_->End(progress);
    out.items = ctx.item_counts();
    if (!s.ok()) {
      if (s.code() == Status::Code::kCancelled) {
        out.state = State::kCancelled;
        out.reason = "interrupted";
        board_->Log(fmt::format("interrupted {}: finished items are kept", d.id));
        return;
      }
      return Fail(i, out, s.message());
    }

    std::vector<FileRecord> files = ctx.TakeFiles();
    s = CollectGarbage(dir, files);
    if (s.ok()) s = SyncFilesystem(dir);
    if (s.ok()) s = WriteManifest(disk_, dir, files);
    CommitRecord rec;
    rec.kind = d.kind;
    rec.kind_version = d.spec ? d.spec->version : 0;
    rec.fingerprint = fp;
    rec.output_fingerprint = OutputFingerprint(files);
    rec.params = PortableParams(d, p_.dir);
    rec.inputs = input_fps;
    rec.external = *external;
    rec.seed = p_.seed;
    rec.items = out.items;
    rec.counters = ctx.counters();
    rec.problems = ctx.problem_counts();
    const std::string prefix = d.id + ".params.";
    for (const auto& o : p_.overrides) {
      size_t eq = o.find('=');
      if (o.rfind(prefix, 0) == 0 && eq != std::string::npos) {
        rec.overrides[o.substr(prefix.size(), eq - prefix.size())] = o.substr(eq + 1);
      }
    }
    rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rec.finished_at = UtcNow();
    if (s.ok()) s = WriteCommit(disk_, dir, rec);
    if (!s.ok()) return Fail(i, out, s.message());
    std::error_code ec;
    fs::remove(MetaDir(dir) / "failed.json", ec);

    out.state = State::kRan;
    out.reason = reason;
    out.output_fingerprint = rec.output_fingerprint;
    out.seconds = rec.seconds;
    std::string items = out.items.total > 0 ? fmt::format(", {} items ({} resumed, {} failed)", out.items.total,
                                                          out.items.resumed, out.items.failed)
                                            : "";
    int64_t problems = ctx.problem_total();
    std::string problem_note = problems > 0 ? fmt::format(", {} problem{}", problems, problems == 1 ? "" : "s") : "";
    board_->Log(fmt::format("done {} in {}{}{}", d.id, HumanDuration(rec.seconds), items, problem_note));
  }

  const Pipeline& p_;
  const std::vector<std::unique_ptr<Stage>>& stages_;
  const RunOptions& o_;
  Disk* disk_;
  ProgressBoard* board_;
  std::vector<StageOutcome> outcomes_;
  std::vector<bool> selected_;
  std::vector<bool> forced_;
  const LockHolder live_;  // for a dry run: the run holding the workdir, if any
};

fs::path OwnerFile(const fs::path& workdir) { return workdir / kMetaDir / "pipeline"; }

// Records the pipeline owning `workdir` when nothing is recorded yet.
Status ClaimWorkdir(Disk* disk, const Pipeline& p) {
  if (StatPath(OwnerFile(p.workdir)).exists) return Status::OK();
  return disk->WriteAtomic(OwnerFile(p.workdir),
                           fmt::format("{}\n{}\n", p.name, fs::absolute(p.file).lexically_normal().string()),
                           /*sync=*/false);
}

}  // namespace

Status CheckWorkdirOwner(const Pipeline& p) {
  Result<std::string> text = ReadFile(OwnerFile(p.workdir));
  if (!text.ok()) return Status::OK();
  std::vector<std::string> lines = Split(*text, '\n');
  const std::string owner = lines.empty() ? std::string() : lines[0];
  if (owner.empty() || owner == p.name) return Status::OK();
  return Status::Config(fmt::format(
      "workdir {} belongs to pipeline '{}'{}; pipeline '{}' ({}) must not share it: its stages would overwrite or "
      "invalidate the other's. Give it a workdir of its own (workdir: in the file, or --set workdir=...)",
      p.workdir.string(), owner, lines.size() > 1 && !lines[1].empty() ? " (" + lines[1] + ")" : "", p.name,
      p.file));
}

LockHolder ProbeWorkdirLock(const fs::path& workdir) {
  LockHolder h;
  fs::path path = workdir / kMetaDir / "lock";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return h;
  if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {
    ::flock(fd, LOCK_UN);
  } else {
    h.held = true;
    char buf[128] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n > 0) {
      char started[64] = {};
      if (std::sscanf(buf, "%ld %63s", &h.pid, started) >= 1) h.started = started;
    }
  }
  ::close(fd);
  return h;
}

Result<std::vector<fs::path>> CleanFolders(const fs::path& workdir, const std::vector<std::string>& names) {
  std::vector<fs::path> removed;
  if (!StatPath(workdir).exists) return removed;
  WorkdirLock lock;
  MEDPIPE_RETURN_IF_ERROR(lock.Acquire(workdir));
  for (const auto& name : names) {
    fs::path dir = workdir / name;
    if (!StatPath(dir).exists) continue;
    MEDPIPE_RETURN_IF_ERROR(DefaultDisk()->Remove(dir));
    removed.push_back(dir);
  }
  return removed;
}

Result<RunSummary> RunPipeline(const Pipeline& p, const std::vector<std::unique_ptr<Stage>>& stages,
                               const RunOptions& o) {
  WorkdirLock lock;
  if (!o.dry_run) MEDPIPE_RETURN_IF_ERROR(lock.Acquire(p.workdir));
  MEDPIPE_RETURN_IF_ERROR(CheckWorkdirOwner(p));
  if (!o.dry_run) MEDPIPE_RETURN_IF_ERROR(ClaimWorkdir(o.disk ? o.disk : DefaultDisk(), p));
  RunOptions options = o;
  options.strict = o.strict || p.strict;
  if (options.executor.empty()) options.executor = p.executor.type;
  if (options.executor != "local" && options.executor != "slurm") {
    return Status::Config("--executor: local or slurm, not '" + options.executor + "'");
  }
  ProgressBoard board(o.live_progress && !o.dry_run,
                      o.dry_run ? std::string() : (p.workdir / kMetaDir / "run.log").string(),
                      o.dry_run ? std::chrono::milliseconds(0) : o.plain_progress_interval);
  Execution exec(p, stages, options, &board);
  MEDPIPE_RETURN_IF_ERROR(exec.Select());
  int threads = o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency());
  if (!o.dry_run) board.Log(fmt::format("medpipe: pipeline {} ({} stages, {} threads)", p.name, p.stages.size(), threads));
  // The global control bounds every TBB algorithm in the process; the arena
  // is where the graph and all per-item loops inside stages run.
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  tbb::task_arena arena(threads);
  arena.execute([&] { exec.Go(); });
  return exec.Summary();
}

}  // namespace medpipe
