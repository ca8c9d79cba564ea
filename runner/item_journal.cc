#include "runner/item_journal.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace medpipe {

fs::path ItemJournal::PathFor(const fs::path& stage_dir) { return MetaDir(stage_dir) / "items.jsonl"; }

std::string EncodeItemRecord(const ItemRecord& r) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("k"), w.String(r.key.c_str(), static_cast<rapidjson::SizeType>(r.key.size()));
  w.Key("fp"), w.String(r.fingerprint.c_str());
  if (r.ok) {
    w.Key("p"), w.String(r.payload.c_str(), static_cast<rapidjson::SizeType>(r.payload.size()));
  } else {
    w.Key("err"), w.String(r.error.c_str(), static_cast<rapidjson::SizeType>(r.error.size()));
    if (r.transient) w.Key("t"), w.Bool(true);
  }
  w.Key("f");
  w.StartArray();
  for (const auto& f : r.files) {
    w.StartArray();
    w.String(f.path.c_str(), static_cast<rapidjson::SizeType>(f.path.size()));
    w.Uint64(f.size);
    w.Int64(f.mtime_ns);
    w.String(f.hash.c_str());
    w.EndArray();
  }
  w.EndArray();
  w.EndObject();
  std::string line(buf.GetString(), buf.GetSize());
  line.push_back('\n');
  return line;
}

bool DecodeItemRecord(std::string_view line, ItemRecord* r) {
  rapidjson::Document doc;
  doc.Parse(line.data(), line.size());
  if (doc.HasParseError() || !doc.IsObject()) return false;
  auto str = [&](const char* key, std::string* out) {
    auto it = doc.FindMember(key);
    if (it == doc.MemberEnd() || !it->value.IsString()) return false;
    out->assign(it->value.GetString(), it->value.GetStringLength());
    return true;
  };
  if (!str("k", &r->key) || !str("fp", &r->fingerprint)) return false;
  r->ok = !str("err", &r->error);
  if (auto t = doc.FindMember("t"); t != doc.MemberEnd() && t->value.IsBool()) r->transient = t->value.GetBool();
  if (r->ok && !str("p", &r->payload)) return false;
  auto files = doc.FindMember("f");
  if (files == doc.MemberEnd() || !files->value.IsArray()) return false;
  for (const auto& f : files->value.GetArray()) {
    if (!f.IsArray() || f.Size() != 4 || !f[0].IsString() || !f[1].IsUint64() || !f[2].IsInt64() || !f[3].IsString()) {
      return false;
    }
    r->files.push_back(FileRecord{f[0].GetString(), f[1].GetUint64(), f[2].GetInt64(), f[3].GetString()});
  }
  return true;
}

Result<std::unique_ptr<ItemJournal>> ItemJournal::Open(Disk* disk, const fs::path& stage_dir, bool repair) {
  return OpenFile(disk, PathFor(stage_dir), repair);
}

Result<std::unique_ptr<ItemJournal>> ItemJournal::OpenFile(Disk* disk, const fs::path& file, bool repair) {
  std::unique_ptr<ItemJournal> j(new ItemJournal(disk, file));
  Result<std::string> text = ReadFile(j->path_);
  if (!text.ok()) {
    if (text.status().code() == Status::Code::kNotFound) return j;
    return text.status();
  }
  std::string_view rest(*text);
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) {
      // A torn tail from a kill: drop it, so the next append starts a line.
      if (!repair) break;
      MEDPIPE_RETURN_IF_ERROR(disk->WriteAtomic(j->path_, std::string_view(*text).substr(0, text->size() - rest.size()),
                                                /*sync=*/false));
      break;
    }
    ItemRecord r;
    if (DecodeItemRecord(rest.substr(0, nl), &r)) {
      std::string key = r.key;
      j->loaded_[key] = std::move(r);
    }
    rest.remove_prefix(nl + 1);
  }
  return j;
}

const ItemRecord* ItemJournal::Find(const std::string& key) const {
  auto it = loaded_.find(key);
  return it == loaded_.end() ? nullptr : &it->second;
}

Status ItemJournal::Append(const ItemRecord& record) {
  std::string line = EncodeItemRecord(record);
  std::lock_guard<std::mutex> lock(mu_);
  if (!file_) {
    MEDPIPE_ASSIGN_OR_RETURN(file_, disk_->OpenAppend(path_));
  }
  return file_->Append(line);
}

Status ItemJournal::AppendAll(const std::vector<const ItemRecord*>& records) {
  // A few MB per write: one write(2) each, so a kill tears at most the last
  // line, which Open drops.
  constexpr size_t kChunk = 4 << 20;
  std::string text;
  std::lock_guard<std::mutex> lock(mu_);
  if (!file_) {
    MEDPIPE_ASSIGN_OR_RETURN(file_, disk_->OpenAppend(path_));
  }
  for (size_t i = 0; i < records.size(); ++i) {
    text += EncodeItemRecord(*records[i]);
    if (text.size() >= kChunk || i + 1 == records.size()) {
      MEDPIPE_RETURN_IF_ERROR(file_->Append(text));
      text.clear();
    }
  }
  return Status::OK();
}

Status ItemJournal::Sync() {
  std::lock_guard<std::mutex> lock(mu_);
  return file_ ? file_->Sync() : Status::OK();
}

Status ItemJournal::Compact(const std::vector<ItemRecord>& records) {
  std::string text;
  for (const auto& r : records) text += EncodeItemRecord(r);
  std::lock_guard<std::mutex> lock(mu_);
  file_.reset();
  return disk_->WriteAtomic(path_, text, /*sync=*/true);
}

}  // namespace medpipe
