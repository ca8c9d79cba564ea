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
//
// dataset.json names the exported files (train/x.png with roboflow, else the
// input's file names), all present in the stage folder, so a stage may read
// the export (e.g. filter it to 4 classes). Name the stage `6class_coco` to get
// the seed's `<workdir>/6class_coco/train/_annotations.coco.json`.
//
// An export is what users hand on, so its images are materialised
// (`materialize`): hard links to the files the input's links reach (copies
// where the filesystem refuses a hard link), or copies; the folder then
// survives `cp -r`, tar and a clean of any upstream stage. `symlink` keeps
// the intermediate stages' relative links, on request only.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "dataset/coco_io.h"
#include "stages/link_images.h"
#include "stages/registry.h"
#include "util/strings.h"

namespace medpipe {
namespace {

constexpr const char* kFormats[] = {"roboflow", "csv"};
constexpr const char* kAnnotationsFile = "_annotations.coco.json";

struct ExportOptions {
  bool roboflow = false;
  bool csv = false;
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
    Annotation copy = a;
    copy.id = static_cast<int64_t>(part.annotations.size()) + 1;
    copy.image_id = it->second;
    part.annotations.push_back(std::move(copy));
  }
  return SerializeCoco(part);
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
    if (o_.roboflow) {
      for (std::string_view split_view : kSplitNames) {
        const std::string split(split_view);
        std::set<std::string> taken = {kAnnotationsFile};
        for (size_t i = 0; i < in.images.size(); ++i) {
          const Image& img = in.images[i];
          if (CanonicalSplit(img.split) != split || !safe(img)) continue;
          std::string base = fs::path(img.file_name).filename().string();
          if (!taken.insert(base).second) {
            ctx.Problem(img.file_name, fmt::format("{}/{} is already taken by another image; image not exported",
                                                   split, base));
            ctx.Count("name_collisions");
            continue;
          }
          take(i, split + "/" + base);
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
        return Status::Failed(fmt::format("no image of input {} is in split train, valid or test; the roboflow "
                                          "format needs a split stage upstream",
                                          ctx.inputs()[0].id));
      }
    } else {
      for (size_t i = 0; i < in.images.size(); ++i) {
        if (safe(in.images[i])) take(i, in.images[i].file_name);
      }
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links, o_.materialize));

    // dataset.json: the exported images, renumbered in output order.
    Dataset out;
    out.categories = in.categories;
    auto by_image = in.AnnotationsByImage();
    for (size_t k = 0; k < chosen.size(); ++k) {
      if (!linked[k]) continue;
      Image img = in.images[chosen[k]];
      const int64_t old_id = img.id;
      img.id = static_cast<int64_t>(out.images.size()) + 1;
      img.file_name = links[k].out_rel;
      img.split = CanonicalSplit(img.split);
      if (auto it = by_image.find(old_id); it != by_image.end()) {
        for (size_t a : it->second) {
          Annotation copy = in.annotations[a];
          copy.id = static_cast<int64_t>(out.annotations.size()) + 1;
          copy.image_id = img.id;
          out.annotations.push_back(std::move(copy));
        }
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
    return Status::OK();
  }

 private:
  ExportOptions o_;
};

Result<std::unique_ptr<Stage>> MakeExport(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  ExportOptions o;
  std::vector<std::string> formats = p.GetStringList("formats");
  if (formats.empty()) return p.Error("formats", "name at least one format (roboflow, csv)");
  for (const auto& f : formats) {
    if (f != "roboflow" && f != "csv") {
      std::string close = ClosestName(f, {std::begin(kFormats), std::end(kFormats)});
      return p.Error("formats", fmt::format("unknown format '{}'{} (formats: roboflow, csv)", f,
                                            close.empty() ? "" : " (did you mean '" + close + "'?)"));
    }
    bool& on = f == "roboflow" ? o.roboflow : o.csv;
    if (on) return p.Error("formats", "format '" + f + "' is listed twice");
    on = true;
  }
  const std::string materialize = p.GetString("materialize");
  o.materialize = materialize == "copy"      ? LinkMode::kCopy
                  : materialize == "symlink" ? LinkMode::kSymlink
                                             : LinkMode::kHardlink;
  return std::unique_ptr<Stage>(new ExportStage(o));
}

}  // namespace

void RegisterExport(Registry* registry) {
  KindSpec spec;
  spec.name = "export";
  spec.version = 2;  // 2: images materialised (hard links) by default, `val` read as valid
  spec.help =
      "write a dataset as Roboflow split folders (train/valid/test/_annotations.coco.json beside the images, hard "
      "links or copies) "
      "and/or dataset.csv, one row per image";
  spec.min_inputs = 1;
  spec.max_inputs = 1;
  spec.params = {
      {"formats", ParamType::kStringList, "[roboflow, csv]", false,
       "what to write: roboflow (split folders with COCO files) and/or csv (dataset.csv)", {}},
      {"materialize", ParamType::kString, "hardlink", false,
       "how images are put in the export: hardlink (a copy where the filesystem refuses), copy, or symlink (links "
       "into the upstream stages: the export breaks when they are cleaned or it is copied)",
       {"hardlink", "copy", "symlink"}},
  };
  registry->Add(StageKind{std::move(spec), MakeExport});
}

}  // namespace medpipe
