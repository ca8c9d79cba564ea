#include "stages/split_keep.h"

#include <fmt/format.h>

#include <set>
#include <system_error>

#include "dataset/coco_io.h"
#include "util/csv.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {

namespace {

bool IsDirectory(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);  // follows symlinks: a source may be a link
}
bool IsFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}
bool IsCsv(const fs::path& p) { return p.extension() == ".csv" || p.extension() == ".CSV"; }

// Records `bin` for `key`; a key already in another bin is a leak in the
// source, reported once per key.
void Note(const std::string& key, const std::string& bin, KeptSplits* out, std::set<std::string>* leaks) {
  auto [it, inserted] = out->bin_of.emplace(key, bin);
  if (!inserted && it->second != bin) {
    leaks->insert(fmt::format("{} {} in {} and {}", key.substr(0, key.find('\x1f')), key.substr(key.find('\x1f') + 1),
                              it->second, bin));
  }
}

Status ReadCsvSource(const fs::path& path, bool kfold, KeptSplits* out, std::set<std::string>* leaks) {
  MEDPIPE_ASSIGN_OR_RETURN(CsvTable t, ReadCsv(path.string()));
  const int patient = t.Column("patient_id");
  const int split = t.Column("split"), fold = t.Column("fold");
  const int bin = kfold && fold >= 0 ? fold : split;
  if (patient < 0 || bin < 0) {
    return Status::Invalid(fmt::format("{}: needs a header with patient_id and {} columns (has: {})", path.string(),
                                       kfold ? "fold (or split)" : "split", Join(t.header, ", ")));
  }
  if (!t.errors.empty()) return Status::Invalid(t.errors.front().message);
  for (const CsvRow& row : t.rows) {
    const std::string& id = row.fields[static_cast<size_t>(patient)];
    std::string b = row.fields[static_cast<size_t>(bin)];
    if (id.empty() || b.empty()) continue;  // an image without a patient or split binds nobody
    if (kfold && bin == fold) b = "fold" + b;
    Note("patient\x1f" + id, b, out, leaks);
  }
  return Status::OK();
}

Status ReadCocoSource(const Dataset& ds, bool kfold, const std::string& group_attribute, const fs::path& path,
                      KeptSplits* out, std::set<std::string>* leaks) {
  for (const Image& img : ds.images) {
    std::string bin = img.split;
    if (kfold) {
      auto f = img.attributes.find("fold");
      bin = f == img.attributes.end() ? std::string() : "fold" + AttrToString(f->second);
    }
    if (bin.empty()) {
      return Status::Invalid(fmt::format("{}: image {} has no {}; keep needs a dataset that was split{}",
                                         path.string(), img.file_name, kfold ? "fold" : "split",
                                         kfold ? " into folds" : ""));
    }
    if (!img.patient_id.empty()) Note("patient\x1f" + img.patient_id, bin, out, leaks);
    if (!group_attribute.empty()) {
      auto g = img.attributes.find(group_attribute);
      if (g != img.attributes.end()) Note("group\x1f" + AttrToString(g->second), bin, out, leaks);
    }
  }
  return Status::OK();
}

}  // namespace

Result<std::vector<fs::path>> KeepFiles(const fs::path& path) {
  if (IsFile(path)) return std::vector<fs::path>{path};
  if (!IsDirectory(path)) return Status::NotFound(path.string() + ": no such file or folder");
  if (IsFile(path / "dataset.json")) return std::vector<fs::path>{path / "dataset.json"};
  std::vector<fs::path> files;
  for (const char* folder : {"train", "valid", "val", "test"}) {
    if (IsFile(path / folder / "_annotations.coco.json")) files.push_back(path / folder / "_annotations.coco.json");
  }
  if (!files.empty()) return files;
  if (IsFile(path / "dataset.csv")) return std::vector<fs::path>{path / "dataset.csv"};
  return Status::NotFound(path.string() +
                          ": holds no dataset.json, no train/valid/test folders with _annotations.coco.json and no "
                          "dataset.csv");
}

Result<KeptSplits> ReadKeptSplits(const fs::path& path, bool kfold, const std::string& group_attribute) {
  KeptSplits out;
  MEDPIPE_ASSIGN_OR_RETURN(out.files, KeepFiles(path));
  std::set<std::string> leaks;
  if (out.files.size() == 1 && IsCsv(out.files[0])) {
    MEDPIPE_RETURN_IF_ERROR(ReadCsvSource(out.files[0], kfold, &out, &leaks));
  } else {
    // A folder of split folders is read as Roboflow export; one file as COCO.
    bool roboflow = IsDirectory(path) && out.files[0].filename() == "_annotations.coco.json";
    MEDPIPE_ASSIGN_OR_RETURN(Dataset ds, roboflow ? ReadRoboflow(path) : ReadCoco(out.files[0]));
    MEDPIPE_RETURN_IF_ERROR(ReadCocoSource(ds, kfold, group_attribute, path, &out, &leaks));
  }
  if (!leaks.empty()) {
    std::vector<std::string> shown(leaks.begin(), leaks.end());
    if (shown.size() > 10) shown.resize(10), shown.push_back("...");
    return Status::Invalid(fmt::format("{}: the kept dataset already leaks ({}); its splits cannot be kept",
                                       path.string(), Join(shown, "; ")));
  }
  for (const auto& [key, bin] : out.bin_of) out.patients += key.rfind("patient\x1f", 0) == 0;
  return out;
}

Result<std::string> KeepFingerprint(const fs::path& path) {
  Result<std::vector<fs::path>> files = KeepFiles(path);
  Hasher h;
  h.Field(path.string());
  if (!files.ok()) return h.Field("missing").HexDigest();  // the run then fails, naming the path
  for (const fs::path& f : *files) {
    MEDPIPE_ASSIGN_OR_RETURN(std::string bytes, ReadFile(f));
    h.Field(f.lexically_relative(path).string()).Field(HashBytes(bytes));
  }
  return h.HexDigest();
}

}  // namespace medpipe
