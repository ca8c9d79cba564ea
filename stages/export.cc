// export: a dataset in the forms trainers and people read.
//
//   roboflow  <stage dir>/{train,valid,test}/_annotations.coco.json beside the
//             images (materialised, see below), only the splits
//             present; per split, ids renumbered from 1 and file_name the
//             basename in the split folder; categories as in the input. Two
//             images of one split with the same basename are a collision: the
//             first (in dataset order) is kept, the next is a per-item problem.
//             A split named `val` or `validation` is read as valid. Images
//             whose split is none of these are per-item problems; a dataset
//             with no such split at all fails the stage.
//   csv       dataset.csv, one row per exported image (RFC 4180 quoting, '\n'
//             line ends): split, file, patient_id, source, classes (distinct
//             category names of its boxes, ';'-joined in category order),
//             box_count, width, height, augmented_from (origin.image), labels
//             (';'-joined).
//   yolo      the Ultralytics layout: images/{train,val,test}/<file> and
//             labels/{train,val,test}/<stem>.txt, one `class cx cy w h` line
//             per box (class: 0-based index of the category in id order;
//             centre and size divided by the image's width and height, 6
//             decimals; an empty file for a negative image), and data.yaml
//             (the present splits, relative; names; no `path:`, see
//             YoloDataYaml).
//             Split valid is written as `val`, Ultralytics' name. Images are
//             chosen per split as with roboflow; two images of one split with
//             the same stem collide (their label files would). Boxes are
//             clipped to the image first; a box with nothing inside the image,
//             or of an unknown category, is a per-item problem and gets no
//             line; an image without a width or height is not exported.
//
// dataset.json names the exported files (train/x.png with roboflow, else
// images/train/x.png with yolo, else the input's file names), all present in
// the stage folder, so a stage may read the export (e.g. filter it to 4
// classes). Name the stage `6class_coco` to get
// the seed's `<workdir>/6class_coco/train/_annotations.coco.json`.
//
// An export is what users hand on, so its images are materialised
// (`materialize`): hard links to the files the input's links reach (copies
// where the filesystem refuses a hard link), or copies; the folder then
// survives `cp -r`, tar and a clean of any upstream stage. `symlink` keeps
// the intermediate stages' relative links, on request only.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>

#include "dataset/coco_io.h"
#include "stages/link_images.h"
#include "stages/registry.h"
#include "util/strings.h"

namespace medpipe {
namespace {

constexpr const char* kFormats[] = {"roboflow", "csv", "yolo"};
constexpr const char* kAnnotationsFile = "_annotations.coco.json";

struct ExportOptions {
  bool roboflow = false;
  bool csv = false;
  bool yolo = false;
  LinkMode materialize = LinkMode::kHardlink;
};

// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string CsvRow(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    out += CsvField(fields[i]);
  }
  return out + "\n";
}

std::string RenderCsv(const Dataset& ds) {
  std::unordered_map<int64_t, size_t> category_index;
  for (size_t c = 0; c < ds.categories.size(); ++c) category_index.emplace(ds.categories[c].id, c);
  auto by_image = ds.AnnotationsByImage();
  std::string out = CsvRow({"split", "file", "patient_id", "source", "classes", "box_count", "width", "height",
                            "augmented_from", "labels"});
  for (const auto& img : ds.images) {
    std::set<size_t> classes;
    size_t boxes = 0;
    if (auto it = by_image.find(img.id); it != by_image.end()) {
      boxes = it->second.size();
      for (size_t k : it->second) {
        auto c = category_index.find(ds.annotations[k].category_id);
        if (c != category_index.end()) classes.insert(c->second);
      }
    }
    std::vector<std::string> names;
    for (size_t c : classes) names.push_back(ds.categories[c].name);
    out += CsvRow({img.split, img.file_name, img.patient_id, img.source, Join(names, ";"), std::to_string(boxes),
                   std::to_string(img.width), std::to_string(img.height), img.origin.image, Join(img.labels, ";")});
  }
  return out;
}

// One split of `ds` as a Roboflow COCO file: ids from 1, file names relative
// to the split folder.
std::string SplitCoco(const Dataset& ds, const std::string& split) {
  Dataset part;
  part.categories = ds.categories;
  std::unordered_map<int64_t, int64_t> id_map;
  for (const auto& img : ds.images) {
    if (img.split != split) continue;
    Image copy = img;
    copy.id = static_cast<int64_t>(part.images.size()) + 1;
    copy.file_name = fs::path(img.file_name).filename().string();
    id_map.emplace(img.id, copy.id);
    part.images.push_back(std::move(copy));
  }
  for (const auto& a : ds.annotations) {
    auto it = id_map.find(a.image_id);
    if (it == id_map.end()) continue;
    part.AddAnnotation(a, it->second);
  }
  return SerializeCoco(part);
}

// Ultralytics names the validation split `val`.
std::string YoloSplit(const std::string& canonical) { return canonical == "valid" ? "val" : canonical; }

std::string YoloImagePath(const std::string& canonical_split, const std::string& file_name) {
  return "images/" + YoloSplit(canonical_split) + "/" + fs::path(file_name).filename().string();
}

std::string YoloLabelPath(const std::string& canonical_split, const std::string& file_name) {
  return "labels/" + YoloSplit(canonical_split) + "/" + fs::path(file_name).stem().string() + ".txt";
}

// One image's YOLO label text. The box is clipped to the image so no
// coordinate leaves [0, 1]; a box with no area inside the image, or whose
// category is unknown, is reported through `problem` and gets no line; a box
// reaching past an edge is clipped and counted through `clipped`.
// Hand-written: the format is five numbers a line, no library covers it.
std::string YoloLabel(const Image& img, const std::vector<size_t>& boxes, const Dataset& ds,
                      const std::unordered_map<int64_t, size_t>& class_of,
                      const std::function<void(const std::string&, const char*)>& problem,
                      const std::function<void()>& clipped) {
  std::string out;
  const double W = img.width, H = img.height;
  for (size_t k : boxes) {
    const Annotation& a = ds.annotations[k];
    auto cls = class_of.find(a.category_id);
    if (cls == class_of.end()) {
      problem(fmt::format("annotation {}: unknown category id {}; no YOLO line", a.id, a.category_id),
              "yolo_unknown_categories");
      continue;
    }
    const double x0 = std::max(0.0, a.bbox[0]), y0 = std::max(0.0, a.bbox[1]);
    const double x1 = std::min(W, a.bbox[0] + a.bbox[2]), y1 = std::min(H, a.bbox[1] + a.bbox[3]);
    if (!(x1 > x0 && y1 > y0)) {
      problem(fmt::format("annotation {}: box [{}, {}, {}, {}] has no area inside the {}x{} image; no YOLO line",
                          a.id, a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3], img.width, img.height),
              "yolo_boxes_outside");
      continue;
    }
    if (x0 != a.bbox[0] || y0 != a.bbox[1] || x1 != a.bbox[0] + a.bbox[2] || y1 != a.bbox[1] + a.bbox[3]) {
      clipped();
    }
    out += fmt::format("{} {:.6f} {:.6f} {:.6f} {:.6f}\n", cls->second, (x0 + x1) / 2 / W, (y0 + y1) / 2 / H,
                       (x1 - x0) / W, (y1 - y0) / H);
  }
  return out;
}

// data.yaml for Ultralytics: the splits present, relative to the folder
// data.yaml is in, and the class names by index. No `path:` key, so the
// folder can be moved, zipped and trained on elsewhere: Ultralytics'
// check_det_dataset takes the dataset root from `path:` when it is set,
// else from the folder of the yaml file it was given
// (`Path(data.get("path") or Path(data["yaml_file"]).parent)`), and resolves
// a relative `path:` against its DATASETS_DIR setting (recent releases try
// the working directory first), never against the yaml's folder; so an
// absolute `path:` breaks after a move and a relative one depends on where
// training runs. Each split is then `root / "images/<split>"`.
std::string YoloDataYaml(const std::vector<std::string>& splits, const std::vector<std::string>& names) {
  YAML::Emitter y;
  y << YAML::BeginMap;
  for (const auto& s : splits) y << YAML::Key << s << YAML::Value << "images/" + s;
  y << YAML::Key << "names" << YAML::Value << YAML::BeginMap;
  for (size_t i = 0; i < names.size(); ++i) y << YAML::Key << i << YAML::Value << names[i];
  y << YAML::EndMap << YAML::EndMap;
  return "# Dataset root: this file's folder (no `path:`), so the folder can be moved or zipped.\n" +
         std::string(y.c_str()) + "\n";
}

class ExportStage : public Stage {
 public:
  explicit ExportStage(ExportOptions o) : o_(o) {}

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset in, ctx.ReadInputDataset(0));
    const fs::path in_dir = ctx.inputs()[0].dir;

    // The exported images in output order, with their names in this folder.
    std::vector<size_t> chosen;
    std::vector<LinkSpec> links;
    auto take = [&](size_t i, std::string out_rel) {
      chosen.push_back(i);
      links.push_back(LinkSpec{std::move(out_rel), in_dir / in.images[i].file_name});
    };
    auto safe = [&](const Image& img) {
      if (IsContainedRelativePath(img.file_name)) return true;
      ctx.Problem(img.file_name, "file_name leaves the dataset folder; image not exported");
      ctx.Count("unsafe_file_names");
      return false;
    };
    if (o_.roboflow || o_.yolo) {
      for (std::string_view split_view : kSplitNames) {
        const std::string split(split_view);
        // Basenames (the image files) and, with yolo, "stem:" keys (the label files).
        std::set<std::string> taken = {kAnnotationsFile};
        for (size_t i = 0; i < in.images.size(); ++i) {
          const Image& img = in.images[i];
          if (CanonicalSplit(img.split) != split || !safe(img)) continue;
          if (o_.yolo && (img.width <= 0 || img.height <= 0)) {
            ctx.Problem(img.file_name, "no width or height: YOLO coordinates cannot be normalised; image not exported");
            ctx.Count("images_without_size");
            continue;
          }
          std::string base = fs::path(img.file_name).filename().string();
          std::string stem_key = "stem:" + fs::path(img.file_name).stem().string();
          if (taken.count(base) || (o_.yolo && taken.count(stem_key))) {
            std::string what = o_.roboflow ? split + "/" + base : YoloLabelPath(split, img.file_name);
            ctx.Problem(img.file_name, what + " is already taken by another image; image not exported");
            ctx.Count("name_collisions");
            continue;
          }
          taken.insert(base);
          if (o_.yolo) taken.insert(stem_key);
          take(i, o_.roboflow ? split + "/" + base : YoloImagePath(split, img.file_name));
        }
      }
      for (const auto& img : in.images) {
        if (IsRoboflowSplit(CanonicalSplit(img.split))) continue;
        ctx.Problem(img.file_name, img.split.empty() ? "no split; image not exported"
                                                     : "split '" + img.split + "' is not train, valid or test; "
                                                                                "image not exported");
        ctx.Count("images_without_split");
      }
      if (chosen.empty() && !in.images.empty()) {
        return Status::Failed(fmt::format("no image of input {} is in split train, valid or test; the {} "
                                          "format needs a split stage upstream",
                                          ctx.inputs()[0].id, o_.roboflow ? "roboflow" : "yolo"));
      }
    } else {
      for (size_t i = 0; i < in.images.size(); ++i) {
        if (safe(in.images[i])) take(i, in.images[i].file_name);
      }
    }
    // With both roboflow and yolo, each image is materialised twice: once per layout.
    const size_t primary = links.size();
    if (o_.roboflow && o_.yolo) {
      for (size_t k = 0; k < primary; ++k) {
        const Image& img = in.images[chosen[k]];
        links.push_back(LinkSpec{YoloImagePath(CanonicalSplit(img.split), img.file_name), links[k].target});
      }
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links, o_.materialize));
    std::vector<std::string> in_names;  // per exported image, its input file_name (the problem item)

    // dataset.json: the exported images, renumbered in output order.
    Dataset out;
    out.categories = in.categories;
    auto by_image = in.AnnotationsByImage();
    for (size_t k = 0; k < chosen.size(); ++k) {
      if (!linked[k] || (links.size() > primary && !linked[primary + k])) continue;
      Image img = in.images[chosen[k]];
      in_names.push_back(img.file_name);
      const int64_t old_id = img.id;
      img.id = static_cast<int64_t>(out.images.size()) + 1;
      img.file_name = links[k].out_rel;
      img.split = CanonicalSplit(img.split);
      if (auto it = by_image.find(old_id); it != by_image.end()) {
        for (size_t a : it->second) out.AddAnnotation(in.annotations[a], img.id);
      }
      ctx.Count("images_" + (img.split.empty() ? std::string("unsplit") : img.split));
      out.images.push_back(std::move(img));
    }
    MEDPIPE_RETURN_IF_ERROR(ctx.WriteDataset(out));
    ctx.Count("images", static_cast<int64_t>(out.images.size()));
    ctx.Count("annotations", static_cast<int64_t>(out.annotations.size()));

    if (o_.roboflow) {
      for (std::string_view split : kSplitNames) {
        const std::string s(split);
        bool any = std::any_of(out.images.begin(), out.images.end(), [&](const Image& img) { return img.split == s; });
        if (any) MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput(s + "/" + kAnnotationsFile, SplitCoco(out, s)));
      }
    }
    if (o_.csv) MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("dataset.csv", RenderCsv(out)));
    if (o_.yolo) MEDPIPE_RETURN_IF_ERROR(WriteYolo(ctx, out, in_names));
    return Status::OK();
  }

  // labels/<split>/<stem>.txt per exported image and data.yaml; `out` holds
  // the exported images with canonical splits, `in_names` their input names.
  static Status WriteYolo(StageContext& ctx, const Dataset& out, const std::vector<std::string>& in_names) {
    std::vector<size_t> order(out.categories.size());
    for (size_t c = 0; c < order.size(); ++c) order[c] = c;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return out.categories[a].id < out.categories[b].id; });
    std::unordered_map<int64_t, size_t> class_of;
    std::vector<std::string> names;
    for (size_t c : order) {
      class_of.emplace(out.categories[c].id, names.size());
      names.push_back(out.categories[c].name);
    }
    auto by_image = out.AnnotationsByImage();
    std::set<std::string> present;
    for (size_t i = 0; i < out.images.size(); ++i) {
      const Image& img = out.images[i];
      std::vector<size_t> boxes;
      if (auto it = by_image.find(img.id); it != by_image.end()) boxes = it->second;
      auto problem = [&](const std::string& reason, const char* counter) {
        ctx.Problem(in_names[i], reason);
        ctx.Count(counter);
      };
      MEDPIPE_RETURN_IF_ERROR(
          ctx.WriteOutput(YoloLabelPath(img.split, img.file_name),
                          YoloLabel(img, boxes, out, class_of, problem, [&] { ctx.Count("yolo_boxes_clipped"); })));
      present.insert(YoloSplit(img.split));
    }
    std::vector<std::string> splits;
    for (const char* s : {"train", "val", "test"}) {
      if (present.count(s)) splits.push_back(s);
    }
    return ctx.WriteOutput("data.yaml", YoloDataYaml(splits, names));
  }

 private:
  ExportOptions o_;
};

Result<std::unique_ptr<Stage>> MakeExport(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  ExportOptions o;
  std::vector<std::string> formats = p.GetStringList("formats");
  if (formats.empty()) return p.Error("formats", "name at least one format (roboflow, csv, yolo)");
  for (const auto& f : formats) {
    if (f != "roboflow" && f != "csv" && f != "yolo") {
      std::string close = ClosestName(f, {std::begin(kFormats), std::end(kFormats)});
      return p.Error("formats", fmt::format("unknown format '{}'{} (formats: roboflow, csv, yolo)", f,
                                            close.empty() ? "" : " (did you mean '" + close + "'?)"));
    }
    bool& on = f == "roboflow" ? o.roboflow : f == "csv" ? o.csv : o.yolo;
    if (on) return p.Error("formats", "format '" + f + "' is listed twice");
    on = true;
  }
  o.materialize = MaterializeMode(p.GetString("materialize"));
  return std::unique_ptr<Stage>(new ExportStage(o));
}

}  // namespace

void RegisterExport(Registry* registry) {
  KindSpec spec;
  spec.name = "export";
  spec.version = 3;  // 2: images materialised (hard links) by default, `val` read as valid; 3: data.yaml without `path:`
  spec.help =
      "write a dataset as Roboflow split folders (train/valid/test/_annotations.coco.json beside the images, hard "
      "links or copies), dataset.csv (one row per image) and/or the Ultralytics YOLO layout (images/, labels/, "
      "data.yaml)";
  spec.min_inputs = 1;
  spec.max_inputs = 1;
  spec.params = {
      {"formats", ParamType::kStringList, "[roboflow, csv]", false,
       "what to write: roboflow (split folders with COCO files), csv (dataset.csv) and/or yolo (images/, labels/ "
       "and data.yaml for Ultralytics)",
       {}},
      MaterializeParam(),
  };
  registry->Add(StageKind{std::move(spec), MakeExport});
}

}  // namespace medpipe
