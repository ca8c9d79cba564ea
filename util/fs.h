// The filesystem boundary. Everything medpipe writes goes through a Disk so
// that tests can inject faults (a full disk after N writes) and check that the
// last complete checkpoint survives, as LevelDB does with its Env.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace medpipe {

namespace fs = std::filesystem;

struct FileStat {
  bool exists = false;
  bool is_dir = false;
  bool is_symlink = false;
  uint64_t size = 0;      // for a symlink: the length of its target
  int64_t mtime_ns = 0;   // of the file itself, not of a symlink's target
};

// lstat(2): a symlink is described, not followed.
FileStat StatPath(const char* path);
inline FileStat StatPath(const std::string& path) { return StatPath(path.c_str()); }
inline FileStat StatPath(const fs::path& path) { return StatPath(path.c_str()); }
// stat(2): whether `path`, with symlinks followed, reaches an existing file.
bool TargetExists(const char* path);
// The bytes of every file under `root` (symlinks counted as links, not
// followed), as `du --apparent-size` would; 0 when `root` is missing.
uint64_t DiskUsage(const fs::path& root);

struct ListedFile {
  std::string rel;  // relative to the listed root, '/'-separated
  FileStat stat;    // of the file reached (symlinks followed)
};

// Every regular file under `root` (in subfolders too when `recursive`;
// symlinked folders are followed up to a depth of 64), sorted by `rel`.
// Hidden entries (names starting with '.') are skipped.
Result<std::vector<ListedFile>> ListFiles(const fs::path& root, bool recursive);
Result<std::string> ReadFile(const fs::path& path);

// A file opened for appending whole records (a journal, a log).
class AppendFile {
 public:
  virtual ~AppendFile() = default;
  // Appends `record` with one write(2), so a kill leaves either the whole
  // record or a torn tail that readers detect by its missing newline.
  virtual Status Append(std::string_view record) = 0;
  virtual Status Sync() = 0;
};

class Disk {
 public:
  virtual ~Disk() = default;

  // Writes `bytes` to `path` through a hidden temp file in the same directory
  // and a rename, creating parent directories. With `sync`, the data and the
  // directory entry are fsynced before returning. A reader never sees a
  // partial file at `path`.
  virtual Status WriteAtomic(const fs::path& path, std::string_view bytes, bool sync);

  // Makes `link` a symlink to `target`, replacing what was there atomically.
  virtual Status SymlinkAtomic(const fs::path& link, const fs::path& target);

  // Makes `link` a hard link to the file `target` reaches (symlinks
  // followed), replacing what was there atomically. Returns false, having
  // changed nothing, when the filesystem refuses hard links between these
  // paths (another filesystem, no hard-link support, too many links): the
  // caller copies instead. A missing target is an error like any other.
  virtual Result<bool> HardlinkAtomic(const fs::path& link, const fs::path& target);

  virtual Result<std::unique_ptr<AppendFile>> OpenAppend(const fs::path& path);

  virtual Status Remove(const fs::path& path);
  virtual Status CreateDirs(const fs::path& path);
};

// The process-wide real disk.
Disk* DefaultDisk();

// A Disk that fails every write after the first `budget` ones with the error a
// full disk gives. For tests of crash and failure paths.
class FullDiskAfter : public Disk {
 public:
  explicit FullDiskAfter(int budget) : budget_(budget) {}
  Status WriteAtomic(const fs::path& path, std::string_view bytes, bool sync) override;
  Status SymlinkAtomic(const fs::path& link, const fs::path& target) override;
  Result<bool> HardlinkAtomic(const fs::path& link, const fs::path& target) override;
  Result<std::unique_ptr<AppendFile>> OpenAppend(const fs::path& path) override;

 private:
  Status Spend();
  std::atomic<int> budget_;
};

// A Disk that refuses every write outside `root` (kInvalid naming the path):
// what a Slurm worker gets, so a bug or a hostile file name cannot make one
// task write beyond its stage's folder. Paths are compared lexically after
// normalisation; `root` must be absolute.
class ConfinedDisk : public Disk {
 public:
  explicit ConfinedDisk(fs::path root) : root_(fs::path(root).lexically_normal()) {}
  Status WriteAtomic(const fs::path& path, std::string_view bytes, bool sync) override;
  Status SymlinkAtomic(const fs::path& link, const fs::path& target) override;
  Result<bool> HardlinkAtomic(const fs::path& link, const fs::path& target) override;
  Result<std::unique_ptr<AppendFile>> OpenAppend(const fs::path& path) override;
  Status Remove(const fs::path& path) override;
  Status CreateDirs(const fs::path& path) override;

 private:
  Status Check(const fs::path& path) const;
  const fs::path root_;
};

// True if `rel` is a relative path that stays inside its base directory:
// no root, no "..", no empty name. Paths from input data pass through here.
bool IsContainedRelativePath(std::string_view rel);

}  // namespace medpipe
