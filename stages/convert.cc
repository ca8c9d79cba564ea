// convert: a folder of DICOM files into PNG/JPEG images and a dataset.
//
// Every file under `dicoms` (recursive, with or without a .dcm extension) is
// one item of RunItems, so a killed convert redoes only the files in flight.
// A file plainly not DICOM (dicom/sniff.h: no DICOM extension, no DICM
// magic, no plausible first tag) is left out of the items and counted
// (skipped.not_dicom, one log line), not a problem; one that may be DICOM
// but cannot be read or rendered is a per-item problem with the reason. Attribute filters (slice thickness, modality) read
// the header only and count each skip by reason. Every other skipped file is
// also a problem naming it and why, so a run that converts little says which files
// it left out. Each frame becomes
// images/<relative path without .dcm>[_f<frame>].png; the dataset lists it
// with the identifying metadata (pseudonymised patient id when a salt is
// given) and nothing else of the DICOM header.
#include <fmt/format.h>
#include <png.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "dicom/convert.h"
#include "dicom/sniff.h"
#include "stages/convert_params.h"
#include "stages/registry.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {
namespace {

struct ConvertStageOptions {
  fs::path dicoms;
  bool recursive = true;
  ConvertParams params;      // the conversion vocabulary shared with download
  std::string options_hash;  // of the conversion params: part of each item's fingerprint
};


struct SourceFile {
  std::string rel;
  fs::path abs;
  FileStat stat;
  std::string stem;       // output name without extension: rel minus a DICOM extension
  std::string collision;  // another file with the same stem, listed first
};

// The files under the folder, sorted by relative path so ids and output bytes
// never depend on directory order; hidden files and folders are left out,
// and so are files plainly not DICOM (dicom/sniff.h: a LICENSE, a README),
// which are counted in `*not_dicom` (their first names in `*examples`)
// rather than made items. Only an extension that marks DICOM is stripped
// from the output name, so UID-named files ("1.2.840.113619.2.55.3.4") keep
// their whole name.
Result<std::vector<SourceFile>> ListDicomFiles(const ConvertStageOptions& o, int64_t* not_dicom = nullptr,
                                               std::string* examples = nullptr) {
  MEDPIPE_ASSIGN_OR_RETURN(std::vector<ListedFile> listed, ListFiles(o.dicoms, o.recursive));
  std::vector<SourceFile> out;
  out.reserve(listed.size());
  std::map<std::string, std::string> first;
  int64_t skipped = 0;
  for (auto& f : listed) {
    if (!MaybeDicom(o.dicoms / f.rel)) {
      if (++skipped <= 3 && examples) *examples += (skipped > 1 ? ", " : "") + f.rel;
      continue;
    }
    fs::path stem = f.rel;
    if (HasDicomExtension(stem)) stem.replace_extension();
    SourceFile sf{f.rel, o.dicoms / f.rel, f.stat, stem.generic_string(), ""};
    auto [it, inserted] = first.emplace(sf.stem, sf.rel);
    if (!inserted) sf.collision = it->second;
    out.push_back(std::move(sf));
  }
  if (not_dicom) *not_dicom = skipped;
  return out;
}

std::string FileStamp(const FileStat& st) { return fmt::format("{}:{}", st.size, st.mtime_ns); }

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// A skipped file's payload: the counter and, when known, why in words.
void Skipped(JsonWriter& w, const std::string& reason, const std::string& detail = "") {
  w.StartObject();
  w.Key("skipped");
  w.String(reason);
  if (!detail.empty()) w.Key("why"), w.String(detail);
  w.EndObject();
}

// The item payload: the kept metadata (patient id already pseudonymised) and
// one entry per written frame. Parsed back by the stage after RunItems, also
// for items taken from the journal.
std::string PayloadOf(const DicomMeta& m, const std::string& patient_id, const std::vector<EncodedFrame>& frames,
                      const std::vector<std::string>& files) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  WriteDicomMeta(w, m, patient_id);
  if (std::isfinite(m.pixel_spacing_row) && std::isfinite(m.pixel_spacing_col)) {
    // The spacing of the written pixels: a resize from 512 to 256 doubles
    // it. Every frame of a file has the same output size.
    double row = m.pixel_spacing_row, col = m.pixel_spacing_col;
    if (!frames.empty() && m.rows > 0 && m.cols > 0 && frames[0].height > 0 && frames[0].width > 0) {
      row *= static_cast<double>(m.rows) / frames[0].height;
      col *= static_cast<double>(m.cols) / frames[0].width;
    }
    w.Key("pixel_spacing");
    w.String(fmt::format("{}/{}", row, col));
  }
  w.Key("frames");
  w.StartArray();
  for (size_t k = 0; k < frames.size(); ++k) {
    w.StartObject();
    w.Key("file");
    w.String(files[k]);
    w.Key("frame");
    w.Int(frames[k].frame);
    w.Key("width");
    w.Int(frames[k].width);
    w.Key("height");
    w.Int(frames[k].height);
    w.Key("window");
    w.String(frames[k].window);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return buf.GetString();
}

class ConvertStage : public Stage {
 public:
  explicit ConvertStage(ConvertStageOptions o) : o_(std::move(o)) {}

  // Every file's name and stamp, sniffed or not: a rerun's check stats the
  // folder and opens nothing.
  Result<std::string> ExternalFingerprint() const override {
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ListedFile> files, ListFiles(o_.dicoms, o_.recursive));
    Hasher h;
    for (const auto& f : files) h.Field(f.rel).Field(FileStamp(f.stat));
    return h.HexDigest();
  }

  Status Run(StageContext& ctx) const override {
    int64_t not_dicom = 0;
    std::string not_dicom_examples;
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<SourceFile> files, ListDicomFiles(o_, &not_dicom, &not_dicom_examples));
    if (not_dicom > 0) {
      ctx.Count("skipped.not_dicom", not_dicom);
      ctx.Log(fmt::format("not DICOM: {} files under {} left out (e.g. {})", not_dicom, o_.dicoms.string(),
                          not_dicom_examples));
    }
    std::vector<ItemTask> tasks;
    tasks.reserve(files.size());
    for (const auto& f : files) {
      tasks.push_back(ItemTask{f.rel, Hasher().Field(FileStamp(f.stat)).Field(o_.options_hash).HexDigest()});
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ItemResult> results,
                             ctx.RunItems(tasks, [&](size_t i, ItemOutput& out) { return ConvertOne(files[i], out); }));

    Dataset ds;
    int64_t converted = 0;
    for (size_t i = 0; i < files.size(); ++i) {
      if (!results[i].ok) continue;  // a problem in report.json, counted by RunItems
      rapidjson::Document doc;
      doc.Parse(results[i].payload.c_str(), results[i].payload.size());
      if (doc.HasParseError() || !doc.IsObject()) {
        return Status::Corruption(fmt::format("item {}: unreadable payload in the journal", files[i].rel));
      }
      if (doc.HasMember("skipped")) {
        const std::string counter = doc["skipped"].GetString();
        ctx.Count(counter);
        ctx.Problem(files[i].rel, SkipMessage(counter, doc.HasMember("why") ? doc["why"].GetString() : ""));
        continue;
      }
      ++converted;
      for (const auto& fr : doc["frames"].GetArray()) {
        Image img;
        img.id = static_cast<int64_t>(ds.images.size()) + 1;
        img.file_name = fr["file"].GetString();
        img.width = fr["width"].GetInt();
        img.height = fr["height"].GetInt();
        img.patient_id = doc["patient_id"].GetString();
        img.source = ctx.id();
        for (const char* key : {"study_uid", "series_uid", "sop_uid", "modality", "manufacturer", "model"}) {
          std::string v = doc[key].GetString();
          if (!v.empty()) img.attributes[key] = v;
        }
        if (doc.HasMember("slice_thickness")) img.attributes["slice_thickness"] = doc["slice_thickness"].GetDouble();
        if (doc.HasMember("pixel_spacing")) img.attributes["pixel_spacing"] = std::string(doc["pixel_spacing"].GetString());
        img.attributes["window"] = std::string(fr["window"].GetString());
        img.attributes["frame"] = static_cast<int64_t>(fr["frame"].GetInt());
        ds.images.push_back(std::move(img));
      }
    }
    ctx.Count("files", static_cast<int64_t>(files.size()));
    ctx.Count("converted", converted);
    ctx.Count("images", static_cast<int64_t>(ds.images.size()));
    return ctx.WriteDataset(ds);
  }

 private:
  Result<std::string> ConvertOne(const SourceFile& f, ItemOutput& out) const {
    if (!f.collision.empty()) {
      return Status::Invalid(fmt::format("its output name '{}' is also that of '{}'; rename one", f.stem, f.collision));
    }
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    // A file named .dcm is taken as DICOM (the library rejects it with a
    // reason if it is not); any other is looked at first.
    if (!HasDicomExtension(f.abs)) {
      std::string head(132, '\0');
      std::ifstream in(f.abs, std::ios::binary);
      if (!in) return Status::Invalid(f.abs.string() + ": cannot open");
      in.read(head.data(), static_cast<std::streamsize>(head.size()));
      head.resize(static_cast<size_t>(in.gcount()));
      if (!LooksLikeDicom(head)) {
        Skipped(w, "skipped.not_dicom");
        return std::string(buf.GetString());
      }
    }
    if (HasAttributeFilters(o_.params)) {
      MEDPIPE_ASSIGN_OR_RETURN(DicomMeta m, ReadDicomMeta(f.abs));
      if (std::string reason = FilterReason(o_.params, m); !reason.empty()) {
        Skipped(w, reason, FilterDetail(o_.params, m, reason));
        return std::string(buf.GetString());
      }
    }
    DicomMeta meta;
    Result<std::vector<EncodedFrame>> converted = ConvertDicomFile(f.abs, o_.params.convert, &meta);
    if (!converted.ok() && converted.status().code() == Status::Code::kInvalid && meta.frames > 0 &&
        !meta.has_pixel_data) {
      Skipped(w, "skipped.no_pixel_data");  // a report, an RT plan, a DICOMDIR: nothing to convert
      return std::string(buf.GetString());
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<EncodedFrame> frames, std::move(converted));
    const std::string ext = o_.params.convert.format == "jpeg" ? ".jpg" : ".png";
    std::vector<std::string> names;
    for (const auto& fr : frames) {
      std::string name = "images/" + f.stem + (meta.frames > 1 ? fmt::format("_f{}", fr.frame) : "") + ext;
      MEDPIPE_RETURN_IF_ERROR(out.WriteFile(name, fr.bytes));
      names.push_back(std::move(name));
    }
    return PayloadOf(meta, Pseudonymize(meta.patient_id, o_.params.salt), frames, names);
  }

  ConvertStageOptions o_;
};

Result<std::unique_ptr<Stage>> MakeConvert(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  ConvertStageOptions o;
  o.dicoms = p.GetString("dicoms");
  o.recursive = p.GetBool("recursive");
  MEDPIPE_ASSIGN_OR_RETURN(o.params, ParseConvertParams(p));
  o.options_hash = ConvertParamsHash(p);
  return std::unique_ptr<Stage>(new ConvertStage(std::move(o)));
}

}  // namespace

void RegisterConvert(Registry* registry) {
  KindSpec spec;
  spec.name = "convert";
  spec.cluster_items = true;  // a cluster run sends its items to array tasks
  spec.version = 1;
  spec.help = "DICOM files to PNG/JPEG images (DCMTK: every transfer syntax but JPEG 2000, windowing, "
              "multi-frame) and a dataset with the identifying metadata";
  spec.min_inputs = 0;
  spec.max_inputs = 0;
  spec.params = {
      {"dicoms", ParamType::kPath, "", true, "folder of DICOM files (with or without .dcm)", {}},
      {"recursive", ParamType::kBool, "true", false, "include files in subfolders", {}},
  };
  for (auto& param : ConvertParamSpecs("")) spec.params.push_back(std::move(param));
  registry->Add(StageKind{std::move(spec), MakeConvert});
}

}  // namespace medpipe
