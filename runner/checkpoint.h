// What the runner keeps on disk to decide, on the next run, what is done.
//
// Layout of one stage instance's folder, <workdir>/<id>/:
//   <outputs>                   what the stage wrote (dataset.json, images ...)
//   .medpipe/manifest.tsv       every output file: hash, size, mtime, path
//   .medpipe/commit.json        written last: the stage is done when this
//                               exists and its fingerprint matches
//   .medpipe/items.jsonl        per-item journal (see item_journal.h)
//   .medpipe/failed.json        why the last attempt failed, if it did
// A missing record is "never run", not an error (as Ninja's build log).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

inline constexpr int kCommitFormatVersion = 1;
inline constexpr const char* kMetaDir = ".medpipe";

struct FileRecord {
  std::string path;  // relative to the stage folder
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string hash;  // of the content; of the target for a symlink
};

struct ItemCounts {
  int64_t total = 0;
  int64_t done = 0;     // finished in this attempt
  int64_t resumed = 0;  // taken from the journal of an earlier attempt
  int64_t failed = 0;   // per-item problems (recorded, not fatal)
  int64_t transient = 0;  // of those, transient ones: the next run retries them
};

struct CommitRecord {
  std::string kind;
  int kind_version = 0;
  std::string fingerprint;         // of what the stage ran on
  std::string output_fingerprint;  // of what it produced
  std::map<std::string, std::string> params;  // canonical JSON per param
  std::map<std::string, std::string> inputs;  // input id -> its output fingerprint
  std::string external;                       // fingerprint of sources outside the workdir
  uint64_t seed = 0;
  ItemCounts items;
  std::map<std::string, int64_t> counters;
  // Per-item problems of the attempt, counted by kind (see
  // StageContext::Problem); their items and reasons are in report.json.
  std::map<std::string, int64_t> problems;
  // The params of this stage set by `--set` on the command line for this
  // commit (name -> value as given), so `status` can say a param differs from
  // the file because it was overridden.
  std::map<std::string, std::string> overrides;
  double seconds = 0;
  std::string finished_at;  // UTC, ISO 8601
};

fs::path MetaDir(const fs::path& stage_dir);

// NotFound when the stage never committed; Corruption when the record is
// unreadable or of another format version.
Result<CommitRecord> ReadCommit(const fs::path& stage_dir);
// Written through a temp file, fsync and rename: the last act of a stage.
Status WriteCommit(Disk* disk, const fs::path& stage_dir, const CommitRecord& record);
// Removes the commit record (and syncs the folder) before a stage reruns, so
// a crash mid-run can never leave an old record beside new outputs.
Status InvalidateCommit(const fs::path& stage_dir);

Result<std::vector<FileRecord>> ReadManifest(const fs::path& stage_dir);
Status WriteManifest(Disk* disk, const fs::path& stage_dir, const std::vector<FileRecord>& files);

// Stats every file of `files` (never reads content). Returns "" when all
// match, else a description of the first that does not ("output
// images/a.png was deleted").
std::string CheckOutputs(const fs::path& stage_dir, const std::vector<FileRecord>& files);

// The fingerprint of a stage's outputs: their paths and content hashes.
// REQUIRES: `files` sorted by path.
std::string OutputFingerprint(const std::vector<FileRecord>& files);

struct FailureRecord {
  std::string reason;
  std::string at;
};
Status WriteFailure(Disk* disk, const fs::path& stage_dir, const FailureRecord& failure);
Result<FailureRecord> ReadFailure(const fs::path& stage_dir);

std::string UtcNow();

}  // namespace medpipe
