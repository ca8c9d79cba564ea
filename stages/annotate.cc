// annotate: a folder of PNG/JPEG images into a COCO dataset.
//
// Each image is linked into the stage folder (images/<relative path>) and
// listed with its size read from the file header; image-level labels come
// from a glob map or a CSV, patient ids from a filename regex, boxes from an
// optional COCO file. Images with no boxes are negatives (empty annotation
// lists). Unreadable images are per-item problems. Each box is checked against
// its image as it comes in (bad_boxes, see box_gate.h).
#include <fmt/format.h>

#include <algorithm>
#include <regex>
#include <unordered_map>

#include "dataset/coco_io.h"
#include "dataset/image_io.h"
#include "stages/box_gate.h"
#include "stages/patient_groups.h"
#include "stages/registry.h"
#include "util/csv.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {
namespace {

struct AnnotateOptions {
  fs::path images;
  bool recursive = true;
  std::vector<std::string> extensions;
  StringPairs labels;  // glob -> label, first match wins
  fs::path labels_csv;
  std::string csv_key, csv_label;
  std::string patient_pattern;
  std::regex patient_regex;
  std::string source;
  fs::path annotations;
  std::vector<std::string> categories;
  BadBoxPolicy bad_boxes = BadBoxPolicy::kClip;
};

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The images under the folder, sorted by relative path so ids and output
// bytes never depend on directory order.
Result<std::vector<ListedFile>> ListImages(const AnnotateOptions& o) {
  MEDPIPE_ASSIGN_OR_RETURN(std::vector<ListedFile> all, ListFiles(o.images, o.recursive));
  std::vector<ListedFile> out;
  out.reserve(all.size());
  for (auto& f : all) {
    size_t dot = f.rel.rfind('.');
    if (dot == std::string::npos || f.rel.find('/', dot) != std::string::npos) continue;
    std::string ext = Lower(f.rel.substr(dot));
    if (std::find(o.extensions.begin(), o.extensions.end(), ext) == o.extensions.end()) continue;
    out.push_back(std::move(f));
  }
  return out;
}

// A file's state, not its absolute path: the params name the file (relative
// to the pipeline), so a moved project stays done.
void StatInto(Hasher& h, const fs::path& path) {
  if (path.empty()) return;
  FileStat st = StatPath(path);
  h.Field(st.exists ? fmt::format("{}:{}", st.size, st.mtime_ns) : "missing");
}

class AnnotateStage : public Stage {
 public:
  explicit AnnotateStage(AnnotateOptions o) : o_(std::move(o)) {}

  Result<std::string> ExternalFingerprint() const override {
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ListedFile> files, ListImages(o_));
    Hasher h;
    std::string line;
    for (const auto& f : files) {
      line.clear();
      fmt::format_to(std::back_inserter(line), "{}\t{}\t{}\n", f.rel, f.stat.size, f.stat.mtime_ns);
      h.Update(line);
    }
    StatInto(h, o_.labels_csv);
    StatInto(h, o_.annotations);
    return h.HexDigest();
  }

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ListedFile> files, ListImages(o_));
    auto abs = [&](size_t i) { return o_.images / files[i].rel; };
    std::unordered_map<std::string, std::string> csv_labels;
    if (!o_.labels_csv.empty()) MEDPIPE_RETURN_IF_ERROR(LoadCsvLabels(ctx, &csv_labels));
    Dataset boxes;
    if (!o_.annotations.empty()) {
      MEDPIPE_ASSIGN_OR_RETURN(boxes, ReadCoco(o_.annotations));
    }

    std::vector<ItemTask> tasks;
    tasks.reserve(files.size());
    for (const auto& f : files) {
      tasks.push_back(ItemTask{f.rel, Hasher().Field((o_.images / f.rel).string())
                                          .Field(fmt::format("{}:{}", f.stat.size, f.stat.mtime_ns))
                                          .HexDigest()});
    }
    MEDPIPE_ASSIGN_OR_RETURN(
        std::vector<ItemResult> results,
        ctx.RunItems(tasks, [&](size_t i, ItemOutput& out) -> Result<std::string> {
          MEDPIPE_ASSIGN_OR_RETURN(ImageHeader h, ProbeImage(abs(i)));
          // Relative, like every link medpipe writes: a project moved with
          // its data and workdir keeps its links.
          const std::string rel = "images/" + files[i].rel;
          MEDPIPE_RETURN_IF_ERROR(
              out.Symlink(rel, fs::absolute(abs(i)).lexically_relative((ctx.dir() / rel).parent_path())));
          return fmt::format("{} {}", h.width, h.height);
        }));

    Dataset ds;
    ds.categories = boxes.categories;
    int64_t next_cat = 1;
    for (const auto& c : ds.categories) next_cat = std::max(next_cat, c.id + 1);
    for (const auto& name : o_.categories) {
      if (!ds.FindCategory(name)) ds.categories.push_back(Category{next_cat++, name, "none"});
    }
    // Boxes are matched to images by relative path, else by file name.
    std::unordered_map<std::string, int64_t> box_image_by_name;
    for (const auto& img : boxes.images) {
      box_image_by_name.emplace(img.file_name, img.id);
      box_image_by_name.emplace(fs::path(img.file_name).filename().string(), img.id);
    }
    auto boxes_by_image = boxes.AnnotationsByImage();
    BoxGate gate(o_.bad_boxes);

    for (size_t i = 0; i < files.size(); ++i) {
      if (!results[i].ok) continue;
      const std::string& rel = files[i].rel;
      Image img;
      img.id = static_cast<int64_t>(ds.images.size()) + 1;
      img.file_name = "images/" + rel;
      std::sscanf(results[i].payload.c_str(), "%d %d", &img.width, &img.height);
      img.source = o_.source.empty() ? ctx.id() : o_.source;
      img.labels = LabelsFor(rel, csv_labels);
      if (!o_.patient_pattern.empty()) {
        img.patient_id = PatientFromName(rel, o_.patient_regex);
        if (img.patient_id.empty()) {
          ctx.Count("no_patient_id");
          ctx.Problem(rel, fmt::format("no patient id: patient_pattern matches neither '{}' nor '{}'",
                                       fs::path(rel).filename().string(), rel));
        }
      }
      auto src = box_image_by_name.find(rel);
      if (src == box_image_by_name.end()) src = box_image_by_name.find(fs::path(rel).filename().string());
      if (src != box_image_by_name.end()) {
        for (size_t k : boxes_by_image[src->second]) {
          Annotation a = boxes.annotations[k];
          if (!gate.Admit(ctx, img.file_name, &a, img.width, img.height)) continue;
          ds.AddAnnotation(std::move(a), img.id);
        }
      }
      ctx.Count(ds.annotations.empty() || ds.annotations.back().image_id != img.id ? "negatives" : "with_boxes");
      ds.images.push_back(std::move(img));
    }
    ctx.Count("images", static_cast<int64_t>(ds.images.size()));
    MEDPIPE_RETURN_IF_ERROR(gate.Finish());
    return ctx.WriteDataset(ds);
  }

 private:
  Status LoadCsvLabels(StageContext& ctx, std::unordered_map<std::string, std::string>* out) const {
    Result<CsvTable> table = ReadCsv(o_.labels_csv.string());
    if (!table.ok()) return table.status();
    int key = table->Column(o_.csv_key), label = table->Column(o_.csv_label);
    if (key < 0 || label < 0) {
      return Status::Invalid(fmt::format("{}: needs columns '{}' and '{}' (has: {})", o_.labels_csv.string(),
                                         o_.csv_key, o_.csv_label, Join(table->header, ", ")));
    }
    for (const auto& e : table->errors) {
      ctx.Problem(fmt::format("{}:{}", o_.labels_csv.filename().string(), e.line), e.reason + "; row skipped");
      ctx.Count("csv_rows_malformed");
    }
    for (const auto& row : table->rows) (*out)[row.fields[key]] = row.fields[label];
    return Status::OK();
  }

  std::vector<std::string> LabelsFor(const std::string& rel,
                                     const std::unordered_map<std::string, std::string>& csv) const {
    std::vector<std::string> labels;
    for (const auto& [glob, label] : o_.labels) {
      if (GlobMatch(glob, rel)) {
        labels.push_back(label);
        break;
      }
    }
    if (!csv.empty()) {
      fs::path p(rel);
      for (const std::string& key : {rel, p.filename().string(), p.stem().string()}) {
        auto it = csv.find(key);
        if (it != csv.end()) {
          if (std::find(labels.begin(), labels.end(), it->second) == labels.end()) labels.push_back(it->second);
          break;
        }
      }
    }
    return labels;
  }

  AnnotateOptions o_;
};

Result<std::unique_ptr<Stage>> MakeAnnotate(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  AnnotateOptions o;
  o.images = p.GetString("images");
  o.recursive = p.GetBool("recursive");
  for (auto e : p.GetStringList("extensions")) {
    e = Lower(e);
    o.extensions.push_back(e.empty() || e[0] == '.' ? e : "." + e);
  }
  o.labels = p.GetStringMap("labels");
  o.labels_csv = p.GetString("labels_csv");
  o.csv_key = p.GetString("labels_csv_key");
  o.csv_label = p.GetString("labels_csv_label");
  o.patient_pattern = p.GetString("patient_pattern");
  if (!o.patient_pattern.empty()) {
    try {
      o.patient_regex = std::regex(o.patient_pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return p.Error("patient_pattern", std::string("not a valid regular expression: ") + e.what());
    }
    if (o.patient_regex.mark_count() < 1) {
      return p.Error("patient_pattern", "needs a capture group for the patient id, e.g. '^(\\d+)_'");
    }
  }
  o.source = p.GetString("source");
  o.annotations = p.GetString("annotations");
  o.categories = p.GetStringList("categories");
  o.bad_boxes = BadBoxesOf(p);
  return std::unique_ptr<Stage>(new AnnotateStage(std::move(o)));
}

}  // namespace

void RegisterAnnotate(Registry* registry) {
  KindSpec spec;
  spec.name = "annotate";
  spec.version = 1;
  spec.help = "make a COCO dataset from a folder of PNG/JPEG images (sizes, labels, patient ids, optional boxes)";
  spec.min_inputs = 0;
  spec.max_inputs = 0;
  spec.params = {
      {"images", ParamType::kPath, "", true, "folder of images (relative to the pipeline file)", {}},
      {"recursive", ParamType::kBool, "true", false, "include images in subfolders", {}},
      {"extensions", ParamType::kStringList, "[.png, .jpg, .jpeg]", false, "file extensions to take", {}},
      {"labels", ParamType::kStringMap, "", false, "glob on the relative path -> image-level label; first match wins", {}},
      {"labels_csv", ParamType::kPath, "", false, "CSV with an image key column and a label column", {}},
      {"labels_csv_key", ParamType::kString, "file", false, "CSV column matched to the relative path, file name or stem", {}},
      {"labels_csv_label", ParamType::kString, "label", false, "CSV column with the label", {}},
      {"patient_pattern", ParamType::kString, "", false,
       "regex on the file's base name (else its relative path); group 1 is the patient id", {}},
      {"source", ParamType::kString, "", false, "source tag for every image (default: the stage id)", {}},
      {"annotations", ParamType::kPath, "", false, "COCO file whose boxes are attached by file name", {}},
      {"categories", ParamType::kStringList, "", false, "category names to declare even without boxes", {}},
      BadBoxesParam(),
  };
  registry->Add(StageKind{std::move(spec), MakeAnnotate});
}

}  // namespace medpipe
