// ctprep: CT volumes (NIfTI files and DICOM series) to training tensors.
//
// Every volume is one item of RunItems, so a killed run redoes only the
// volumes in flight and memory is bounded by them (each worker holds one
// volume and its tensor). The work per volume is volume/prep.h's; this file
// finds the volumes, joins the CT-RATE metadata and labels CSVs, writes the
// outputs and the dataset.
//
// Names. A volume's name is its file name without .nii/.nii.gz. A DICOM
// series is named by its folder's path relative to `dicoms` ('/' as '_');
// a folder holding several series (SeriesInstanceUID) makes one volume of
// each, named <folder>_s<SeriesNumber> when every series there has its own
// SeriesNumber, else <folder>_<SeriesInstanceUID> (series in the root
// folder: the UID), never one volume standing for the folder. CSV keys are
// compared the same way, so CT-RATE's "train_1_a_1.nii.gz" matches
// train_1_a_1.nii.gz. A labels row names a volume by its name, or (DICOM)
// by its SeriesInstanceUID, or by its folder: a folder's row labels every
// series of that folder. The patient is group 1 of `patient_pattern` on the
// name (train_1_a_1 -> train_1: patient 1, scan a, reconstruction 1); when it
// does not match, the volume (a series of a multi-series folder: the folder).
//
// Orientation. Every volume is reoriented to `orientation` (RAS by default,
// nibabel's as_closest_canonical; or LPS) from its NIfTI affine (sform,
// else qform, else Analyze's x-reversed pixdim) or its DICOM
// ImageOrientationPatient and positions, so NIfTI and DICOM sources give
// the same tensor for the same scan. A tilted series is shifted onto an
// untilted grid (gantry_tilt: resample) or refused; unequal steps are
// interpolated onto equal ones (uneven_slices: resample) or refused; a
// missing slice is always an error. The dataset records per volume the
// orientation, the stored axes, the series UID and any correction.
//
// Files under `dicoms` that are plainly not DICOM (dicom/sniff.h: LICENSE,
// README) are left out and counted (not_dicom_files), not problems.
//
// Scaling and spacing come from the metadata CSV when one is named (a volume
// without a row is then a per-item error: its stored values would be read
// as HU), else from the NIfTI header (scl_slope/scl_inter, pixdim); DICOM
// series carry their own.
//
// Outputs per volume: volumes/<name>.npy (C x D x H x W), optionally
// volumes/<name>.nii.gz (the clipped, resampled HU volume with its new
// spacing) and previews/<name>.png; in slices mode slices/<name>_z<k>.png
// instead of the .npy. The dataset lists one image per .npy (or per slice)
// with the patient, the positive labels and the geometry; the categories
// are the label columns, so a label nobody has is still known downstream.
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include "dicom/sniff.h"
#include "stages/ctprep_params.h"
#include "stages/label_table.h"
#include "stages/registry.h"
#include "util/csv.h"
#include "util/hash.h"
#include "util/strings.h"
#include "volume/dicom_series.h"
#include "volume/nifti_io.h"

namespace medpipe {
namespace {

struct Source {
  std::string name;  // the volume name
  std::string key;   // the item key
  fs::path nifti;    // or
  DicomSeries series;
  std::string stamp;   // size:mtime of every file
  std::string folder;  // DICOM: the folder's name, a labels key for each of its series
};

std::string StampOf(const FileStat& st) { return fmt::format("{}:{}", st.size, st.mtime_ns); }

struct Metadata {
  double slope = 1, intercept = 0, xy = 0, z = 0;
  std::string text;  // the row, for the fingerprint
};

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void WriteTriple(JsonWriter& w, const char* key, const std::array<double, 3>& v) {
  w.Key(key);
  w.StartArray();
  for (double x : v) w.Double(x);
  w.EndArray();
}

std::string Triple(const rapidjson::Value& a) {
  return fmt::format("{:.6g},{:.6g},{:.6g}", a[0].GetDouble(), a[1].GetDouble(), a[2].GetDouble());
}

class CtPrepStage : public Stage {
 public:
  explicit CtPrepStage(CtPrepOptions o) : o_(std::move(o)) {}

  Result<std::string> ExternalFingerprint() const override {
    Hasher h;
    for (const fs::path& root : {o_.volumes, o_.dicoms}) {
      if (root.empty()) continue;
      MEDPIPE_ASSIGN_OR_RETURN(std::vector<ListedFile> files, ListFiles(root, true));
      for (const auto& f : files) h.Field(f.rel).Field(StampOf(f.stat));
    }
    for (const fs::path& csv : {o_.metadata_csv, o_.labels_csv}) {
      if (!csv.empty()) h.Field(csv.string()).Field(StampOf(StatPath(csv)));
    }
    return h.HexDigest();
  }

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<Source> sources, FindSources(ctx));
    std::map<std::string, Metadata> meta;
    if (!o_.metadata_csv.empty()) {
      MEDPIPE_ASSIGN_OR_RETURN(meta, ReadMetadata(ctx));
    }

    std::vector<ItemTask> tasks;
    std::vector<const Metadata*> meta_of(sources.size(), nullptr);
    for (size_t i = 0; i < sources.size(); ++i) {
      auto it = meta.find(sources[i].name);
      if (it != meta.end()) meta_of[i] = &it->second;
      // "v2": items journaled before volumes were reoriented are redone.
      tasks.push_back(ItemTask{sources[i].key, Hasher()
                                                   .Field("v2")
                                                   .Field(sources[i].stamp)
                                                   .Field(o_.options_hash)
                                                   .Field(meta_of[i] ? meta_of[i]->text : "")
                                                   .HexDigest()});
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ItemResult> results,
                             ctx.RunItems(tasks, [&](size_t i, ItemOutput& out) {
                               return PrepareOne(sources[i], meta_of[i], out);
                             }));

    // Labels: joined after the items, so a changed labels file redoes no volume.
    Dataset ds;
    LabelTable table;
    std::map<std::string, const LabelRow*> labels;  // by volume name
    if (!o_.labels_csv.empty()) {
      MEDPIPE_ASSIGN_OR_RETURN(table, ReadLabels(ctx, &ds.categories));
      for (const LabelRow& row : table.rows) labels.emplace(row.id, &row);
    }
    std::set<std::string> names;
    int64_t prepared = 0;
    for (size_t i = 0; i < sources.size(); ++i) {
      if (!results[i].ok) continue;
      rapidjson::Document doc;
      doc.Parse(results[i].payload.c_str(), results[i].payload.size());
      if (doc.HasParseError() || !doc.IsObject()) {
        return Status::Corruption(fmt::format("item {}: unreadable payload in the journal", sources[i].key));
      }
      ++prepared;
      const Source& s = sources[i];
      Image base;
      std::smatch m;
      if (std::regex_search(s.name, m, o_.patient_regex) && m.size() > 1 && m[1].length() > 0) {
        base.patient_id = m[1].str();
      } else {
        // The series of one folder stay one patient, so folds never split them.
        base.patient_id = s.folder.empty() ? s.name : s.folder;
        ctx.Problem(s.name, s.folder.empty() ? "patient_pattern does not match; the volume is its own patient"
                                             : "patient_pattern does not match; its folder is the patient");
        ctx.Count("patient_pattern_misses");
      }
      base.source = ctx.id();
      const rapidjson::Value& shape = doc["shape"];
      base.width = shape[3].GetInt();
      base.height = shape[2].GetInt();
      base.attributes["volume"] = s.name;
      base.attributes["input"] = std::string(s.nifti.empty() ? "dicom" : "nifti");
      base.attributes["shape"] = fmt::format("{}x{}x{}x{}", shape[0].GetInt(), shape[1].GetInt(),
                                             shape[2].GetInt(), shape[3].GetInt());
      base.attributes["spacing_before"] = Triple(doc["spacing_before"]);
      base.attributes["spacing_after"] = Triple(doc["spacing_after"]);
      base.attributes["hu_min"] = doc["hu_min"].GetDouble();
      base.attributes["hu_max"] = doc["hu_max"].GetDouble();
      base.attributes["orientation"] = std::string(doc["orientation"].GetString());
      base.attributes["stored_orientation"] = std::string(doc["stored_orientation"].GetString());
      if (!s.nifti.empty()) {
        base.attributes["affine_source"] = std::string(doc["affine_source"].GetString());
      } else {
        base.attributes["series_uid"] = s.series.uid;
        base.attributes["source_slices"] = static_cast<int64_t>(doc["source_slices"].GetInt());
        base.attributes["gantry_tilt"] = doc["gantry_tilt"].GetDouble();
        base.attributes["tilt_corrected"] = doc["tilt_corrected"].GetBool();
        base.attributes["spacing_equalized"] = doc["spacing_equalized"].GetBool();
      }
      if (doc.HasMember("preview")) base.attributes["preview"] = std::string(doc["preview"].GetString());
      if (doc.HasMember("nifti")) base.attributes["nifti"] = std::string(doc["nifti"].GetString());
      if (!o_.labels_csv.empty()) {
        auto it = FindLabels(labels, s);
        base.attributes["labelled"] = it != labels.end();
        if (it != labels.end()) {
          SetImageLabels(table, *it->second, &base);
        } else {
          ctx.Problem(s.name, "no row in the labels CSV");
          ctx.Count("volumes_without_labels");
        }
      }
      if (doc.HasMember("slices")) {
        for (const auto& sl : doc["slices"].GetArray()) {
          Image img = base;
          img.id = static_cast<int64_t>(ds.images.size()) + 1;
          img.file_name = sl["file"].GetString();
          img.attributes["slice"] = static_cast<int64_t>(sl["z"].GetInt());
          ds.images.push_back(std::move(img));
        }
      } else {
        base.id = static_cast<int64_t>(ds.images.size()) + 1;
        base.file_name = doc["npy"].GetString();
        ds.images.push_back(std::move(base));
      }
    }
    // Volumes that failed count as present: their rows are not orphans.
    for (const Source& src : sources) {
      names.insert(src.name);
      if (!src.nifti.empty()) continue;
      names.insert(src.series.uid);
      if (!src.folder.empty()) names.insert(src.folder);
    }
    for (const auto& [name, row] : labels) {
      if (!names.count(name)) {
        ctx.Problem(o_.labels_csv.filename().string() + ":" + name, "a label row without a volume");
        ctx.Count("label_rows_without_volume");
      }
    }
    ctx.Count("volumes", static_cast<int64_t>(sources.size()));
    ctx.Count("prepared", prepared);
    ctx.Count("images", static_cast<int64_t>(ds.images.size()));
    return ctx.WriteDataset(ds);
  }

 private:
  Result<std::vector<Source>> FindSources(StageContext& ctx) const;
  Result<std::map<std::string, Metadata>> ReadMetadata(StageContext& ctx) const;
  // The labels CSV, read as stages/label_table.h says (unknown cells kept).
  Result<LabelTable> ReadLabels(StageContext& ctx, std::vector<Category>* categories) const;
  Result<std::string> PrepareOne(const Source& s, const Metadata* meta, ItemOutput& out) const;
  // The labels row of `s`: by name, else (DICOM) by series UID, else by folder.
  template <typename Map>
  static typename Map::const_iterator FindLabels(const Map& labels, const Source& s) {
    auto it = labels.find(s.name);
    if (it != labels.end() || !s.nifti.empty()) return it;
    it = labels.find(s.series.uid);
    if (it != labels.end() || s.folder.empty()) return it;
    return labels.find(s.folder);
  }

  CtPrepOptions o_;
};

Result<std::vector<Source>> CtPrepStage::FindSources(StageContext& ctx) const {
  std::vector<Source> out;
  std::map<std::string, std::string> seen;  // name -> where
  auto add = [&](Source s) {
    auto [it, inserted] = seen.emplace(s.name, s.key);
    if (!inserted) {
      ctx.Problem(s.key, fmt::format("volume name '{}' is also that of {}; skipped", s.name, it->second));
      ctx.Count("duplicate_names");
      return;
    }
    out.push_back(std::move(s));
  };
  if (!o_.volumes.empty()) {
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ListedFile> files, ListFiles(o_.volumes, true));
    for (const auto& f : files) {
      std::string name = VolumeName(fs::path(f.rel).filename().string());
      if (name.empty()) continue;  // not .nii / .nii.gz
      add(Source{name, "nifti:" + f.rel, o_.volumes / f.rel, {}, StampOf(f.stat), ""});
    }
  }
  if (!o_.dicoms.empty()) {
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ListedFile> files, ListFiles(o_.dicoms, true));
    std::vector<DicomSliceHeader> headers;
    std::map<std::string, std::string> stamp_of;
    int64_t not_dicom = 0;
    std::string not_dicom_examples;
    for (const auto& f : files) {
      if (!MaybeDicom(o_.dicoms / f.rel)) {
        if (++not_dicom <= 3) not_dicom_examples += (not_dicom > 1 ? ", " : "") + f.rel;
        continue;
      }
      Result<DicomSliceHeader> h = ReadSliceHeader(o_.dicoms / f.rel);
      if (!h.ok()) {
        ctx.Problem("dicom:" + f.rel, h.status().message());
        ctx.Count("unreadable_dicom_files");
        continue;
      }
      stamp_of[h->file.string()] = f.rel + "=" + StampOf(f.stat);
      headers.push_back(std::move(h).value());
    }
    if (not_dicom > 0) {
      ctx.Count("not_dicom_files", not_dicom);
      ctx.Log(fmt::format("not DICOM: {} files under {} left out (e.g. {})", not_dicom, o_.dicoms.string(),
                          not_dicom_examples));
    }
    std::vector<DicomSeries> all = GroupSeries(std::move(headers));
    // The folder of each series (the folder holding its first file,
    // relative to `dicoms`, '/' as '_' so outputs stay one level deep), and
    // the series of each folder.
    std::vector<std::string> folder_of(all.size());
    std::map<std::string, std::vector<size_t>> in_folder;
    for (size_t i = 0; i < all.size(); ++i) {
      std::string folder = fs::relative(all[i].slices[0].file.parent_path(), o_.dicoms).generic_string();
      if (folder == ".") folder.clear();
      std::replace(folder.begin(), folder.end(), '/', '_');
      folder_of[i] = folder;
      in_folder[folder].push_back(i);
    }
    for (const auto& [folder, members] : in_folder) {
      if (members.size() < 2 || folder.empty()) continue;
      std::string list;
      for (size_t i : members) list += fmt::format("{}{} ({} files)", list.empty() ? "" : ", ", all[i].uid, all[i].slices.size());
      ctx.Log(fmt::format("dicom folder {} holds {} series, each its own volume: {}", folder, members.size(), list));
      ctx.Count("multi_series_folders");
    }
    // Names first: a folder's series are looked at together.
    std::vector<std::string> names(all.size()), folders(all.size());
    for (size_t i = 0; i < all.size(); ++i) {
      const std::vector<size_t>& members = in_folder[folder_of[i]];
      names[i] = folder_of[i];
      if (names[i].empty()) {
        names[i] = all[i].uid;
      } else if (members.size() > 1) {
        // Several series in one folder: each by its SeriesNumber when those
        // tell them apart, else by its UID.
        std::set<std::string> numbers;
        for (size_t m : members) numbers.insert(all[m].slices[0].series_number);
        bool by_number = numbers.size() == members.size() && !numbers.count("");
        folders[i] = names[i];
        names[i] += by_number ? "_s" + all[i].slices[0].series_number : "_" + all[i].uid;
      }
    }
    for (size_t i = 0; i < all.size(); ++i) {
      Hasher h;
      for (const auto& sl : all[i].slices) h.Field(stamp_of[sl.file.string()]);
      std::string key = "dicom:" + all[i].uid;
      add(Source{names[i], key, {}, std::move(all[i]), h.HexDigest(), folders[i]});
    }
  }
  return out;
}

Result<std::map<std::string, Metadata>> CtPrepStage::ReadMetadata(StageContext& ctx) const {
  MEDPIPE_ASSIGN_OR_RETURN(CsvTable t, ReadCsv(o_.metadata_csv.string()));
  const MetadataColumns& c = o_.metadata_columns;
  int name = t.Column(c.name), slope = t.Column(c.slope), inter = t.Column(c.intercept), xy = t.Column(c.xy),
      z = t.Column(c.z);
  for (auto [col, label] : {std::pair{name, &c.name}, {slope, &c.slope}, {inter, &c.intercept}, {xy, &c.xy}, {z, &c.z}}) {
    if (col < 0) return Status::Failed(fmt::format("{}: no column '{}'", o_.metadata_csv.string(), *label));
  }
  for (const CsvError& e : t.errors) {
    ctx.Problem(fmt::format("{}:{}", o_.metadata_csv.filename().string(), e.line), e.reason, "malformed CSV row");
  }
  std::map<std::string, Metadata> out;
  for (const CsvRow& row : t.rows) {
    std::string where = fmt::format("{}:{}", o_.metadata_csv.filename().string(), row.line);
    std::vector<double> xs = Numbers(row.fields[xy]), zs = Numbers(row.fields[z]);
    std::vector<double> sl = Numbers(row.fields[slope]), ic = Numbers(row.fields[inter]);
    if (xs.empty() || zs.size() != 1 || sl.size() != 1 || ic.size() != 1 || xs[0] <= 0 || zs[0] <= 0) {
      ctx.Problem(where, "unreadable slope, intercept or spacing; row skipped");
      ctx.Count("bad_metadata_rows");
      continue;
    }
    Metadata m{sl[0], ic[0], xs[0], zs[0], Join(row.fields, ",")};
    out[VolumeName(row.fields[name], true)] = m;
  }
  return out;
}

Result<LabelTable> CtPrepStage::ReadLabels(StageContext& ctx, std::vector<Category>* categories) const {
  LabelTableOptions lo;
  lo.id_column = o_.label_key;
  lo.label_columns = o_.label_columns;
  lo.exclude_columns = o_.exclude_columns;
  lo.normalize_id = [](const std::string& key) { return VolumeName(key, true); };
  MEDPIPE_ASSIGN_OR_RETURN(LabelTable t, ReadLabelTable(o_.labels_csv, lo, ctx));
  for (size_t i = 0; i < t.labels.size(); ++i) {
    categories->push_back(Category{static_cast<int64_t>(i) + 1, t.labels[i], "finding"});
  }
  return t;
}

Result<std::string> CtPrepStage::PrepareOne(const Source& s, const Metadata* meta, ItemOutput& out) const {
  Volume v;
  Affine affine{};
  double slope = 1, intercept = 0;
  std::string affine_source;
  std::optional<SeriesVolume> sv;
  if (!s.nifti.empty()) {
    MEDPIPE_ASSIGN_OR_RETURN(NiftiVolume n, ReadNifti(s.nifti));
    v = std::move(n.volume);
    affine = n.affine;
    affine_source = n.affine_source;
    if (!o_.metadata_csv.empty()) {
      if (!meta) return Status::Invalid(fmt::format("no row for {} in {}", s.name, o_.metadata_csv.filename().string()));
      slope = meta->slope, intercept = meta->intercept;
      v.spacing = {meta->xy, meta->xy, meta->z};  // of the stored axes: reoriented below with them
    } else {
      slope = n.slope, intercept = n.intercept;
    }
  } else {
    MEDPIPE_ASSIGN_OR_RETURN(sv, AssembleSeries(s.series, o_.assemble));  // already in HU
    v = std::move(sv->volume);
    affine = sv->affine;
  }
  Result<AxisMap> axes = ClosestCanonical(affine, o_.orientation);
  if (!axes.ok()) return Status::Invalid(fmt::format("{}: {}", s.name, axes.status().message()));
  if (!axes->identity()) v = Reorient(v, *axes);
  PrepOptions po = o_.prep;
  po.keep_hu = o_.nifti_output;
  StreamOutputs want;
  want.npy = !o_.slices;
  want.dtype = o_.dtype;
  want.preview_slices = o_.preview_slices;
  if (o_.slices) {
    want.select_slices = [](int nz, const void* arg) { return SelectSlices(*static_cast<const CtPrepOptions*>(arg), nz); };
    want.select_arg = &o_;
  }
  MEDPIPE_ASSIGN_OR_RETURN(StreamResult r, PrepareCtStreaming(std::move(v), slope, intercept, po, want));

  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("shape");
  w.StartArray();
  for (int d : {r.channels, r.nz, r.ny, r.nx}) w.Int(d);
  w.EndArray();
  WriteTriple(w, "spacing_before", r.spacing_before);
  WriteTriple(w, "spacing_after", r.spacing_after);
  w.Key("hu_min");
  w.Double(r.hu.min);
  w.Key("hu_max");
  w.Double(r.hu.max);
  w.Key("orientation");
  w.String(CanonicalName(o_.orientation));
  w.Key("stored_orientation");
  w.String(AxisCodes(affine));
  if (sv) {
    w.Key("source_slices");
    w.Int(sv->source_slices);
    w.Key("gantry_tilt");
    w.Double(std::round(sv->tilt_degrees * 100) / 100);
    w.Key("tilt_corrected");
    w.Bool(sv->tilt_corrected);
    w.Key("spacing_equalized");
    w.Bool(sv->spacing_equalized);
  } else {
    w.Key("affine_source");
    w.String(affine_source);
  }
  if (o_.slices) {
    w.Key("slices");
    w.StartArray();
    for (const auto& [z, png] : r.slice_pngs) {
      std::string file = fmt::format("slices/{}_z{:04d}.png", s.name, z);
      MEDPIPE_RETURN_IF_ERROR(out.WriteFile(file, png));
      w.StartObject();
      w.Key("file");
      w.String(file);
      w.Key("z");
      w.Int(z);
      w.EndObject();
    }
    w.EndArray();
  } else {
    std::string file = "volumes/" + s.name + ".npy";
    MEDPIPE_RETURN_IF_ERROR(out.WriteFile(file, r.npy));
    w.Key("npy");
    w.String(file);
  }
  if (o_.nifti_output) {
    std::string file = "volumes/" + s.name + ".nii.gz";
    MEDPIPE_ASSIGN_OR_RETURN(std::string bytes, NiftiBytes(r.hu_volume, true, o_.orientation));
    MEDPIPE_RETURN_IF_ERROR(out.WriteFile(file, bytes));
    w.Key("nifti");
    w.String(file);
  }
  if (!r.preview_png.empty()) {
    std::string file = "previews/" + s.name + ".png";
    MEDPIPE_RETURN_IF_ERROR(out.WriteFile(file, r.preview_png));
    w.Key("preview");
    w.String(file);
  }
  w.EndObject();
  return std::string(buf.GetString());
}

}  // namespace

Result<std::unique_ptr<Stage>> MakeCtPrep(const StageDecl& d, uint64_t) {
  MEDPIPE_ASSIGN_OR_RETURN(CtPrepOptions o, ParseCtPrepOptions(d.params));
  return std::unique_ptr<Stage>(new CtPrepStage(std::move(o)));
}

void RegisterCtPrep(Registry* registry) {
  KindSpec spec;
  spec.name = "ctprep";
  spec.cluster_items = true;  // a cluster run sends its items to array tasks
  spec.version = 2;  // 2: reoriented volumes, tilt correction, one volume per series
  spec.help = "CT volumes (NIfTI, DICOM series) to training tensors: HU clip, resampling, crop/pad, window "
              "channels, CLAHE, .npy/.nii.gz/PNG; CT-RATE metadata and labels joined";
  spec.min_inputs = 0;
  spec.max_inputs = 0;
  spec.params = CtPrepParamSpecs();
  registry->Add(StageKind{std::move(spec), MakeCtPrep});
}

}  // namespace medpipe
