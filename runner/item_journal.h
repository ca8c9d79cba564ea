// The per-item journal that lets a long stage resume after a crash.
//
// An item's outputs are written atomically first; then one line recording
// the item (its key, fingerprint, result and output files) is appended with a
// single write. A kill between the two leaves the item unjournaled, so it is
// redone; a torn last line is ignored. On resume an item is taken from the
// journal only if its fingerprint matches and its files still stat as
// recorded, so at most the items in flight are redone and a deleted or
// changed output file is redone alone.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "runner/checkpoint.h"

namespace medpipe {

struct ItemRecord {
  std::string key;
  std::string fingerprint;
  bool ok = true;
  std::string payload;  // the stage's result for the item (opaque text)
  std::string error;    // when !ok: the per-item problem
  bool transient = false;  // when !ok: retried by the next attempt, not resumed
  std::vector<FileRecord> files;
};

class ItemJournal {
 public:
  // Loads the journal of `stage_dir` (empty when there is none). With
  // `repair`, a torn tail is cut off so the next append starts a line; only
  // the process that will append may repair (status reads with repair off,
  // so it never rewrites a journal a running stage is appending to).
  static Result<std::unique_ptr<ItemJournal>> Open(Disk* disk, const fs::path& stage_dir, bool repair = true);
  // The same for a journal file of another name (a Slurm task's part).
  static Result<std::unique_ptr<ItemJournal>> OpenFile(Disk* disk, const fs::path& file, bool repair = true);

  // The latest record for `key`, or null. Thread-safe: the loaded records are
  // never modified after Open.
  const ItemRecord* Find(const std::string& key) const;

  // Appends `record`. Thread-safe.
  Status Append(const ItemRecord& record);

  // Appends `records` in a few large writes (merging a Slurm task's part).
  Status AppendAll(const std::vector<const ItemRecord*>& records);

  // Makes what was appended durable (before a task's done marker).
  Status Sync();

  // Rewrites the journal to hold exactly `records`, atomically.
  Status Compact(const std::vector<ItemRecord>& records);

  size_t loaded() const { return loaded_.size(); }

  static fs::path PathFor(const fs::path& stage_dir);

 private:
  ItemJournal(Disk* disk, fs::path path) : disk_(disk), path_(std::move(path)) {}

  Disk* disk_;
  fs::path path_;
  std::unordered_map<std::string, ItemRecord> loaded_;
  std::mutex mu_;
  std::unique_ptr<AppendFile> file_;  // opened on first Append; guarded by mu_
};

std::string EncodeItemRecord(const ItemRecord& record);
bool DecodeItemRecord(std::string_view line, ItemRecord* record);

}  // namespace medpipe
