#include "runner/stage_context.h"

#include <fmt/format.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "dataset/coco_io.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {

namespace {

Result<FileRecord> RecordOf(const fs::path& dir, const std::string& rel, std::string hash) {
  FileStat st = StatPath(dir / rel);
  if (!st.exists) return Status::IOError((dir / rel).string() + ": vanished right after it was written");
  return FileRecord{rel, st.size, st.mtime_ns, std::move(hash)};
}

Status CheckRel(const std::string& rel) {
  if (!IsContainedRelativePath(rel) || rel.rfind(kMetaDir, 0) == 0) {
    return Status::Invalid("output path '" + rel + "' would leave the stage folder");
  }
  return Status::OK();
}

// Crash tests set MEDPIPE_DEBUG_ITEM_DELAY_MS to slow each item down, so that
// a kill lands mid-stage at a chosen point.
int DebugItemDelayMs() {
  static const int ms = [] {
    const char* v = std::getenv("MEDPIPE_DEBUG_ITEM_DELAY_MS");
    return v ? std::atoi(v) : 0;
  }();
  return ms;
}

bool IsFatal(const Status& s) {
  return s.code() == Status::Code::kIOError || s.code() == Status::Code::kCancelled;
}

}  // namespace

Status ItemOutput::WriteFile(const std::string& rel, std::string_view bytes) {
  MEDPIPE_RETURN_IF_ERROR(CheckRel(rel));
  MEDPIPE_RETURN_IF_ERROR(disk_->WriteAtomic(dir_ / rel, bytes, /*sync=*/false));
  MEDPIPE_ASSIGN_OR_RETURN(FileRecord rec, RecordOf(dir_, rel, HashBytes(bytes)));
  files_.push_back(std::move(rec));
  return Status::OK();
}

namespace {

// A link's content is what it points at: the hash covers the target path and
// the state of the file finally reached, so a source image changed in place
// changes this stage's output fingerprint and reruns its dependants.
std::string SymlinkHash(const fs::path& link, const fs::path& target) {
  struct stat st;
  std::string state = ::stat(link.c_str(), &st) == 0
                          ? std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
                                std::to_string(st.st_mtim.tv_nsec)
                          : "dangling";
  return HashBytes("symlink:" + target.string() + "\n" + state);
}

}  // namespace

Status ItemOutput::Symlink(const std::string& rel, const fs::path& target) {
  MEDPIPE_RETURN_IF_ERROR(CheckRel(rel));
  MEDPIPE_RETURN_IF_ERROR(disk_->SymlinkAtomic(dir_ / rel, target));
  MEDPIPE_ASSIGN_OR_RETURN(FileRecord rec, RecordOf(dir_, rel, SymlinkHash(dir_ / rel, target)));
  files_.push_back(std::move(rec));
  return Status::OK();
}

Status ItemOutput::Adopt(const std::string& rel) {
  MEDPIPE_RETURN_IF_ERROR(CheckRel(rel));
  const fs::path path = dir_ / rel;
  FileStat st = StatPath(path);
  if (!st.exists || st.is_dir) return Status::NotFound(path.string() + ": no such file to record");
  std::string hash;
  if (st.is_symlink) {
    std::error_code ec;
    fs::path target = fs::read_symlink(path, ec);
    if (ec) return Status::IOError(path.string() + ": cannot read link: " + ec.message());
    hash = SymlinkHash(path, target);
  } else {
    Result<std::string> bytes = ReadFile(path);
    if (!bytes.ok()) return Status::IOError(bytes.status().message());
    hash = HashBytes(*bytes);
  }
  MEDPIPE_ASSIGN_OR_RETURN(FileRecord rec, RecordOf(dir_, rel, std::move(hash)));
  files_.push_back(std::move(rec));
  return Status::OK();
}

Status ItemOutput::Hardlink(const std::string& rel, const fs::path& source) {
  MEDPIPE_RETURN_IF_ERROR(CheckRel(rel));
  struct stat src;
  if (::stat(source.c_str(), &src) != 0 || !S_ISREG(src.st_mode)) {
    return Status::NotFound(source.string() + ": no such file to link");
  }
  MEDPIPE_ASSIGN_OR_RETURN(bool linked, disk_->HardlinkAtomic(dir_ / rel, source));
  if (!linked) return Copy(rel, source);
  // The link shares the source's inode, so its content is what the source
  // holds; the hash covers the source path and the inode's state instead of
  // rereading the bytes.
  MEDPIPE_ASSIGN_OR_RETURN(
      FileRecord rec, RecordOf(dir_, rel,
                               HashBytes(fmt::format("hardlink:{}\n{}:{}:{}.{}", source.string(), src.st_ino,
                                                     src.st_size, src.st_mtim.tv_sec, src.st_mtim.tv_nsec))));
  files_.push_back(std::move(rec));
  return Status::OK();
}

Status ItemOutput::Copy(const std::string& rel, const fs::path& source) {
  Result<std::string> bytes = ReadFile(source);
  if (!bytes.ok()) return Status::NotFound(bytes.status().message());
  return WriteFile(rel, *bytes);
}

StageContext::StageContext(std::string id, uint64_t seed, fs::path dir, std::vector<InputArtifact> inputs, Disk* disk,
                           std::shared_ptr<Progress> progress, const std::atomic<bool>* cancel, LogSink log)
    : id_(std::move(id)),
      seed_(seed),
      dir_(std::move(dir)),
      inputs_(std::move(inputs)),
      disk_(disk),
      progress_(std::move(progress)),
      cancel_(cancel),
      log_(std::move(log)) {}

void StageContext::Log(const std::string& text) const {
  if (!log_) return;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    log_(id_ + ": " + text.substr(start, nl - start));
    start = nl + 1;
  }
}

Result<Dataset> StageContext::ReadInputDataset(size_t i) const {
  return ReadCoco(inputs_.at(i).dir / "dataset.json");
}

Status StageContext::Record(std::vector<FileRecord> files) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& f : files) files_.push_back(std::move(f));
  return Status::OK();
}

Status StageContext::WriteOutput(const std::string& rel, std::string_view bytes) {
  if (worker_) return Status::OK();  // stage-level outputs are the controller's
  ItemOutput out(disk_, dir_);
  MEDPIPE_RETURN_IF_ERROR(out.WriteFile(rel, bytes));
  return Record(std::move(out.files_));
}

Status StageContext::AdoptOutput(const std::string& rel) {
  if (worker_) return Status::OK();  // stage-level outputs are the controller's
  ItemOutput out(disk_, dir_);
  MEDPIPE_RETURN_IF_ERROR(out.Adopt(rel));
  return Record(std::move(out.files_));
}

Status StageContext::WriteDataset(const Dataset& dataset) { return WriteOutput("dataset.json", SerializeCoco(dataset)); }

std::string ItemKey(std::string_view pass, const ItemTask& task) {
  return pass.empty() ? task.key : std::string(pass) + ":" + task.key;
}

std::string TasksDigest(std::string_view pass, const std::vector<ItemTask>& tasks) {
  Hasher h;
  h.Field(pass).Field(std::to_string(tasks.size()));
  for (const auto& t : tasks) h.Field(t.key).Field(t.fingerprint);
  return h.HexDigest();
}

std::vector<bool> StageContext::WillRun(const std::vector<ItemTask>& tasks, std::string_view pass) {
  std::vector<bool> out(tasks.size(), false);
  if (worker_) {
    if (calls_ != worker_->call) return out;
    for (size_t i : worker_->indexes) {
      if (i < out.size()) out[i] = true;
    }
    return out;
  }
  if (!journal_) {
    Result<std::unique_ptr<ItemJournal>> j = ItemJournal::Open(disk_, dir_);
    if (!j.ok()) return std::vector<bool>(tasks.size(), true);  // RunItems will report it
    journal_ = std::move(j).value();
  }
  for (size_t i = 0; i < tasks.size(); ++i) {
    const ItemRecord* prev = journal_->Find(ItemKey(pass, tasks[i]));
    out[i] = !(prev && Reusable(*prev, tasks[i]));
  }
  return out;
}

fs::path StageContext::TempDir() const {
  if (worker_) return fs::path(worker_->part).replace_extension(".tmp");
  return MetaDir(dir_) / "tmp";
}

void StageContext::SetWorkerShard(WorkerShard shard) { worker_ = std::make_unique<WorkerShard>(std::move(shard)); }

bool StageContext::Reusable(const ItemRecord& prev, const ItemTask& task) const {
  return prev.fingerprint == task.fingerprint && !prev.transient && CheckOutputs(dir_, prev.files).empty();
}

Result<std::vector<ItemResult>> StageContext::RunItems(const std::vector<ItemTask>& tasks, const ItemWork& work,
                                                       std::string_view pass) {
  const int call = calls_++;
  if (!journal_) {
    // A worker only reads the stage's journal: the controller owns it.
    MEDPIPE_ASSIGN_OR_RETURN(journal_, ItemJournal::Open(disk_, dir_, /*repair=*/!worker_));
  }
  progress_->StartPass(static_cast<int64_t>(tasks.size()));
  std::vector<ItemRecord> records(tasks.size());
  std::vector<char> state(tasks.size(), kPending);

  if (worker_) {
    if (call == worker_->call) {
      MEDPIPE_RETURN_IF_ERROR(RunShard(tasks, work, pass));
      shard_finished_ = true;
      return Status::Cancelled("shard finished");
    }
    // An earlier pass: the controller journaled every item of it, failures
    // included, before it submitted this one; its outputs it checked then.
    for (size_t i = 0; i < tasks.size(); ++i) {
      const ItemRecord* prev = journal_->Find(ItemKey(pass, tasks[i]));
      if (!prev || prev->fingerprint != tasks[i].fingerprint) {
        return Status::Corruption(fmt::format("item {} of an earlier pass is not in {}", tasks[i].key,
                                              ItemJournal::PathFor(dir_).string()));
      }
      records[i] = *prev;
      state[i] = kResumed;
    }
    return Finish(tasks, records, state);
  }

  // What an earlier attempt finished, with its outputs intact, is resumed.
  tbb::parallel_for(size_t{0}, tasks.size(), [&](size_t i) {
    const ItemRecord* prev = journal_->Find(ItemKey(pass, tasks[i]));
    if (prev && Reusable(*prev, tasks[i])) {
      records[i] = *prev;
      state[i] = kResumed;
      progress_->AdvanceResumed();
    }
  });
  std::vector<size_t> pending;
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (state[i] == kPending) pending.push_back(i);
  }
  if (dispatcher_ && !pending.empty()) {
    using Records = std::map<size_t, ItemRecord>;
    MEDPIPE_ASSIGN_OR_RETURN(Records remote,
                             dispatcher_->Dispatch(call, pass, tasks, pending, *journal_, *progress_, cancel_));
    for (auto& [i, rec] : remote) {
      records.at(i) = std::move(rec);
      state[i] = kDone;
    }
    std::erase_if(pending, [&](size_t i) { return state[i] != kPending; });
  }
  MEDPIPE_RETURN_IF_ERROR(RunHere(pending, tasks, work, pass, *journal_, records, state));
  return Finish(tasks, records, state);
}

Status StageContext::RunHere(const std::vector<size_t>& indexes, const std::vector<ItemTask>& tasks,
                             const ItemWork& work, std::string_view pass, ItemJournal& journal,
                             std::vector<ItemRecord>& records, std::vector<char>& state) {
  std::atomic<bool> stop{false};
  std::mutex fatal_mu;
  Status fatal;
  auto fail = [&](Status s) {
    std::lock_guard<std::mutex> lock(fatal_mu);
    if (fatal.ok()) fatal = std::move(s);
    stop.store(true);
  };
  tbb::parallel_for(size_t{0}, indexes.size(), [&](size_t j) {
    if (stop.load() || cancelled()) {
      stop.store(true);
      return;
    }
    const size_t i = indexes[j];
    const ItemTask& task = tasks[i];
    if (int ms = DebugItemDelayMs(); ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    ItemOutput out(disk_, dir_);
    // Isolated: a thread waiting inside an item's own nested parallel work
    // on this arena never picks up another item, so the per-thread buffers
    // stages keep (augment's decoded image, the PNG writer's) are never
    // reentered mid-item.
    Result<std::string> r = std::string();
    tbb::this_task_arena::isolate([&] { r = work(i, out); });
    if (!r.ok() && IsFatal(r.status())) return fail(r.status().WithContext("item " + task.key));
    ItemRecord& rec = records[i];
    rec.key = ItemKey(pass, task);
    rec.fingerprint = task.fingerprint;
    rec.ok = r.ok();
    rec.payload = r.ok() ? r.value() : std::string();
    rec.error = r.ok() ? std::string() : r.status().message();
    rec.transient = !r.ok() && r.status().code() == Status::Code::kUnavailable;
    rec.files = std::move(out.files_);
    if (Status s = journal.Append(rec); !s.ok()) return fail(s);
    state[i] = kDone;
    progress_->Advance();
  });
  if (!fatal.ok()) return fatal;
  if (stop.load() || cancelled()) return Status::Cancelled("interrupted");
  return Status::OK();
}

Status StageContext::RunShard(const std::vector<ItemTask>& tasks, const ItemWork& work, std::string_view pass) {
  if (TasksDigest(pass, tasks) != worker_->tasks_digest) {
    return Status::Failed(
        "this pass's items differ from the ones the controller planned (the pipeline file, its inputs or "
        "medpipe changed since it submitted the job)");
  }
  MEDPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ItemJournal> part, ItemJournal::OpenFile(disk_, worker_->part));
  std::vector<ItemRecord> records(tasks.size());
  std::vector<char> state(tasks.size(), kPending);
  std::vector<size_t> todo;
  progress_->StartPass(static_cast<int64_t>(worker_->indexes.size()));
  for (size_t i : worker_->indexes) {
    if (i >= tasks.size()) return Status::Corruption(fmt::format("the shard names item {} of {}", i, tasks.size()));
    // A resubmitted task resumes from what its earlier attempt journaled.
    const ItemRecord* prev = part->Find(ItemKey(pass, tasks[i]));
    if (prev && Reusable(*prev, tasks[i])) {
      progress_->AdvanceResumed();
    } else {
      todo.push_back(i);
    }
  }
  MEDPIPE_RETURN_IF_ERROR(RunHere(todo, tasks, work, pass, *part, records, state));
  MEDPIPE_RETURN_IF_ERROR(part->Sync());
  Log(fmt::format("shard done: {} items, {} run by this attempt, {} resumed from its part", worker_->indexes.size(),
                  todo.size(), worker_->indexes.size() - todo.size()));
  return disk_->WriteAtomic(worker_->marker, fmt::format("{} items\n", worker_->indexes.size()), /*sync=*/true);
}

std::vector<ItemResult> StageContext::Finish(const std::vector<ItemTask>& tasks, std::vector<ItemRecord>& records,
                                             const std::vector<char>& state) {
  std::vector<ItemResult> results(tasks.size());
  int64_t done = 0, resumed = 0, failed = 0, transient = 0;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const ItemRecord& rec = records[i];
    results[i] = ItemResult{rec.ok, rec.payload, rec.error, state[i] == kResumed};
    (state[i] == kResumed ? resumed : done) += 1;
    if (!rec.ok) {
      ++failed;
      if (rec.transient) ++transient;
      // Failed items are counted by what went wrong, not as one "failed".
      Problem(tasks[i].key, rec.error, (rec.transient ? "failed, will retry: " : "failed: ") + ProblemKind(rec.error));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  counts_.total += static_cast<int64_t>(tasks.size());
  counts_.done += done;
  counts_.resumed += resumed;
  counts_.failed += failed;
  counts_.transient += transient;
  for (auto& rec : records) {
    for (auto& f : rec.files) files_.push_back(f);
    records_.push_back(std::move(rec));
  }
  return results;
}

Status StageContext::CompactJournal() {
  if (!journal_) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  return journal_->Compact(records_);
}

std::string ProblemKind(std::string_view reason) {
  std::string_view r = reason;
  std::string_view kind;
  for (int hops = 0; hops < 4; ++hops) {
    // "27 image files ..." and "image files ..." are one kind: no leading
    // count (nor a line number left by a "file.csv:7:" prefix).
    size_t start = r.find_first_not_of("0123456789 :");
    if (start == std::string_view::npos) break;
    r = r.substr(start);
    size_t end = r.find_first_of(":;(,");
    std::string_view head = r.substr(0, end);
    // A leading path or file name ("/data/ct/LICENSE: not a DICOM file",
    // "labels.csv:7: ...") names the item, not the kind: skip it, or every
    // item would be a kind of its own.
    const bool names_a_file = head.find('/') != std::string_view::npos ||
                              (head.find(' ') == std::string_view::npos && head.find('.') != std::string_view::npos);
    if (!names_a_file) {
      kind = head;
      break;
    }
    if (end == std::string_view::npos) break;
    r = r.substr(end + 1);
  }
  std::string k(kind);
  while (!k.empty() && k.back() == ' ') k.pop_back();
  if (k.size() > 60) {
    size_t cut = k.rfind(' ', 57);
    k = k.substr(0, cut == std::string::npos || cut < 20 ? 57 : cut) + "...";
  }
  return k.empty() ? "other" : k;
}

void StageContext::Problem(const std::string& item, const std::string& reason, const std::string& kind) {
  std::string k = kind.empty() ? ProblemKind(reason) : kind;
  std::lock_guard<std::mutex> lock(mu_);
  problems_.push_back({std::move(k), item, reason});
}

std::vector<StageContext::ProblemEntry> StageContext::SortedProblems() const {
  std::vector<ProblemEntry> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out = problems_;
  }
  std::sort(out.begin(), out.end(), [](const ProblemEntry& a, const ProblemEntry& b) {
    if (a.item != b.item) return NaturalLess(a.item, b.item);
    return a.reason < b.reason;
  });
  return out;
}

std::map<std::string, int64_t> StageContext::problem_counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, int64_t> out;
  for (const auto& p : problems_) ++out[p.kind];
  return out;
}

int64_t StageContext::problem_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(problems_.size());
}

std::string StageContext::ProblemSummary(size_t examples) const {
  std::vector<ProblemEntry> problems = SortedProblems();
  if (problems.empty()) return "";
  std::map<std::string, int64_t> counts = problem_counts();
  std::vector<std::pair<std::string, int64_t>> kinds(counts.begin(), counts.end());
  std::stable_sort(kinds.begin(), kinds.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> by_kind, first;
  for (const auto& [k, n] : kinds) by_kind.push_back(fmt::format("{} {}", n, k));
  for (size_t i = 0; i < problems.size() && i < examples; ++i) {
    first.push_back(problems[i].item + ": " + problems[i].reason);
  }
  return fmt::format("{} problem{} ({}); first: {}{}", problems.size(), problems.size() == 1 ? "" : "s",
                     Join(by_kind, ", "), Join(first, " | "),
                     problems.size() > examples ? fmt::format(" | ... all in {}/report.json", id_) : "");
}

void StageContext::Count(const std::string& counter, int64_t delta) {
  std::lock_guard<std::mutex> lock(mu_);
  counters_[counter] += delta;
}

std::map<std::string, int64_t> StageContext::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

std::vector<FileRecord> StageContext::TakeFiles() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<FileRecord> out = std::move(files_);
  files_.clear();
  std::sort(out.begin(), out.end(), [](const FileRecord& a, const FileRecord& b) { return a.path < b.path; });
  // A path written twice (an item redone in the same attempt) keeps its last record.
  std::vector<FileRecord> unique;
  for (auto& f : out) {
    if (!unique.empty() && unique.back().path == f.path) {
      unique.back() = std::move(f);
    } else {
      unique.push_back(std::move(f));
    }
  }
  return unique;
}

Status StageContext::WriteReport() {
  std::vector<ProblemEntry> problems = SortedProblems();
  std::map<std::string, int64_t> counters;
  ItemCounts counts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    counters = counters_;
    counts = counts_;
  }
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.SetIndent(' ', 2);
  w.StartObject();
  w.Key("stage"), w.String(id_.c_str());
  w.Key("items"), w.Int64(counts.total);
  w.Key("failed"), w.Int64(counts.failed);
  w.Key("counters");
  w.StartObject();
  for (const auto& [k, v] : counters) {
    w.Key(k.c_str());
    w.Int64(v);
  }
  w.EndObject();
  w.Key("problem_counts");
  w.StartObject();
  for (const auto& [k, n] : problem_counts()) {
    w.Key(k.c_str());
    w.Int64(n);
  }
  w.EndObject();
  w.Key("problems");
  w.StartArray();
  for (const auto& p : problems) {
    w.StartObject();
    w.Key("item"), w.String(p.item.c_str());
    w.Key("reason"), w.String(p.reason.c_str());
    w.Key("kind"), w.String(p.kind.c_str());
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return WriteOutput("report.json", std::string(buf.GetString(), buf.GetSize()) + "\n");
}

}  // namespace medpipe
