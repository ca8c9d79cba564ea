#include "runner/checkpoint.h"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <charconv>
#include <ctime>

#include "util/hash.h"

namespace medpipe {

namespace {

using JsonWriter = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

void WriteStringMap(JsonWriter& w, const char* key, const std::map<std::string, std::string>& m) {
  w.Key(key);
  w.StartObject();
  for (const auto& [k, v] : m) {
    w.Key(k.c_str());
    w.String(v.c_str());
  }
  w.EndObject();
}

std::string GetStr(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  return it != obj.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}

int64_t GetInt(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  return it != obj.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : 0;
}

}  // namespace

fs::path MetaDir(const fs::path& stage_dir) { return stage_dir / kMetaDir; }

std::string UtcNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Status WriteCommit(Disk* disk, const fs::path& stage_dir, const CommitRecord& r) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.SetIndent(' ', 2);
  w.StartObject();
  w.Key("medpipe_commit"), w.Int(kCommitFormatVersion);
  w.Key("kind"), w.String(r.kind.c_str());
  w.Key("kind_version"), w.Int(r.kind_version);
  w.Key("fingerprint"), w.String(r.fingerprint.c_str());
  w.Key("output_fingerprint"), w.String(r.output_fingerprint.c_str());
  w.Key("seed"), w.Uint64(r.seed);
  w.Key("external"), w.String(r.external.c_str());
  WriteStringMap(w, "params", r.params);
  WriteStringMap(w, "inputs", r.inputs);
  if (!r.overrides.empty()) WriteStringMap(w, "overrides", r.overrides);
  w.Key("items");
  w.StartObject();
  w.Key("total"), w.Int64(r.items.total);
  w.Key("done"), w.Int64(r.items.done);
  w.Key("resumed"), w.Int64(r.items.resumed);
  w.Key("failed"), w.Int64(r.items.failed);
  w.Key("transient"), w.Int64(r.items.transient);
  w.EndObject();
  for (const auto* m : {&r.counters, &r.problems}) {
    w.Key(m == &r.counters ? "counters" : "problems");
    w.StartObject();
    for (const auto& [k, v] : *m) {
      w.Key(k.c_str());
      w.Int64(v);
    }
    w.EndObject();
  }
  w.Key("seconds"), w.Double(r.seconds);
  w.Key("finished_at"), w.String(r.finished_at.c_str());
  w.EndObject();
  std::string text(buf.GetString(), buf.GetSize());
  text.push_back('\n');
  return disk->WriteAtomic(MetaDir(stage_dir) / "commit.json", text, /*sync=*/true);
}

Result<CommitRecord> ReadCommit(const fs::path& stage_dir) {
  fs::path path = MetaDir(stage_dir) / "commit.json";
  MEDPIPE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  if (doc.HasParseError() || !doc.IsObject()) return Status::Corruption(path.string() + ": not a commit record");
  if (GetInt(doc, "medpipe_commit") != kCommitFormatVersion) {
    return Status::Corruption(path.string() + ": commit record of another format version");
  }
  CommitRecord r;
  r.kind = GetStr(doc, "kind");
  r.kind_version = static_cast<int>(GetInt(doc, "kind_version"));
  r.fingerprint = GetStr(doc, "fingerprint");
  r.output_fingerprint = GetStr(doc, "output_fingerprint");
  r.external = GetStr(doc, "external");
  if (auto it = doc.FindMember("seed"); it != doc.MemberEnd() && it->value.IsUint64()) r.seed = it->value.GetUint64();
  for (const char* key : {"params", "inputs", "overrides"}) {
    auto it = doc.FindMember(key);
    if (it == doc.MemberEnd() || !it->value.IsObject()) continue;
    auto& dst = std::string(key) == "params" ? r.params : std::string(key) == "inputs" ? r.inputs : r.overrides;
    for (const auto& m : it->value.GetObject()) {
      if (m.value.IsString()) dst[m.name.GetString()] = m.value.GetString();
    }
  }
  if (auto it = doc.FindMember("items"); it != doc.MemberEnd() && it->value.IsObject()) {
    r.items.total = GetInt(it->value, "total");
    r.items.done = GetInt(it->value, "done");
    r.items.resumed = GetInt(it->value, "resumed");
    r.items.failed = GetInt(it->value, "failed");
    r.items.transient = GetInt(it->value, "transient");
  }
  for (auto* m : {&r.counters, &r.problems}) {
    auto it = doc.FindMember(m == &r.counters ? "counters" : "problems");
    if (it == doc.MemberEnd() || !it->value.IsObject()) continue;
    for (const auto& v : it->value.GetObject()) {
      if (v.value.IsInt64()) (*m)[v.name.GetString()] = v.value.GetInt64();
    }
  }
  if (auto it = doc.FindMember("seconds"); it != doc.MemberEnd() && it->value.IsNumber()) {
    r.seconds = it->value.GetDouble();
  }
  r.finished_at = GetStr(doc, "finished_at");
  return r;
}

Status InvalidateCommit(const fs::path& stage_dir) {
  fs::path path = MetaDir(stage_dir) / "commit.json";
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) return Status::IOError("cannot remove " + path.string() + ": " + ec.message());
  return Status::OK();
}

// The manifest is tab-separated text, one file per line, so that loading
// 20,000 records on a no-op rerun is a single pass with no JSON parsing:
//   <hash> \t <size> \t <mtime_ns> \t <path>
Status WriteManifest(Disk* disk, const fs::path& stage_dir, const std::vector<FileRecord>& files) {
  std::string text = "# medpipe manifest v1\n";
  text.reserve(files.size() * 96);
  for (const auto& f : files) text += fmt::format("{}\t{}\t{}\t{}\n", f.hash, f.size, f.mtime_ns, f.path);
  return disk->WriteAtomic(MetaDir(stage_dir) / "manifest.tsv", text, /*sync=*/true);
}

Result<std::vector<FileRecord>> ReadManifest(const fs::path& stage_dir) {
  fs::path path = MetaDir(stage_dir) / "manifest.tsv";
  MEDPIPE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::string_view rest(text);
  auto next_line = [&rest]() {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    return line;
  };
  if (next_line() != "# medpipe manifest v1") return Status::Corruption(path.string() + ": not a manifest");
  std::vector<FileRecord> files;
  size_t line_no = 1;
  while (!rest.empty()) {
    std::string_view line = next_line();
    ++line_no;
    FileRecord f;
    size_t t1 = line.find('\t'), t2 = line.find('\t', t1 + 1), t3 = line.find('\t', t2 + 1);
    if (t3 == std::string_view::npos) {
      return Status::Corruption(fmt::format("{}:{}: malformed manifest line", path.string(), line_no));
    }
    f.hash.assign(line.substr(0, t1));
    std::from_chars(line.data() + t1 + 1, line.data() + t2, f.size);
    std::from_chars(line.data() + t2 + 1, line.data() + t3, f.mtime_ns);
    f.path.assign(line.substr(t3 + 1));
    files.push_back(std::move(f));
  }
  return files;
}

std::string CheckOutputs(const fs::path& stage_dir, const std::vector<FileRecord>& files) {
  // The no-op rerun's hot loop: one lstat per output, into a reused buffer.
  std::string path = stage_dir.string() + "/";
  const size_t base = path.size();
  for (const auto& f : files) {
    path.resize(base);
    path += f.path;
    FileStat st = StatPath(path);
    if (!st.exists) return "output " + f.path + " was deleted";
    if (st.size != f.size || st.mtime_ns != f.mtime_ns) return "output " + f.path + " was changed";
    // A link whose target is gone is as lost as a deleted file (an upstream
    // stage was cleaned or rerun): one more stat, for links only.
    if (st.is_symlink && !TargetExists(path.c_str())) return "output " + f.path + " is a dangling link";
  }
  return "";
}

std::string OutputFingerprint(const std::vector<FileRecord>& files) {
  Hasher h;
  for (const auto& f : files) h.Field(f.path).Field(f.hash);
  return h.HexDigest();
}

Status WriteFailure(Disk* disk, const fs::path& stage_dir, const FailureRecord& failure) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("reason"), w.String(failure.reason.c_str());
  w.Key("at"), w.String(failure.at.c_str());
  w.EndObject();
  return disk->WriteAtomic(MetaDir(stage_dir) / "failed.json", std::string(buf.GetString(), buf.GetSize()) + "\n",
                           /*sync=*/false);
}

Result<FailureRecord> ReadFailure(const fs::path& stage_dir) {
  MEDPIPE_ASSIGN_OR_RETURN(std::string text, ReadFile(MetaDir(stage_dir) / "failed.json"));
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  if (doc.HasParseError() || !doc.IsObject()) return Status::Corruption("unreadable failure record");
  return FailureRecord{GetStr(doc, "reason"), GetStr(doc, "at")};
}

}  // namespace medpipe
