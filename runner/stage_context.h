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

  // Reads input `i`'s dataset.json.
  Result<Dataset> ReadInputDataset(size_t i) const;

  // Stage-level outputs (not per item), atomic and recorded.
  Status WriteOutput(const std::string& rel, std::string_view bytes);
  Status WriteDataset(const Dataset& dataset);  // as "dataset.json"

  // Runs `work` for every task in parallel on the run's TBB arena, taking
  // from the journal the items an earlier attempt finished. Results are in
  // task order whatever the thread count. Fails only with what ends the
  // stage (I/O error, cancel); per-item failures are in the results.
  // A stage with several per-item passes names each `pass`: keys are
  // journaled per pass, so the passes never overwrite each other's records.
  Result<std::vector<ItemResult>> RunItems(const std::vector<ItemTask>& tasks, const ItemWork& work,
                                           std::string_view pass = "");

  // A per-item problem: an input skipped, dropped, refused or failed. It is
  // listed in report.json, counted by `kind` in the commit record (what
  // `status` shows) and summed up on the console when the stage ends; with
  // --strict any problem fails the stage. `kind` groups problems for those
  // counts ("no pixel data", "unsafe file_name"); when empty it is the start
  // of `reason`, up to its first ':', ';', '(' or ','. Thread-safe.
  void Problem(const std::string& item, const std::string& reason, const std::string& kind = "");
  // Adds to a named counter kept in report.json and the commit record.
  void Count(const std::string& counter, int64_t delta = 1);

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

  const std::string id_;
  const uint64_t seed_;
  const fs::path dir_;
  const std::vector<InputArtifact> inputs_;
  Disk* const disk_;
  std::shared_ptr<Progress> progress_;
  const std::atomic<bool>* cancel_;
  const LogSink log_;
  std::unique_ptr<ItemJournal> journal_;

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
