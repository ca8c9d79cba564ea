// inference_results: the records of a model's inference run (summary.json)
// joined to the DICOM clips they score, as a dataset.
//
// summary.json holds one record per clip, in either of two shapes:
//   a list:    [{"file_path": "a.dcm", "folder": "VIVIDE95_01", "score": 0.97,
//                "status": "PASS", "assessment": "Excellent quality", ...}, ...]
//   an object: {"VIVIDE95_01/a.dcm": {"score": 0.97, "status": "PASS", ...}, ...}
//              (the key is the file when the record names none).
// A record's file is its `file_path`, `file` or `filename` field (or the key).
// `score` (a number or numeric text) and `status` are required; `folder`
// defaults to the file path's first folder, `file_id` to the file name's stem,
// `assessment` to "". Other scalar fields are kept as attributes; nested ones
// as compact JSON text.
//
// The clip is <raw_data>/<folder>/<file name> when the record has a folder,
// else <raw_data>/<file> (a relative path). Its machine type comes from the
// `machine_patterns` (case-insensitive regex -> type, first match wins),
// tried on the folder name and on the DICOM's ManufacturerModelName in the
// order `machine_from` says; neither matching gives `unknown_machine`. The
// patient is the DICOM's PatientID, else "study:<StudyInstanceUID>".
//
// Output: images `clips/<folder>/<file name>`, relative symlinks to the raw
// files, with attributes score, status, assessment, folder, file_id,
// machine_type, model, frames and `clip` (the clip's own key, a group a later
// split can keep derived copies with). A record without the required fields,
// or whose file is missing, unsafe, listed twice or unreadable (`check:
// decode` decodes every frame through cine/, `header` reads the header
// only), is a listed problem and the run goes on. A summary that is not JSON
// fails the stage with its line and column.
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <regex>
#include <set>

#include "cine/cine_io.h"
#include "dicom/convert.h"
#include "stages/registry.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {
namespace {

struct MachinePattern {
  std::regex regex;
  std::string machine;
};

struct ResultsOptions {
  fs::path summary, raw_data;
  std::vector<MachinePattern> patterns;
  bool model_first = false;
  std::string unknown_machine;
  bool decode = true;
};

struct Record {
  std::string key;     // the record's file as written (for problems)
  std::string folder;  // the folder under raw_data, may be empty
  std::string rel;     // the clip relative to raw_data
  std::map<std::string, AttrValue> attributes;
};

// 1-based line and column of byte `offset` in `text`.
std::pair<int, int> LineColumn(std::string_view text, size_t offset) {
  int line = 1, col = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') ++line, col = 1;
    else ++col;
  }
  return {line, col};
}

std::string JsonText(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return buf.GetString();
}

std::string BaseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// One record to a Record, or the reason it is unusable.
Result<Record> ParseRecord(const rapidjson::Value& v, const std::string& key) {
  if (!v.IsObject()) return Status::Invalid("the record is not a JSON object");
  Record r;
  std::string file;
  for (const char* name : {"file_path", "file", "filename"}) {
    if (v.HasMember(name) && v[name].IsString()) {
      file = v[name].GetString();
      break;
    }
  }
  if (file.empty()) file = key;
  r.key = file;
  if (file.empty()) return Status::Invalid("the record names no file (file_path, file or filename)");
  double score = 0;
  if (!v.HasMember("score")) return Status::Invalid("no score");
  if (v["score"].IsNumber()) {
    score = v["score"].GetDouble();
  } else if (v["score"].IsString()) {
    char* end = nullptr;
    std::string s = v["score"].GetString();
    score = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0') return Status::Invalid(fmt::format("score '{}' is not a number", s));
  } else {
    return Status::Invalid("score is not a number");
  }
  if (!v.HasMember("status") || !v["status"].IsString()) return Status::Invalid("no status");

  for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
    std::string name = it->name.GetString();
    const rapidjson::Value& x = it->value;
    if (x.IsString()) r.attributes[name] = std::string(x.GetString());
    else if (x.IsBool()) r.attributes[name] = x.GetBool();
    else if (x.IsInt64()) r.attributes[name] = x.GetInt64();
    else if (x.IsNumber()) r.attributes[name] = x.GetDouble();
    else if (!x.IsNull()) r.attributes[name] = JsonText(x);
  }
  r.attributes["score"] = score;
  auto text = [&](const char* name) {
    auto it = r.attributes.find(name);
    return it == r.attributes.end() ? std::string() : AttrToString(it->second);
  };
  r.folder = text("folder");
  const bool absolute = !file.empty() && file[0] == '/';
  if (!r.folder.empty()) {
    r.rel = r.folder + "/" + BaseName(file);
  } else if (!absolute) {
    r.rel = file;
    size_t slash = file.find('/');
    r.folder = slash == std::string::npos ? std::string() : file.substr(0, slash);
  } else {
    return Status::Invalid("an absolute file path needs a folder field to find it under raw_data");
  }
  if (!IsContainedRelativePath(r.rel)) {
    return Status::Invalid(fmt::format("'{}' leaves the raw_data folder", r.rel));
  }
  r.attributes["folder"] = r.folder;
  if (text("file_id").empty()) {
    std::string base = BaseName(r.rel);
    size_t dot = base.find_last_of('.');
    r.attributes["file_id"] = dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
  }
  if (!r.attributes.count("assessment")) r.attributes["assessment"] = std::string();
  r.attributes["clip"] = r.rel;
  return r;
}

class InferenceResultsStage : public Stage {
 public:
  explicit InferenceResultsStage(ResultsOptions o) : o_(std::move(o)) {}

  // The summary's stat; the clips are fingerprinted per item.
  Result<std::string> ExternalFingerprint() const override {
    FileStat st = StatPath(o_.summary);
    return HashBytes(fmt::format("{}\t{}\t{}\t{}", o_.summary.string(), st.exists, st.size, st.mtime_ns));
  }

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(std::string text, ReadFile(o_.summary));
    rapidjson::Document doc;
    doc.Parse(text.data(), text.size());
    if (doc.HasParseError()) {
      auto [line, col] = LineColumn(text, doc.GetErrorOffset());
      return Status::Failed(fmt::format("{}:{}:{}: not valid JSON: {}", o_.summary.string(), line, col,
                                        rapidjson::GetParseError_En(doc.GetParseError())));
    }
    std::vector<std::pair<std::string, const rapidjson::Value*>> raw;
    if (doc.IsArray()) {
      for (rapidjson::SizeType i = 0; i < doc.Size(); ++i) raw.emplace_back(fmt::format("record {}", i), &doc[i]);
    } else if (doc.IsObject()) {
      for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) raw.emplace_back(it->name.GetString(), &it->value);
    } else {
      return Status::Failed(fmt::format("{}: expected a list of records or an object keyed by file",
                                        o_.summary.string()));
    }

    std::vector<Record> records;
    std::set<std::string> seen;
    for (const auto& [key, value] : raw) {
      const std::string file_key = doc.IsArray() ? std::string() : key;
      Result<Record> r = ParseRecord(*value, file_key);
      if (!r.ok()) {
        ctx.Problem(key, r.status().message());
        ctx.Count("bad_records");
        continue;
      }
      if (!seen.insert(r->rel).second) {
        ctx.Problem(r->rel, "listed twice; the first record is kept");
        ctx.Count("duplicate_records");
        continue;
      }
      FileStat st = StatPath(o_.raw_data / r->rel);
      if (!st.exists) {
        ctx.Problem(r->rel, fmt::format("missing: {} does not exist", (o_.raw_data / r->rel).string()));
        ctx.Count("missing_files");
        continue;
      }
      records.push_back(std::move(r).value());
    }

    std::vector<ItemTask> tasks;
    for (const Record& r : records) {
      FileStat st = StatPath(o_.raw_data / r.rel);
      tasks.push_back(ItemTask{r.rel, HashBytes(fmt::format("{}\t{}\t{}\t{}", (o_.raw_data / r.rel).string(), st.size,
                                                            st.mtime_ns, o_.decode))});
    }
    MEDPIPE_ASSIGN_OR_RETURN(
        std::vector<ItemResult> results, ctx.RunItems(tasks, [&](size_t i, ItemOutput& out) -> Result<std::string> {
          const fs::path file = o_.raw_data / records[i].rel;
          std::string patient, study, model;
          int frames = 0;
          if (o_.decode) {
            MEDPIPE_ASSIGN_OR_RETURN(Cine cine, ReadCine(file));
            patient = cine.patient_id, study = cine.study_instance_uid, model = cine.manufacturer_model;
            frames = static_cast<int>(cine.frames.size());
          } else {
            MEDPIPE_ASSIGN_OR_RETURN(DicomMeta meta, ReadDicomMeta(file));
            patient = meta.patient_id, study = meta.study_uid, model = meta.model, frames = meta.frames;
          }
          const std::string rel = "clips/" + records[i].rel;
          fs::path link = ctx.dir() / rel;
          MEDPIPE_RETURN_IF_ERROR(out.Symlink(rel, file.lexically_relative(link.parent_path())));
          rapidjson::StringBuffer buf;
          rapidjson::Writer<rapidjson::StringBuffer> w(buf);
          w.StartArray();
          for (const std::string& s : {patient, study, model}) w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
          w.Int(frames);
          w.EndArray();
          return std::string(buf.GetString());
        }));

    Dataset out;
    for (size_t i = 0; i < records.size(); ++i) {
      if (!results[i].ok) {
        ctx.Count("unreadable_files");
        continue;
      }
      rapidjson::Document p;
      p.Parse(results[i].payload.c_str());
      Image img;
      img.id = static_cast<int64_t>(out.images.size()) + 1;
      img.file_name = "clips/" + records[i].rel;
      img.attributes = records[i].attributes;
      const std::string patient = p[0].GetString(), study = p[1].GetString(), model = p[2].GetString();
      img.patient_id = !patient.empty() ? patient : !study.empty() ? "study:" + study : std::string();
      img.attributes["model"] = model;
      img.attributes["frames"] = int64_t{p[3].GetInt()};
      std::string machine = Machine(records[i].folder, model);
      img.attributes["machine_type"] = machine;
      ctx.Count("machine." + machine);
      out.images.push_back(std::move(img));
    }
    ctx.Count("records", static_cast<int64_t>(raw.size()));
    ctx.Count("clips", static_cast<int64_t>(out.images.size()));
    return ctx.WriteDataset(out);
  }

 private:
  std::string Match(const std::string& text) const {
    if (text.empty()) return std::string();
    for (const MachinePattern& p : o_.patterns) {
      if (std::regex_search(text, p.regex)) return p.machine;
    }
    return std::string();
  }
  std::string Machine(const std::string& folder, const std::string& model) const {
    std::string first = Match(o_.model_first ? model : folder);
    if (!first.empty()) return first;
    std::string second = Match(o_.model_first ? folder : model);
    return second.empty() ? o_.unknown_machine : second;
  }

  ResultsOptions o_;
};

Result<std::unique_ptr<Stage>> MakeInferenceResults(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  ResultsOptions o;
  o.summary = p.GetString("summary");
  o.raw_data = p.GetString("raw_data");
  for (const auto& [pattern, machine] : p.GetStringMap("machine_patterns")) {
    try {
      o.patterns.push_back(MachinePattern{std::regex(pattern, std::regex::ECMAScript | std::regex::icase), machine});
    } catch (const std::regex_error& e) {
      return p.Error("machine_patterns", fmt::format("'{}' is not a valid regular expression: {}", pattern, e.what()));
    }
    if (machine.empty()) return p.Error("machine_patterns", fmt::format("'{}' maps to an empty machine type", pattern));
  }
  o.model_first = p.GetString("machine_from") == "model";
  o.unknown_machine = p.GetString("unknown_machine");
  if (o.unknown_machine.empty()) return p.Error("unknown_machine", "must not be empty");
  o.decode = p.GetString("check") == "decode";
  return std::unique_ptr<Stage>(new InferenceResultsStage(std::move(o)));
}

}  // namespace

void RegisterInferenceResults(Registry* registry) {
  KindSpec spec;
  spec.name = "inference_results";
  spec.version = 1;
  spec.help =
      "a model's inference records (summary.json: a list of records or an object keyed by file) joined to the "
      "DICOM clips under raw_data/<folder>/<file>, with a machine type per clip";
  spec.min_inputs = 0;
  spec.max_inputs = 0;
  spec.params = {
      {"summary", ParamType::kPath, "", true, "the inference run's summary.json", {}},
      {"raw_data", ParamType::kPath, "", true, "folder of the raw clips: <raw_data>/<folder>/<file>", {}},
      {"machine_patterns", ParamType::kStringMap,
       "{'affiniti[ _-]?50': affiniti50g, 'affiniti[ _-]?70': affiniti70g, 'epiq[ _-]?7': epiq7, "
       "'vivid[ _-]?(e95|s60|s70)': vivid}",
       false, "case-insensitive regex on the folder name or model -> machine type; the first match wins", {}},
      {"machine_from", ParamType::kString, "folder", false,
       "what the patterns are tried on first: folder (then ManufacturerModelName) or model (then the folder)",
       {"folder", "model"}},
      {"unknown_machine", ParamType::kString, "unknown", false, "machine type when no pattern matches", {}},
      {"check", ParamType::kString, "decode", false,
       "how a clip is checked readable: decode (every frame, with DCMTK) or header", {"decode", "header"}},
  };
  registry->Add(StageKind{std::move(spec), MakeInferenceResults});
}

}  // namespace medpipe
