// convert: a folder of DICOM files into PNG/JPEG images and a dataset.
//
// Every file under `dicoms` (recursive, with or without a .dcm extension) is
// one item of RunItems, so a killed convert redoes only the files in flight.
// A file that does not look like DICOM and has no DICOM extension is counted
// and skipped; one that does but cannot be read or rendered is a per-item
// problem with the reason. Attribute filters (slice thickness, modality) read
// the header only and count each skip by reason. Each frame becomes
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
#include "stages/registry.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {
namespace {

struct ConvertStageOptions {
  fs::path dicoms;
  bool recursive = true;
  ConvertOptions convert;
  std::string salt;
  std::vector<double> thickness;
  std::vector<std::string> modalities;  // upper case
  std::string options_hash;             // every param: part of each item's fingerprint
};

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}
std::string Upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

bool HasDicomExtension(const fs::path& p) {
  std::string ext = Lower(p.extension().string());
  return ext == ".dcm" || ext == ".dicom" || ext == ".dic" || ext == ".ima";
}

struct SourceFile {
  std::string rel;
  fs::path abs;
  FileStat stat;
  std::string stem;       // output name without extension: rel minus a DICOM extension
  std::string collision;  // another file with the same stem, listed first
};

// Lists the files under the folder, sorted by relative path so ids and output
// bytes never depend on directory order. Hidden files and folders are left out.
// Only an extension that marks DICOM is stripped from the output name, so
// UID-named files ("1.2.840.113619.2.55.3.4") keep their whole name.
Result<std::vector<SourceFile>> ListFiles(const ConvertStageOptions& o) {
  std::vector<SourceFile> out;
  std::error_code ec;
  if (!fs::is_directory(o.dicoms, ec)) return Status::NotFound(o.dicoms.string() + ": not a folder");
  auto consider = [&](const fs::directory_entry& e) {
    if (!e.is_regular_file(ec)) return;
    std::string rel = e.path().lexically_relative(o.dicoms).generic_string();
    if (!IsContainedRelativePath(rel)) return;
    for (const auto& part : fs::path(rel)) {
      if (part.string()[0] == '.') return;
    }
    fs::path stem = rel;
    if (HasDicomExtension(stem)) stem.replace_extension();
    out.push_back(SourceFile{rel, e.path(), StatPath(e.path()), stem.generic_string(), ""});
  };
  if (o.recursive) {
    for (auto it = fs::recursive_directory_iterator(o.dicoms, fs::directory_options::follow_directory_symlink, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      consider(*it);
    }
  } else {
    for (auto it = fs::directory_iterator(o.dicoms, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      consider(*it);
    }
  }
  if (ec) return Status::IOError("cannot list " + o.dicoms.string() + ": " + ec.message());
  std::sort(out.begin(), out.end(), [](const SourceFile& a, const SourceFile& b) { return a.rel < b.rel; });
  std::map<std::string, std::string> first;
  for (auto& f : out) {
    auto [it, inserted] = first.emplace(f.stem, f.rel);
    if (!inserted) f.collision = it->second;
  }
  return out;
}

std::string FileStamp(const FileStat& st) { return fmt::format("{}:{}", st.size, st.mtime_ns); }

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void Skipped(JsonWriter& w, const std::string& reason) {
  w.StartObject();
  w.Key("skipped");
  w.String(reason);
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
  w.Key("patient_id");
  w.String(patient_id);
  const std::pair<const char*, const std::string*> strings[] = {
      {"study_uid", &m.study_uid}, {"series_uid", &m.series_uid},     {"sop_uid", &m.sop_uid},
      {"modality", &m.modality},   {"manufacturer", &m.manufacturer}, {"model", &m.model}};
  for (const auto& [key, value] : strings) {
    w.Key(key);
    w.String(*value);
  }
  if (std::isfinite(m.slice_thickness)) {
    w.Key("slice_thickness");
    w.Double(m.slice_thickness);
  }
  if (std::isfinite(m.pixel_spacing_row) && std::isfinite(m.pixel_spacing_col)) {
    w.Key("pixel_spacing");
    w.String(fmt::format("{}/{}", m.pixel_spacing_row, m.pixel_spacing_col));
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

  Result<std::string> ExternalFingerprint() const override {
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<SourceFile> files, ListFiles(o_));
    Hasher h;
    for (const auto& f : files) h.Field(f.rel).Field(FileStamp(f.stat));
    return h.HexDigest();
  }

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<SourceFile> files, ListFiles(o_));
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
        ctx.Count(doc["skipped"].GetString());
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
    if (!o_.thickness.empty() || !o_.modalities.empty()) {
      MEDPIPE_ASSIGN_OR_RETURN(DicomMeta m, ReadDicomMeta(f.abs));
      if (!o_.modalities.empty() &&
          std::find(o_.modalities.begin(), o_.modalities.end(), Upper(m.modality)) == o_.modalities.end()) {
        Skipped(w, "filtered.modality");
        return std::string(buf.GetString());
      }
      if (!o_.thickness.empty() &&
          std::none_of(o_.thickness.begin(), o_.thickness.end(),
                       [&](double t) { return std::fabs(t - m.slice_thickness) <= 0.01; })) {
        Skipped(w, "filtered.slice_thickness");  // a missing thickness (NaN) matches nothing
        return std::string(buf.GetString());
      }
    }
    DicomMeta meta;
    Result<std::vector<EncodedFrame>> converted = ConvertDicomFile(f.abs, o_.convert, &meta);
    if (!converted.ok() && converted.status().code() == Status::Code::kInvalid && meta.frames > 0 &&
        !meta.has_pixel_data) {
      Skipped(w, "skipped.no_pixel_data");  // a report, an RT plan, a DICOMDIR: nothing to convert
      return std::string(buf.GetString());
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<EncodedFrame> frames, std::move(converted));
    const std::string ext = o_.convert.format == "jpeg" ? ".jpg" : ".png";
    std::vector<std::string> names;
    for (const auto& fr : frames) {
      std::string name = "images/" + f.stem + (meta.frames > 1 ? fmt::format("_f{}", fr.frame) : "") + ext;
      MEDPIPE_RETURN_IF_ERROR(out.WriteFile(name, fr.bytes));
      names.push_back(std::move(name));
    }
    return PayloadOf(meta, Pseudonymize(meta.patient_id, o_.salt), frames, names);
  }

  ConvertStageOptions o_;
};

Result<int> ParsePngFilter(const std::string& text) {
  static const std::map<std::string, int> kMasks = {{"none", PNG_FILTER_NONE}, {"sub", PNG_FILTER_SUB},
                                                     {"up", PNG_FILTER_UP},     {"avg", PNG_FILTER_AVG},
                                                     {"paeth", PNG_FILTER_PAETH}, {"all", PNG_ALL_FILTERS}};
  int mask = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = std::min(text.find(',', start), text.size());
    std::string name = text.substr(start, comma - start);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    auto it = kMasks.find(Lower(name));
    if (it == kMasks.end()) return Status::Invalid("'" + name + "' is not none, sub, up, avg, paeth or all");
    mask |= it->second;
    start = comma + 1;
  }
  if (mask == 0) return Status::Invalid("name at least one filter");
  return mask;
}

Result<std::unique_ptr<Stage>> MakeConvert(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  ConvertStageOptions o;
  o.dicoms = p.GetString("dicoms");
  o.recursive = p.GetBool("recursive");
  ConvertOptions& c = o.convert;
  c.window = p.GetString("window");
  c.rgb_windows = p.GetStringList("rgb_windows");
  c.voi_function = p.GetString("voi_function");
  c.bit_depth = static_cast<int>(p.GetInt("bit_depth"));
  c.format = p.GetString("format");
  c.png_level = static_cast<int>(p.GetInt("png_level"));
  Result<int> filter = ParsePngFilter(p.GetString("png_filter"));
  if (!filter.ok()) return p.Error("png_filter", filter.status().message());
  c.png_filter = *filter;
  c.jpeg_quality = static_cast<int>(p.GetInt("jpeg_quality"));
  c.resize_width = static_cast<int>(p.GetInt("resize_width"));
  c.resize_height = static_cast<int>(p.GetInt("resize_height"));
  for (const auto& f : p.GetStringList("frames")) {
    char* end = nullptr;
    long v = std::strtol(f.c_str(), &end, 10);
    if (f.empty() || *end != 0 || v < 0) return p.Error("frames", "'" + f + "' is not a 0-based frame index");
    c.frames.push_back(static_cast<int>(v));
  }
  if (Status s = ValidateConvertOptions(c); !s.ok()) {
    // Name the param the message is about.
    for (const char* name : {"rgb_windows", "window", "voi_function", "bit_depth", "format", "png_level",
                             "jpeg_quality", "resize", "frame"}) {
      if (s.message().find(name) != std::string::npos) {
        return p.Error(std::string(name) == "resize" ? "resize_width" : std::string(name) == "frame" ? "frames" : name,
                       s.message());
      }
    }
    return p.Error("window", s.message());
  }
  o.salt = p.GetString("pseudonymize_salt");
  for (const auto& t : p.GetStringList("filter_slice_thickness")) {
    char* end = nullptr;
    double v = std::strtod(t.c_str(), &end);
    if (t.empty() || *end != 0 || !std::isfinite(v) || v <= 0) {
      return p.Error("filter_slice_thickness", "'" + t + "' is not a thickness in mm, e.g. \"5.0\"");
    }
    o.thickness.push_back(v);
  }
  for (const auto& m : p.GetStringList("filter_modality")) o.modalities.push_back(Upper(m));
  Hasher h;
  for (const auto& [name, json] : p.Canonical()) h.Field(name).Field(json);
  o.options_hash = h.HexDigest();
  return std::unique_ptr<Stage>(new ConvertStage(std::move(o)));
}

}  // namespace

void RegisterConvert(Registry* registry) {
  KindSpec spec;
  spec.name = "convert";
  spec.version = 1;
  spec.help = "DICOM files to PNG/JPEG images (DCMTK: every transfer syntax but JPEG 2000, windowing, "
              "multi-frame) and a dataset with the identifying metadata";
  spec.min_inputs = 0;
  spec.max_inputs = 0;
  spec.params = {
      {"dicoms", ParamType::kPath, "", true, "folder of DICOM files (with or without .dcm)", {}},
      {"recursive", ParamType::kBool, "true", false, "include files in subfolders", {}},
      {"window", ParamType::kString, "file", false,
       "preset (brain, subdural, bone, stroke, lung, soft_tissue, ...), 'C/W', file, minmax or none", {}},
      {"rgb_windows", ParamType::kStringList, "", false, "3 windows: monochrome images become RGB, one per channel", {}},
      {"voi_function", ParamType::kString, "linear", false, "DICOM VOI LUT function",
       {"linear", "linear_exact", "sigmoid"}},
      {"bit_depth", ParamType::kInt, "8", false, "8 or 16 bits per sample (16: png only)", {}},
      {"format", ParamType::kString, "png", false, "output format", {"png", "jpeg"}},
      {"png_level", ParamType::kInt, "1", false, "zlib level 0..9 (Pillow's default is 6)", {}},
      {"png_filter", ParamType::kString, "none", false,
       "libpng filters, comma-separated: none, sub, up, avg, paeth, all (Pillow: 'none,sub,up,paeth')", {}},
      {"jpeg_quality", ParamType::kInt, "95", false, "1..100", {}},
      {"resize_width", ParamType::kInt, "0", false, "output width (0: keep, or keep the aspect ratio)", {}},
      {"resize_height", ParamType::kInt, "0", false, "output height (0: keep, or keep the aspect ratio)", {}},
      {"frames", ParamType::kStringList, "", false, "0-based frame indices to convert; empty: all", {}},
      {"pseudonymize_salt", ParamType::kString, "", false,
       "replace patient ids by a salted SHA-256 pseudonym in every output", {}},
      {"filter_slice_thickness", ParamType::kStringList, "", false,
       "keep only these slice thicknesses in mm (±0.01), e.g. [\"5.0\", \"5.5\"]; empty: all", {}},
      {"filter_modality", ParamType::kStringList, "", false, "keep only these modalities, e.g. [CT]; empty: all", {}},
  };
  registry->Add(StageKind{std::move(spec), MakeConvert});
}

}  // namespace medpipe
