#include "runner/slurm_dispatch.h"

#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <sstream>
#include <thread>

#include "cluster/slurm.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kPlanHeader = "medpipe-shard-plan 1";

// squeue may be unreachable for a while (slurmctld restarting, failing over);
// past this the stage fails rather than wait blind.
constexpr auto kClientOutage = std::chrono::minutes(10);
constexpr int kMaxSubmitFailures = 10;

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

fs::path SelfBinary() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path("medpipe") : self;
}

// Sleeps `seconds`, waking early on cancel.
void Nap(double seconds, const std::atomic<bool>* cancel) {
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < until && !(cancel && cancel->load())) {
    auto left = std::chrono::duration_cast<Clock::duration>(until - Clock::now());
    std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(100), left));
  }
}

Status CancelAndWait(const std::string& name) {
  MEDPIPE_RETURN_IF_ERROR(slurm::CancelByName(name));
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline) {
    Result<std::map<int, slurm::TaskState>> active = slurm::ActiveTasks(name);
    if (active.ok() && active->empty()) return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return Status::Unavailable("the tasks of Slurm job " + name + " did not leave the queue within 2 min of scancel");
}

class SlurmDispatcher : public ItemDispatcher {
 public:
  explicit SlurmDispatcher(SlurmStage s) : s_(std::move(s)) {}

  Result<std::map<size_t, ItemRecord>> Dispatch(int call, std::string_view pass, const std::vector<ItemTask>& tasks,
                                                const std::vector<size_t>& pending, ItemJournal& journal,
                                                Progress& progress, const std::atomic<bool>* cancel) override;

 private:
  void Log(const std::string& line) const {
    if (s_.log) s_.log(s_.id + ": slurm: " + line);
  }
  Result<ShardPlan> Plan(int call, const std::string& digest, const std::vector<size_t>& pending, bool* adopted) const;
  Status WriteScript(const fs::path& cdir, int call) const;
  Result<std::map<size_t, ItemRecord>> Merge(const fs::path& cdir, const ShardPlan& plan, std::string_view pass,
                                             const std::vector<ItemTask>& tasks, const std::vector<bool>& done,
                                             ItemJournal& journal) const;

  SlurmStage s_;
};

Result<ShardPlan> SlurmDispatcher::Plan(int call, const std::string& digest, const std::vector<size_t>& pending,
                                        bool* adopted) const {
  const fs::path cdir = CallDir(s_.dir, call);
  Hasher h;
  for (size_t i : pending) h.Field(std::to_string(i));
  const std::string pending_digest = h.HexDigest();
  *adopted = false;
  if (Result<ShardPlan> old = ReadShardPlan(cdir); old.ok()) {
    if (old->digest == digest && old->pending == pending_digest && old->fingerprint == s_.fingerprint) {
      *adopted = true;
      Log(fmt::format("pass {}: taking over the plan of an interrupted run ({} tasks, job name {})", call,
                      old->shards.size(), old->job_name));
      return old;
    }
    Log(fmt::format("pass {}: an earlier plan is obsolete; cancelling its tasks", call));
    MEDPIPE_RETURN_IF_ERROR(CancelAndWait(old->job_name));
  }
  MEDPIPE_RETURN_IF_ERROR(s_.disk->Remove(cdir));
  ShardPlan plan;
  plan.stage = s_.id;
  plan.fingerprint = s_.fingerprint;
  plan.digest = digest;
  plan.pending = pending_digest;
  plan.job_name = fmt::format("medpipe.{}.{}.{}", s_.id, call, HashBytes(s_.workdir.string() + "\n" + digest).substr(0, 8));
  plan.shards = CutShards(pending, s_.executor.max_tasks, s_.executor.items_per_task);
  MEDPIPE_RETURN_IF_ERROR(WriteScript(cdir, call));
  MEDPIPE_RETURN_IF_ERROR(WriteShardPlan(s_.disk, cdir, plan));
  return plan;
}

Status SlurmDispatcher::WriteScript(const fs::path& cdir, int call) const {
  fs::path binary = s_.executor.command.empty() ? SelfBinary() : fs::path(s_.executor.command);
  std::string cmd = fmt::format("exec {} worker {} --stage {} --call {} --shard \"$SLURM_ARRAY_TASK_ID\"",
                                ShellQuote(binary.string()), ShellQuote(s_.pipeline_file.string()),
                                ShellQuote(s_.id), call);
  if (s_.executor.cpus_per_task > 0) cmd += fmt::format(" --threads {}", s_.executor.cpus_per_task);
  for (const auto& o : s_.overrides) cmd += " --set " + ShellQuote(o);
  std::string script = fmt::format(
      "#!/bin/sh\n"
      "# Written by medpipe for stage {}, RunItems pass {}: task I runs shard I of ./plan.\n"
      "{}\n",
      s_.id, call, cmd);
  MEDPIPE_RETURN_IF_ERROR(s_.disk->WriteAtomic(cdir / "job.sh", script, /*sync=*/true));
  std::error_code ec;
  fs::permissions(cdir / "job.sh", fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add, ec);
  if (ec) return Status::IOError((cdir / "job.sh").string() + ": " + ec.message());
  return Status::OK();
}

Result<std::map<size_t, ItemRecord>> SlurmDispatcher::Dispatch(int call, std::string_view pass,
                                                               const std::vector<ItemTask>& tasks,
                                                               const std::vector<size_t>& pending,
                                                               ItemJournal& journal, Progress& progress,
                                                               const std::atomic<bool>* cancel) {
  const fs::path cdir = CallDir(s_.dir, call);
  bool adopted = false;
  MEDPIPE_ASSIGN_OR_RETURN(ShardPlan plan, Plan(call, TasksDigest(pass, tasks), pending, &adopted));
  const size_t n = plan.shards.size();
  const ExecutorDecl& e = s_.executor;

  // Per shard: the job its latest task belongs to, tasks submitted by this
  // controller, when it was first seen gone without a marker.
  std::vector<std::string> job(n);
  std::vector<int> attempts(n, 0);
  std::vector<bool> done(n, false);
  std::vector<std::string> gave_up(n);
  std::vector<std::optional<Clock::time_point>> gone_since(n);
  if (adopted) {
    // A shard the killed controller submitted counts as submitted once: if
    // its task has ended without a marker, it gets the grace and the retries
    // of any other.
    if (Result<std::string> text = ReadFile(cdir / "jobs.tsv"); text.ok()) {
      for (const std::string& line : Split(*text, '\n')) {
        std::vector<std::string> f = Split(line, '\t');
        if (f.size() < 2) continue;
        Result<std::vector<int>> ids = slurm::ParseArray(f[1]);
        if (!ids.ok()) continue;
        for (int t : *ids) {
          if (t >= 0 && static_cast<size_t>(t) < n) job[t] = f[0], attempts[t] = 1;
        }
      }
    }
  }
  std::vector<uint64_t> part_bytes(n, 0);
  auto count_progress = [&] {
    for (size_t s = 0; s < n; ++s) {
      FileStat st = StatPath(PartPath(cdir, s));
      if (!st.exists || st.size <= part_bytes[s]) continue;
      Result<std::string> text = ReadFile(PartPath(cdir, s));
      if (!text.ok() || text->size() < part_bytes[s]) continue;
      int64_t lines = std::count(text->begin() + static_cast<std::ptrdiff_t>(part_bytes[s]), text->end(), '\n');
      progress.Advance(lines);
      part_bytes[s] = text->size();
    }
  };

  Clock::time_point last_answer = Clock::now();
  int submit_failures = 0;
  bool first_submission = !adopted;
  while (true) {
    if (cancel && cancel->load()) {
      Log("interrupted: cancelling the stage's tasks");
      if (Status c = slurm::CancelByName(plan.job_name); !c.ok()) Log(c.message());
      return Status::Cancelled("interrupted");
    }
    count_progress();
    size_t open = 0;
    for (size_t s = 0; s < n; ++s) {
      if (!done[s] && StatPath(MarkerPath(cdir, s)).exists) done[s] = true;
      if (!done[s] && gave_up[s].empty()) ++open;
    }
    if (open == 0) break;

    Result<std::map<int, slurm::TaskState>> active = slurm::ActiveTasks(plan.job_name);
    if (!active.ok()) {
      if (active.status().code() == Status::Code::kNotFound) return active.status();
      if (Clock::now() - last_answer > kClientOutage) {
        return Status::Failed("Slurm has not answered for 10 min: " + active.status().message());
      }
      Log(active.status().message() + "; asking again");
      Nap(e.poll_interval, cancel);
      continue;
    }
    last_answer = Clock::now();

    std::vector<int> submit;
    for (size_t s = 0; s < n; ++s) {
      if (done[s] || !gave_up[s].empty()) continue;
      if (auto a = active->find(static_cast<int>(s)); a != active->end()) {
        job[s] = a->second.job_id;  // also for a task a killed controller submitted unrecorded
        gone_since[s].reset();
        continue;
      }
      if (attempts[s] == 0) {
        submit.push_back(static_cast<int>(s));
        continue;
      }
      // Gone from the queue without a marker. A marker written just before
      // the task ended may not be visible here yet on a shared filesystem
      // (NFS attribute caching): a task Slurm calls COMPLETED, or whose end
      // Slurm has forgotten, gets marker_grace seconds to show it.
      if (!gone_since[s]) gone_since[s] = Clock::now();
      slurm::TaskEnd end = slurm::EndOf(job[s], static_cast<int>(s));
      bool failed = end.known && end.state != "COMPLETED";
      if (!failed && Clock::now() - *gone_since[s] < std::chrono::duration<double>(e.marker_grace)) continue;
      if (StatPath(MarkerPath(cdir, s)).exists) {
        done[s] = true;
        continue;
      }
      std::string why = end.known && end.state == "COMPLETED" ? "ended (COMPLETED) without writing its done marker"
                                                               : end.Describe();
      std::string task = fmt::format("task {}_{} (shard {} of {}, {} items)", job[s], s, s, n, plan.shards[s].size());
      if (attempts[s] > e.retries) {
        gave_up[s] = fmt::format("{} {} on its attempt {}; its log: {}", task, why, attempts[s],
                                 TaskLogPath(cdir, s).string());
        Log(gave_up[s] + "; no retries left");
      } else {
        Log(fmt::format("{} {}; resubmitting (its items resume from its part); its log: {}", task, why,
                        TaskLogPath(cdir, s).string()));
        submit.push_back(static_cast<int>(s));
      }
      gone_since[s].reset();
    }

    if (!submit.empty()) {
      slurm::ArrayJob a;
      a.name = plan.job_name;
      a.script = cdir / "job.sh";
      a.tasks = submit;
      a.max_running = e.max_running;
      a.output = (cdir / "task-%a.log").string();
      std::error_code ec;
      a.chdir = fs::current_path(ec);
      a.partition = e.partition;
      a.account = e.account;
      a.time_limit = e.time;
      a.memory = e.memory;
      a.cpus_per_task = e.cpus_per_task;
      a.extra_args = e.sbatch_args;
      Result<std::string> id = slurm::Submit(a);
      if (!id.ok()) {
        if (id.status().code() == Status::Code::kNotFound || ++submit_failures > kMaxSubmitFailures) {
          return id.status();
        }
        Log(id.status().message() + "; trying again at the next poll");
      } else {
        std::string tasks_text = slurm::FormatArray(submit);
        std::string line = fmt::format("{}\t{}\t{}\n", *id, tasks_text, UtcNow());
        std::string old = ReadFile(cdir / "jobs.tsv").value_or("");
        MEDPIPE_RETURN_IF_ERROR(s_.disk->WriteAtomic(cdir / "jobs.tsv", old + line, /*sync=*/true));
        size_t items = 0;
        for (int t : submit) {
          job[t] = *id;
          ++attempts[t];
          items += plan.shards[t].size();
        }
        Log(first_submission ? fmt::format("pass {}: {} items in {} tasks, job {} ({})", call, items, submit.size(),
                                           *id, plan.job_name)
                             : fmt::format("pass {}: submitted tasks {} as job {}", call, tasks_text, *id));
        first_submission = false;
      }
    }
    Nap(e.poll_interval, cancel);
  }

  MEDPIPE_ASSIGN_OR_RETURN(auto records, Merge(cdir, plan, pass, tasks, done, journal));
  std::vector<std::string> failures;
  for (const auto& g : gave_up) {
    if (!g.empty()) failures.push_back(g);
  }
  if (!failures.empty()) {
    return Status::Failed(fmt::format("{} of {} Slurm tasks failed every attempt ({} items journaled from the "
                                      "others are kept); first: {}",
                                      failures.size(), n, records.size(), failures.front()));
  }
  Log(fmt::format("pass {}: {} tasks done, {} items merged", call, n, records.size()));
  return records;
}

Result<std::map<size_t, ItemRecord>> SlurmDispatcher::Merge(const fs::path& cdir, const ShardPlan& plan,
                                                            std::string_view pass, const std::vector<ItemTask>& tasks,
                                                            const std::vector<bool>& done,
                                                            ItemJournal& journal) const {
  std::map<size_t, ItemRecord> out;
  std::vector<const ItemRecord*> merged;
  for (size_t s = 0; s < plan.shards.size(); ++s) {
    if (!done[s]) continue;
    // The task has ended: its part may be repaired like any journal.
    MEDPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ItemJournal> part,
                             ItemJournal::OpenFile(s_.disk, PartPath(cdir, s), /*repair=*/true));
    for (size_t i : plan.shards[s]) {
      if (i >= tasks.size()) return Status::Corruption(fmt::format("{}: item {} of {}", (cdir / "plan").string(), i, tasks.size()));
      const ItemRecord* rec = part->Find(ItemKey(pass, tasks[i]));
      if (!rec || rec->fingerprint != tasks[i].fingerprint) {
        return Status::Corruption(fmt::format("shard {} is marked done but {} lacks item {}", s,
                                              PartPath(cdir, s).string(), tasks[i].key));
      }
      auto [it, inserted] = out.emplace(i, *rec);
      merged.push_back(&it->second);
    }
  }
  MEDPIPE_RETURN_IF_ERROR(journal.AppendAll(merged));
  MEDPIPE_RETURN_IF_ERROR(journal.Sync());
  // Merged: the parts would only double the journal on disk.
  for (size_t s = 0; s < plan.shards.size(); ++s) {
    if (done[s]) MEDPIPE_RETURN_IF_ERROR(s_.disk->Remove(PartPath(cdir, s)));
  }
  return out;
}

}  // namespace

fs::path SlurmDir(const fs::path& stage_dir) { return MetaDir(stage_dir) / "slurm"; }
fs::path CallDir(const fs::path& stage_dir, int call) { return SlurmDir(stage_dir) / fmt::format("call-{}", call); }
fs::path PartPath(const fs::path& call_dir, size_t shard) { return call_dir / fmt::format("part-{}.jsonl", shard); }
fs::path MarkerPath(const fs::path& call_dir, size_t shard) { return call_dir / fmt::format("done-{}", shard); }
fs::path TaskLogPath(const fs::path& call_dir, size_t shard) { return call_dir / fmt::format("task-{}.log", shard); }

Status WriteShardPlan(Disk* disk, const fs::path& call_dir, const ShardPlan& plan) {
  std::string text =
      fmt::format("{}\nstage {}\nfingerprint {}\ndigest {}\npending {}\nname {}\nshards {}\n", kPlanHeader, plan.stage,
                  plan.fingerprint, plan.digest, plan.pending, plan.job_name, plan.shards.size());
  for (const auto& shard : plan.shards) {
    for (size_t j = 0; j < shard.size(); ++j) {
      if (j) text += ' ';
      text += std::to_string(shard[j]);
    }
    text += '\n';
  }
  return disk->WriteAtomic(call_dir / "plan", text, /*sync=*/true);
}

Result<ShardPlan> ReadShardPlan(const fs::path& call_dir) {
  const fs::path path = call_dir / "plan";
  MEDPIPE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::istringstream in(text);
  std::string line, key;
  ShardPlan plan;
  size_t shards = 0;
  auto bad = [&](const std::string& what) { return Status::Corruption(path.string() + ": " + what); };
  if (!std::getline(in, line) || line != kPlanHeader) return bad("not a shard plan");
  for (std::string* field : {&plan.stage, &plan.fingerprint, &plan.digest, &plan.pending, &plan.job_name}) {
    if (!std::getline(in, line) || line.find(' ') == std::string::npos) return bad("truncated header");
    *field = line.substr(line.find(' ') + 1);
  }
  if (!std::getline(in, line) || std::sscanf(line.c_str(), "shards %zu", &shards) != 1) return bad("no shard count");
  for (size_t s = 0; s < shards; ++s) {
    if (!std::getline(in, line)) return bad(fmt::format("{} of {} shards", s, shards));
    std::vector<size_t> indexes;
    std::istringstream nums(line);
    size_t i;
    while (nums >> i) indexes.push_back(i);
    plan.shards.push_back(std::move(indexes));
  }
  return plan;
}

std::vector<std::vector<size_t>> CutShards(const std::vector<size_t>& pending, int max_tasks, int items_per_task) {
  size_t by_size = (pending.size() + static_cast<size_t>(items_per_task) - 1) / static_cast<size_t>(items_per_task);
  size_t n = std::max<size_t>(1, std::min(by_size, static_cast<size_t>(std::max(1, max_tasks))));
  std::vector<std::vector<size_t>> shards(n);
  size_t base = pending.size() / n, extra = pending.size() % n, at = 0;
  for (size_t s = 0; s < n; ++s) {
    size_t len = base + (s < extra ? 1 : 0);
    shards[s].assign(pending.begin() + static_cast<std::ptrdiff_t>(at),
                     pending.begin() + static_cast<std::ptrdiff_t>(at + len));
    at += len;
  }
  return shards;
}

std::unique_ptr<ItemDispatcher> MakeSlurmDispatcher(SlurmStage stage) {
  if (!stage.disk) stage.disk = DefaultDisk();
  return std::make_unique<SlurmDispatcher>(std::move(stage));
}

Status ForgetSlurmPlans(const fs::path& stage_dir, const std::function<void(const std::string&)>& log) {
  const fs::path dir = SlurmDir(stage_dir);
  if (!StatPath(dir).exists) return Status::OK();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    Result<ShardPlan> plan = ReadShardPlan(entry.path());
    // A plan with no recorded submission never reached Slurm.
    if (!plan.ok() || !StatPath(entry.path() / "jobs.tsv").exists) continue;
    Result<std::map<int, slurm::TaskState>> active = slurm::ActiveTasks(plan->job_name);
    if (active.ok() && active->empty()) continue;
    if (!active.ok()) {
      return Status::Unavailable(fmt::format(
          "cannot ask Slurm whether the tasks of an earlier attempt ({}) still run: {}; cancel them "
          "(scancel --name={}) or, if none can run, remove {}",
          plan->job_name, active.status().message(), plan->job_name, dir.string()));
    }
    if (log) log(fmt::format("{}: slurm: cancelling the tasks of an earlier attempt ({})", plan->stage, plan->job_name));
    MEDPIPE_RETURN_IF_ERROR(CancelAndWait(plan->job_name));
  }
  return DefaultDisk()->Remove(dir);
}

std::vector<std::string> RecordedSlurmJobs(const fs::path& stage_dir) {
  std::vector<std::string> jobs;
  std::error_code ec;
  std::vector<fs::path> calls;
  for (const auto& entry : fs::directory_iterator(SlurmDir(stage_dir), ec)) calls.push_back(entry.path());
  std::sort(calls.begin(), calls.end(), [](const fs::path& a, const fs::path& b) {
    return NaturalLess(a.filename().string(), b.filename().string());
  });
  for (const auto& c : calls) {
    for (const std::string& line : Split(ReadFile(c / "jobs.tsv").value_or(""), '\n')) {
      std::string id = line.substr(0, line.find('\t'));
      if (!id.empty()) jobs.push_back(id);
    }
  }
  return jobs;
}

Result<WorkerShard> LoadWorkerShard(const fs::path& stage_dir, int call, size_t shard, ShardPlan* plan) {
  const fs::path cdir = CallDir(stage_dir, call);
  Result<ShardPlan> p = ReadShardPlan(cdir);
  if (!p.ok()) return Status::NotFound(fmt::format("no shard plan for pass {} in {}: {}", call, cdir.string(), p.status().message()));
  if (shard >= p->shards.size()) {
    return Status::Invalid(fmt::format("shard {} of a plan with {} shards", shard, p->shards.size()));
  }
  WorkerShard w;
  w.call = call;
  w.tasks_digest = p->digest;
  w.indexes = p->shards[shard];
  w.part = PartPath(cdir, shard);
  w.marker = MarkerPath(cdir, shard);
  *plan = std::move(p).value();
  return w;
}

}  // namespace medpipe
