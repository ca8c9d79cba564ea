// StageContext: everything a running stage may touch, and nothing about
// checkpoints. The runner makes one per attempt; the stage reads its inputs,
// writes its outputs and reports per-item problems through it. Fingerprints,
// commit records and skipping stay in the runner; per-item resume is the
// RunItems helper below, shared by every per-item stage.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dataset/dataset.h"
#include "runner/checkpoint.h"
#include "runner/item_journal.h"
#include "runner/progress.h"
#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

// Output files of one item, written through the runner so they are atomic,
// hashed once as written, and recorded in the item's journal line.
class ItemOutput {
 public:
  // Writes `bytes` to <stage dir>/<rel>.
  // REQUIRES: `rel` passes IsContainedRelativePath (else kInvalid).
  Status WriteFile(const std::string& rel, std::string_view bytes);
  // Makes <stage dir>/<rel> a symlink to `target` (relative targets are
  // relative to the link's folder, as symlink(2) reads them).
  Status Symlink(const std::string& rel, const fs::path& target);
  // Makes <stage dir>/<rel> a hard link to the file `source` reaches
  // (symlinks followed), or a copy of its bytes where the filesystem refuses
  // a hard link (another filesystem, ...). Either way the output stands on
  // its own: deleting or moving the source's folder does not break it.
  // A missing or unreadable source is kNotFound/kInvalid, a per-item problem.
  Status Hardlink(const std::string& rel, const fs::path& source);
  // Writes a copy of the bytes of the file `source` reaches to <stage dir>/<rel>.
  Status Copy(const std::string& rel, const fs::path& source);
  // Records <stage dir>/<rel>, a file or symlink something else wrote there
  // (a child process), hashing it as written: its bytes, or a symlink's
  // target as Symlink does. What the caller adopts is the caller's to vet.
  Status Adopt(const std::string& rel);

 private:
  friend class StageContext;
  ItemOutput(Disk* disk, const fs::path& dir) : disk_(disk), dir_(dir) {}
  Disk* disk_;
  const fs::path& dir_;
  std::vector<FileRecord> files_;
};

struct ItemTask {
  std::string key;          // unique and stable across runs, e.g. a source path
  std::string fingerprint;  // everything the item's result depends on
};

struct ItemResult {
  bool ok = false;
  std::string payload;  // the work function's result, from this run or the journal
  std::string error;    // when !ok
  bool resumed = false;
};

// Per-item work: returns the item's payload, or a Status. kIOError and
// kCancelled end the stage; every other error is a per-item problem, recorded
// and counted, and the stage goes on.
using ItemWork = std::function<Result<std::string>(size_t index, ItemOutput& out)>;

// A per-item key as journaled: the task's key, prefixed by its pass.
std::string ItemKey(std::string_view pass, const ItemTask& task);
// A digest of a RunItems call's tasks (pass, keys and fingerprints): a Slurm
// worker checks it recomputed the very items the controller planned.
std::string TasksDigest(std::string_view pass, const std::vector<ItemTask>& tasks);

// Runs a stage's pending items outside this process, for the controller of
// a cluster run (runner/slurm_dispatch.h). The local default needs none.
class ItemDispatcher {
 public:
  virtual ~ItemDispatcher() = default;
  // Has the items `pending` (indexes into `tasks`) of the stage's RunItems
  // call number `call` done elsewhere and returns their records by task
  // index once each is done or has failed as an item, having appended them
  // to `journal`. It may return records of more items than `pending` (a plan
  // adopted from an interrupted run) and of fewer (the caller runs the rest
  // here). Fails with what ends the stage (a task that failed every retry,
  // cancel), after journaling what the other tasks finished.
  virtual Result<std::map<size_t, ItemRecord>> Dispatch(int call, std::string_view pass,
                                                        const std::vector<ItemTask>& tasks,
                                                        const std::vector<size_t>& pending, ItemJournal& journal,
                                                        Progress& progress, const std::atomic<bool>* cancel) = 0;
};

// What a Slurm worker runs: one shard of one RunItems call of the stage.
struct WorkerShard {
  int call = 0;                 // RunItems calls count from 0 in the order Stage::Run makes them
  std::string tasks_digest;     // TasksDigest of that call's tasks, as the controller planned them
  std::vector<size_t> indexes;  // the shard's task indexes
  fs::path part;                // its journal part
  fs::path marker;              // written once every item of the shard is journaled
};

// The kind a problem is counted under, from its reason: up to the first
// ':', ';', '(' or ',', without a leading count, path or file name, at most
// 60 characters ("/data/ct/LICENSE: not a DICOM file" -> "not a DICOM
// file"). "other" when nothing is left.
std::string ProblemKind(std::string_view reason);

struct InputArtifact {
  std::string id;
  fs::path dir;  // the input stage's folder; dataset file names are relative to it
};

class StageContext {
 public:
  using LogSink = std::function<void(const std::string&)>;
  StageContext(std::string id, uint64_t seed, fs::path dir, std::vector<InputArtifact> inputs, Disk* disk,
               std::shared_ptr<Progress> progress, const std::atomic<bool>* cancel, LogSink log = nullptr);

  const std::string& id() const { return id_; }
  uint64_t seed() const { return seed_; }
  const fs::path& dir() const { return dir_; }
  const std::vector<InputArtifact>& inputs() const { return inputs_; }
  Disk* disk() const { return disk_; }
  bool cancelled() const { return cancel_ && cancel_->load(); }
  // The run's cancel flag (may be null), for waits outside TBB such as a
  // child process that must be killed on Ctrl-C.
  const std::atomic<bool>* cancel_flag() const { return cancel_; }

  // Reads input `i`'s dataset.json.
  Result<Dataset> ReadInputDataset(size_t i) const;

  // Stage-level outputs (not per item), atomic and recorded.
  Status WriteOutput(const std::string& rel, std::string_view bytes);
  Status WriteDataset(const Dataset& dataset);  // as "dataset.json"
  // Records a stage-level output written by something else (see
  // ItemOutput::Adopt), so the commit records its hash like any output.
  Status AdoptOutput(const std::string& rel);

  // Runs `work` for every task in parallel on the run's TBB arena, taking
  // from the journal the items an earlier attempt finished. Results are in
  // task order whatever the thread count. Fails only with what ends the
  // stage (I/O error, cancel); per-item failures are in the results.
  // A stage with several per-item passes names each `pass`: keys are
  // journaled per pass, so the passes never overwrite each other's records.
  //
  // With a dispatcher (a cluster run), the items not journaled are run by
  // it instead. In a worker (SetWorkerShard), the calls before the shard's
  // take every item from the journal the controller merged, and the shard's
  // call runs just the shard's items into its journal part, writes its
  // marker and returns kCancelled with shard_finished() set: the stage's
  // code after it, and every stage-level write, belong to the controller.
  Result<std::vector<ItemResult>> RunItems(const std::vector<ItemTask>& tasks, const ItemWork& work,
                                           std::string_view pass = "");

  // Which of `tasks` the next RunItems call will run: those the journal does
  // not hold (in a worker, just its shard's). For work prepared ahead of the
  // items, like download's prefetching. In a cluster run's controller the
  // pending items go to the dispatcher, so the work function never asks for
  // them; preparation must start on demand (as PrefetchQueue::Take does).
  std::vector<bool> WillRun(const std::vector<ItemTask>& tasks, std::string_view pass = "");

  // A folder for this process's temporary files, inside the stage's
  // checkpoint folder: its own per worker of a cluster run, so workers never
  // remove each other's. Not created; the caller owns its content.
  fs::path TempDir() const;

  // A per-item problem: an input skipped, dropped, refused or failed. It is
  // listed in report.json, counted by `kind` in the commit record (what
  // `status` shows) and summed up on the console when the stage ends; with
  // --strict any problem fails the stage. `kind` groups problems for those
  // counts ("no pixel data", "unsafe file_name"); when empty it is the start
  // of `reason`, up to its first ':', ';', '(' or ','. Thread-safe.
  void Problem(const std::string& item, const std::string& reason, const std::string& kind = "");
  // Adds to a named counter kept in report.json and the commit record.
  void Count(const std::string& counter, int64_t delta = 1);

  // A cluster run's controller: pending items go to `dispatcher` (not owned).
  void SetDispatcher(ItemDispatcher* dispatcher) { dispatcher_ = dispatcher; }
  // A worker: runs one shard (see RunItems); stage-level writes are dropped.
  void SetWorkerShard(WorkerShard shard);
  bool shard_finished() const { return shard_finished_; }

  Progress& progress() { return *progress_; }
  // Writes `text` (one or more lines) to the run's log, prefixed with the
  // stage id: for summaries a user reads after the run (analyze's table).
  void Log(const std::string& text) const;

  // For the runner: everything written, the counts, and the report.
  std::vector<FileRecord> TakeFiles();
  const ItemCounts& item_counts() const { return counts_; }
  std::map<std::string, int64_t> counters() const;
  // Problems so far, counted by kind, and their total.
  std::map<std::string, int64_t> problem_counts() const;
  int64_t problem_total() const;
  // One line for the console: the problems counted by kind and the first
  // `examples` of them (in report order) with their reasons; "" when none.
  std::string ProblemSummary(size_t examples = 3) const;
  // Writes report.json (counters and problems, in natural order of item so
  // "labels.csv:7" comes before "labels.csv:10"): the stage's record of what
  // went wrong per item.
  Status WriteReport();
  // Rewrites the journal to hold exactly this attempt's items, of every pass,
  // so it stays as small as the stage and a deleted output can still be
  // redone alone on the next run.
  Status CompactJournal();

 private:
  Status Record(std::vector<FileRecord> files);

  enum ItemState : char { kPending, kResumed, kDone };
  // An earlier attempt's record that stands for `task`: same fingerprint,
  // not a transient failure, outputs as recorded.
  bool Reusable(const ItemRecord& prev, const ItemTask& task) const;
  // Runs `work` for tasks[indexes] here, appending each to `journal`.
  Status RunHere(const std::vector<size_t>& indexes, const std::vector<ItemTask>& tasks, const ItemWork& work,
                 std::string_view pass, ItemJournal& journal, std::vector<ItemRecord>& records,
                 std::vector<char>& state);
  // A worker's part of RunItems.
  Status RunShard(const std::vector<ItemTask>& tasks, const ItemWork& work, std::string_view pass);
  // Results, counts and problems of a finished call.
  std::vector<ItemResult> Finish(const std::vector<ItemTask>& tasks, std::vector<ItemRecord>& records,
                                 const std::vector<char>& state);

  const std::string id_;
  const uint64_t seed_;
  const fs::path dir_;
  const std::vector<InputArtifact> inputs_;
  Disk* const disk_;
  std::shared_ptr<Progress> progress_;
  const std::atomic<bool>* cancel_;
  const LogSink log_;
  std::unique_ptr<ItemJournal> journal_;
  int calls_ = 0;  // RunItems calls so far
  ItemDispatcher* dispatcher_ = nullptr;
  std::unique_ptr<WorkerShard> worker_;
  bool shard_finished_ = false;

  mutable std::mutex mu_;
  std::vector<FileRecord> files_;
  struct ProblemEntry {
    std::string kind, item, reason;
  };
  std::vector<ProblemEntry> SortedProblems() const;
  std::vector<ProblemEntry> problems_;
  std::vector<ItemRecord> records_;  // every item of this attempt, all passes
  std::map<std::string, int64_t> counters_;
  ItemCounts counts_;
};

}  // namespace medpipe
