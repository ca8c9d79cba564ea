// merge: many COCO datasets into one, each under its own file-name prefix.
//
// Sources are the stage's inputs (in input order) followed by the external
// datasets listed in `sources` (COCO files or Roboflow export folders), in the
// order written. Output images are `images/<prefix><basename>`, relative
// symlinks made by LinkImages, numbered 1..N in (source order, then the
// source's own image order); annotations likewise. Categories are remapped by
// name into the target list `categories` (ids 1..n). Identical files (the
// same bytes, so the same pixels) are kept once, the first. Roboflow's
// augmented copies of one upload (`<stem>_<ext>.rf.<hash>.<ext>`) get a shared
// attributes["group"] so a later split can keep them together.
//
// Per-image problems (an unsafe file_name, an output-name collision, an
// unreadable file, a duplicate) are recorded and counted and the image is
// dropped, its annotations counted in annotations_dropped; the stage goes on.
// Unmapped categories fail the stage unless `unmapped: drop`, when each is a
// problem naming its annotation count and the closest target name; a target
// category no source maps to is a problem naming the closest source name (a
// typo in `categories` would otherwise drop a class silently). Image files in
// a Roboflow split folder that its JSON does not list are not merged, and
// their number is a problem.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>

#include "dataset/coco_io.h"
#include "stages/box_gate.h"
#include "stages/link_images.h"
#include "stages/registry.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {
namespace {

enum class Format { kAuto, kCoco, kRoboflow };

// One external dataset from the `sources` param.
struct SourceSpec {
  fs::path path;       // absolute (relative ones resolved against the pipeline file's folder)
  std::string prefix;  // prepended to each image's basename
  std::string source;  // tag written to every image; empty: keep the image's own, else `label`
  Format format = Format::kAuto;
  std::string label;   // names the source in problems and counters
};

struct MergeOptions {
  std::vector<SourceSpec> sources;
  std::map<std::string, std::string> input_prefixes;  // stage id -> prefix
  std::map<std::string, std::string> input_sources;   // stage id -> source tag
  std::vector<std::string> categories;                // target names, output ids 1..n
  std::map<std::string, std::string> category_map;    // source name -> target name
  bool drop_unmapped = false;
  bool patient_from_group = true;
  BadBoxPolicy bad_boxes = BadBoxPolicy::kClip;
};

// stat(2), following symlinks: a source may be a link to a folder.
bool IsDir(const fs::path& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// auto: a folder is a Roboflow export, anything else a COCO file.
Format Resolve(const SourceSpec& s) {
  if (s.format != Format::kAuto) return s.format;
  return IsDir(s.path) ? Format::kRoboflow : Format::kCoco;
}

// The folder the source's file_names are relative to.
fs::path BaseDir(const SourceSpec& s) { return Resolve(s) == Format::kRoboflow ? s.path : s.path.parent_path(); }

// Roboflow exports add a category id 0 named after the project, with
// supercategory "none", as the parent of every real category.
bool IsRoboflowParent(const Category& c, const std::vector<Category>& all) {
  if (c.id != 0 || c.supercategory != "none") return false;
  for (const auto& o : all) {
    if (o.id != 0 && o.supercategory != c.name) return false;
  }
  return true;
}

bool IsImageFile(const std::string& name) {
  std::string ext = fs::path(name).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* e : {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}) {
    if (ext == e) return true;
  }
  return false;
}

// Image files in each split folder of a Roboflow export that the folder's
// JSON does not list: a problem each folder, counted in unlisted_images.
Status ReportUnlisted(StageContext& ctx, const std::string& label, const fs::path& root, const Dataset& ds) {
  std::set<std::string> listed;
  for (const auto& img : ds.images) listed.insert(img.file_name);
  for (const char* folder : {"train", "valid", "val", "test"}) {
    if (!StatPath(root / folder / "_annotations.coco.json").exists) continue;
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ListedFile> files, ListFiles(root / folder, /*recursive=*/false));
    std::vector<std::string> unlisted;
    for (const auto& f : files) {
      if (IsImageFile(f.rel) && !listed.count(std::string(folder) + "/" + f.rel)) unlisted.push_back(f.rel);
    }
    if (unlisted.empty()) continue;
    ctx.Count("unlisted_images", static_cast<int64_t>(unlisted.size()));
    const size_t shown = std::min<size_t>(unlisted.size(), 3);
    ctx.Problem(fmt::format("{}:{}/", label, folder),
                fmt::format("{} image file(s) in the folder are not in its _annotations.coco.json, so not merged "
                            "(e.g. {}{})",
                            unlisted.size(), Join(std::vector<std::string>(unlisted.begin(), unlisted.begin() + shown), ", "),
                            unlisted.size() > shown ? ", ..." : ""),
                "image files not in the annotations");
  }
  return Status::OK();
}

// A dataset ready to merge: where it came from and how to rename it.
struct Loaded {
  std::string label;
  std::string prefix;
  std::string source;
  fs::path base;
  Dataset ds;
  std::unordered_map<int64_t, int64_t> cat_to_out;  // source category id -> output id; absent: dropped
};

// An image that passed the name checks, before deduplication.
struct Candidate {
  size_t src;
  size_t img;
  std::string out_rel;
  fs::path target;
  std::string name;  // "<label>:<file_name>", for problems
};

class MergeStage : public Stage {
 public:
  explicit MergeStage(MergeOptions o) : o_(std::move(o)) {}

  // Every external source's folder listed and stat-ed (the COCO file's folder
  // holds its images), so a changed JSON or image reruns the merge.
  Result<std::string> ExternalFingerprint() const override {
    if (o_.sources.empty()) return std::string();
    Hasher h;
    for (const auto& s : o_.sources) {
      fs::path root = BaseDir(s);
      // Names, sizes and mtimes below the source, not its absolute path (the
      // `sources` param says which folder), so a moved project stays done.
      h.Field(s.prefix);
      if (!IsDir(root)) {
        h.Field("missing");
        continue;
      }
      MEDPIPE_ASSIGN_OR_RETURN(std::vector<ListedFile> files, ListFiles(root, /*recursive=*/true));
      for (const auto& f : files) h.Field(fmt::format("{}\t{}\t{}", f.rel, f.stat.size, f.stat.mtime_ns));
    }
    return h.HexDigest();
  }

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<Loaded> srcs, Load(ctx));
    // These counters are in every report, zero or not.
    for (const char* c : {"duplicates", "annotations_dropped", "categories_remapped"}) ctx.Count(c, 0);
    for (const auto& s : srcs) ctx.Count("images." + s.label, 0);
    MEDPIPE_RETURN_IF_ERROR(PlanCategories(ctx, srcs));
    std::vector<std::unordered_map<int64_t, int64_t>> boxes(srcs.size());  // per source: image id -> annotations
    for (size_t si = 0; si < srcs.size(); ++si) {
      for (const auto& a : srcs[si].ds.annotations) ++boxes[si][a.image_id];
    }
    // An image left out takes its annotations with it: counted, and named in its problem.
    auto dropped_with = [&](size_t src, int64_t image_id) -> std::string {
      auto it = boxes[src].find(image_id);
      if (it == boxes[src].end() || it->second == 0) return "";
      ctx.Count("annotations_dropped", it->second);
      return fmt::format(" with its {} annotation(s)", it->second);
    };
    std::vector<Candidate> cands = Candidates(ctx, srcs, dropped_with);

    // Content hashes, journaled so a resumed run does not reread every file.
    std::vector<ItemTask> tasks;
    tasks.reserve(cands.size());
    for (const auto& c : cands) {
      struct stat st;
      std::string state = ::stat(c.target.c_str(), &st) == 0
                              ? fmt::format("{}:{}.{}", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec)
                              : "missing";
      tasks.push_back(ItemTask{c.target.string(), Hasher().Field(c.target.string()).Field(state).HexDigest()});
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ItemResult> hashes,
                             ctx.RunItems(tasks, [&](size_t i, ItemOutput&) -> Result<std::string> {
                               Result<std::string> bytes = ReadFile(cands[i].target);
                               // A missing or unreadable source image is the item's problem, not the run's.
                               if (!bytes.ok()) return Status::Invalid(bytes.status().message());
                               return HashBytes(*bytes);
                             }, "hash"));

    // The first of identical files is kept; later ones are reported with it.
    std::vector<const Candidate*> kept;
    std::unordered_map<std::string, const Candidate*> first;
    for (size_t i = 0; i < cands.size(); ++i) {
      const int64_t image_id = srcs[cands[i].src].ds.images[cands[i].img].id;
      if (!hashes[i].ok) {
        ctx.Count("unreadable");
        std::string with = dropped_with(cands[i].src, image_id);
        if (!with.empty()) ctx.Problem(cands[i].name, "unreadable, so dropped" + with);
        continue;
      }
      auto [it, inserted] = first.emplace(hashes[i].payload, &cands[i]);
      if (!inserted) {
        ctx.Problem(cands[i].name, fmt::format("duplicate of {} (identical file content); kept {} only; dropped{}",
                                               it->second->name, it->second->out_rel,
                                               dropped_with(cands[i].src, image_id)));
        ctx.Count("duplicates");
        continue;
      }
      kept.push_back(&cands[i]);
    }

    std::vector<LinkSpec> links;
    links.reserve(kept.size());
    for (const Candidate* c : kept) links.push_back(LinkSpec{c->out_rel, c->target});
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links));

    Dataset out;
    for (size_t k = 0; k < o_.categories.size(); ++k) {
      out.categories.push_back(Category{static_cast<int64_t>(k) + 1, o_.categories[k], ""});
    }
    BoxGate gate(o_.bad_boxes);
    std::vector<std::unordered_map<int64_t, std::vector<size_t>>> by_image;
    for (const auto& s : srcs) by_image.push_back(s.ds.AnnotationsByImage());
    for (size_t i = 0; i < kept.size(); ++i) {
      if (!linked[i]) {
        std::string with = dropped_with(kept[i]->src, srcs[kept[i]->src].ds.images[kept[i]->img].id);
        if (!with.empty()) ctx.Problem(kept[i]->name, "not linked, so dropped" + with);
        continue;
      }
      const Candidate& c = *kept[i];
      const Loaded& s = srcs[c.src];
      Image img = s.ds.images[c.img];
      const int64_t old_id = img.id;
      img.id = static_cast<int64_t>(out.images.size()) + 1;
      img.file_name = c.out_rel;
      if (!s.source.empty()) img.source = s.source;
      if (img.source.empty()) img.source = s.label;
      std::string stem = RoboflowStem(fs::path(s.ds.images[c.img].file_name).filename().string());
      if (!stem.empty()) {
        img.attributes["group"] = s.prefix + stem;
        if (o_.patient_from_group && img.patient_id.empty()) {
          img.patient_id = s.prefix + stem;
          ctx.Count("patient_from_group");
        }
      }
      if (auto it = by_image[c.src].find(old_id); it != by_image[c.src].end()) {
        for (size_t k : it->second) {
          const Annotation& a = s.ds.annotations[k];
          auto cat = s.cat_to_out.find(a.category_id);
          if (cat == s.cat_to_out.end()) {
            ctx.Count("annotations_dropped");
            continue;
          }
          Annotation na = a;
          if (!gate.Admit(ctx, c.name, &na, img.width, img.height)) continue;
          na.category_id = cat->second;
          out.AddAnnotation(std::move(na), img.id);
        }
      }
      ctx.Count("images." + s.label);
      out.images.push_back(std::move(img));
    }
    ctx.Count("images", static_cast<int64_t>(out.images.size()));
    ctx.Count("annotations", static_cast<int64_t>(out.annotations.size()));
    MEDPIPE_RETURN_IF_ERROR(gate.Finish());
    return ctx.WriteDataset(out);
  }

 private:
  // Stage inputs first, in input order, then `sources` as written.
  Result<std::vector<Loaded>> Load(StageContext& ctx) const {
    std::vector<Loaded> srcs;
    for (size_t i = 0; i < ctx.inputs().size(); ++i) {
      const InputArtifact& in = ctx.inputs()[i];
      Loaded l;
      l.label = in.id;
      if (auto it = o_.input_prefixes.find(in.id); it != o_.input_prefixes.end()) l.prefix = it->second;
      if (auto it = o_.input_sources.find(in.id); it != o_.input_sources.end()) l.source = it->second;
      l.base = in.dir;
      MEDPIPE_ASSIGN_OR_RETURN(l.ds, ctx.ReadInputDataset(i));
      srcs.push_back(std::move(l));
    }
    for (const auto& s : o_.sources) {
      Loaded l;
      l.label = s.label;
      l.prefix = s.prefix;
      l.source = s.source;
      l.base = BaseDir(s);
      const bool roboflow = Resolve(s) == Format::kRoboflow;
      Result<Dataset> ds = roboflow ? ReadRoboflow(s.path) : ReadCoco(s.path);
      if (!ds.ok()) return Status::Failed(fmt::format("source {}: {}", s.label, ds.status().message()));
      l.ds = std::move(ds).value();
      if (roboflow) MEDPIPE_RETURN_IF_ERROR(ReportUnlisted(ctx, s.label, s.path, l.ds));
      srcs.push_back(std::move(l));
    }
    return srcs;
  }

  // Fills each source's category id -> output id. A map entry wins, then a
  // name equal to a target; Roboflow's id-0 parent is dropped silently;
  // anything else is unmapped: an error listing them all, or dropped.
  Status PlanCategories(StageContext& ctx, std::vector<Loaded>& srcs) const {
    std::map<std::string, int64_t> target;
    for (size_t k = 0; k < o_.categories.size(); ++k) target[o_.categories[k]] = static_cast<int64_t>(k) + 1;
    std::vector<std::string> unmapped;
    std::set<int64_t> reached;                                // targets some source category maps to
    std::vector<std::pair<std::string, std::string>> spare;  // (source label, name) of unmapped categories
    for (auto& s : srcs) {
      std::unordered_map<int64_t, int64_t> uses;
      for (const auto& a : s.ds.annotations) ++uses[a.category_id];
      for (const auto& c : s.ds.categories) {
        auto m = o_.category_map.find(c.name);
        const std::string& to = m != o_.category_map.end() ? m->second : c.name;
        if (auto t = target.find(to); t != target.end()) {
          s.cat_to_out[c.id] = t->second;
          reached.insert(t->second);
          if (to != c.name) ctx.Count("categories_remapped");
          continue;
        }
        if (IsRoboflowParent(c, s.ds.categories)) {
          ctx.Count("roboflow_parent_annotations", uses[c.id]);
          continue;
        }
        unmapped.push_back(fmt::format("{}: {}", s.label, c.name));
        spare.emplace_back(s.label, c.name);
        if (o_.drop_unmapped) {
          std::string close = ClosestName(c.name, o_.categories);
          ctx.Problem(fmt::format("{}: category '{}'", s.label, c.name),
                      fmt::format("not mapped to a target category; {} annotation(s) dropped{}", uses[c.id],
                                  close.empty() ? "" : " (closest target: '" + close + "'; map it in category_map)"));
          ctx.Count("categories_dropped");
        }
      }
    }
    // A target nothing maps to ends up with no annotations: most often a typo
    // in `categories` or `category_map`, so name the closest unmapped source
    // category (or, failing that, any source category).
    std::vector<std::string> spare_names, all_names;
    for (const auto& [label, name] : spare) spare_names.push_back(name);
    for (const auto& s : srcs) {
      for (const auto& c : s.ds.categories) all_names.push_back(c.name);
    }
    for (size_t k = 0; k < o_.categories.size(); ++k) {
      if (reached.count(static_cast<int64_t>(k) + 1)) continue;
      std::string close = ClosestName(o_.categories[k], spare_names);
      if (close.empty()) close = ClosestName(o_.categories[k], all_names);
      ctx.Problem(fmt::format("category '{}'", o_.categories[k]),
                  "no source category maps to this target, so it has no annotations" +
                      (close.empty() ? std::string() : " (did you mean '" + close + "'?)"));
      ctx.Count("target_categories_unused");
    }
    if (!unmapped.empty() && !o_.drop_unmapped) {
      return Status::Failed(fmt::format("categories not mapped to any of [{}]: {} (add them to category_map, or set "
                                        "unmapped: drop)",
                                        Join(o_.categories, ", "), Join(unmapped, ", ")));
    }
    return Status::OK();
  }

  // Images with a safe file_name and an output name not taken by an earlier one.
  std::vector<Candidate> Candidates(StageContext& ctx, const std::vector<Loaded>& srcs,
                                    const std::function<std::string(size_t, int64_t)>& dropped_with) const {
    std::vector<Candidate> cands;
    std::unordered_map<std::string, std::string> taken;  // out_rel -> who took it
    for (size_t si = 0; si < srcs.size(); ++si) {
      const Loaded& s = srcs[si];
      for (size_t ii = 0; ii < s.ds.images.size(); ++ii) {
        const Image& img = s.ds.images[ii];
        std::string name = s.label + ":" + img.file_name;
        if (!IsContainedRelativePath(img.file_name)) {
          ctx.Problem(name, "file_name leaves the dataset folder; image skipped" + dropped_with(si, img.id));
          ctx.Count("unsafe_file_names");
          continue;
        }
        std::string out_rel = "images/" + s.prefix + fs::path(img.file_name).filename().string();
        auto [it, inserted] = taken.emplace(out_rel, name);
        if (!inserted) {
          ctx.Problem(name, fmt::format("output name {} is already taken by {}; image dropped{}", out_rel, it->second,
                                        dropped_with(si, img.id)));
          ctx.Count("name_collisions");
          continue;
        }
        cands.push_back(Candidate{si, ii, out_rel, s.base / img.file_name, std::move(name)});
      }
    }
    return cands;
  }

  MergeOptions o_;
};

// A prefix becomes part of a file name in images/: no folders, no "..".
bool SafePrefix(const std::string& p) {
  return p.find('/') == std::string::npos && p != "." && p != ".." && IsContainedRelativePath("images/" + p + "x");
}

Result<std::vector<SourceSpec>> ParseSources(const Params& p, const fs::path& base) {
  std::vector<SourceSpec> out;
  if (!p.Has("sources")) return out;
  static const std::vector<std::string> kKeys = {"path", "prefix", "source", "format"};
  YAML::Node list = p.GetObject("sources");
  if (!list.IsSequence()) return p.Error("sources", "expected a list of {path, prefix, source, format}");
  for (size_t k = 0; k < list.size(); ++k) {
    const YAML::Node item = list[k];
    std::string at = fmt::format("sources[{}]", k);
    if (!item.IsMap()) return p.Error("sources", at + ": expected a mapping with path, prefix, source, format");
    std::map<std::string, std::string> v;
    for (const auto& kv : item) {
      std::string key = kv.first.Scalar();
      if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
        std::string hint = ClosestName(key, kKeys);
        return p.Error("sources", fmt::format("{}: unknown key '{}'{}", at, key,
                                              hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
      }
      if (!kv.second.IsScalar()) return p.Error("sources", fmt::format("{}.{}: expected a string", at, key));
      v[key] = kv.second.Scalar();
    }
    SourceSpec s;
    if (v["path"].empty()) return p.Error("sources", at + ": needs a path (a COCO file or a Roboflow export folder)");
    s.path = fs::path(v["path"]).is_relative() ? base / v["path"] : fs::path(v["path"]);
    s.path = s.path.lexically_normal();
    if (!s.path.has_filename()) s.path = s.path.parent_path();  // "dir/" -> "dir"
    s.prefix = v["prefix"];
    if (!SafePrefix(s.prefix)) return p.Error("sources", fmt::format("{}: prefix '{}' must be a plain name part", at, s.prefix));
    s.source = v["source"];
    const std::string fmt_name = v.count("format") ? v["format"] : "auto";
    if (fmt_name == "coco") s.format = Format::kCoco;
    else if (fmt_name == "roboflow") s.format = Format::kRoboflow;
    else if (fmt_name != "auto") {
      return p.Error("sources", fmt::format("{}.format: '{}' is not one of: auto, coco, roboflow", at, fmt_name));
    }
    s.label = !s.source.empty() ? s.source : s.path.filename().string();
    out.push_back(std::move(s));
  }
  return out;
}

// A map param keyed by stage id: every key must be one of the stage's inputs.
Result<std::map<std::string, std::string>> InputMap(const Params& p, const std::string& name, const StageDecl& d) {
  std::map<std::string, std::string> out;
  for (const auto& [id, value] : p.GetStringMap(name)) {
    if (std::find(d.inputs.begin(), d.inputs.end(), id) == d.inputs.end()) {
      return p.Error(name, fmt::format("'{}' is not an input of this stage (inputs: {})", id,
                                       d.inputs.empty() ? "none" : Join(d.inputs, ", ")));
    }
    if (!out.emplace(id, value).second) return p.Error(name, fmt::format("'{}' is listed twice", id));
  }
  return out;
}

Result<std::unique_ptr<Stage>> MakeMerge(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  MergeOptions o;
  // Relative source paths start at the pipeline file's folder, as the
  // parser resolves kPath params (d.loc.file is the file as given).
  const fs::path base = fs::absolute(fs::path(d.loc.file)).parent_path();
  MEDPIPE_ASSIGN_OR_RETURN(o.sources, ParseSources(p, base));
  if (o.sources.empty() && d.inputs.empty()) {
    return p.Error("sources", "merge needs stage inputs or external sources (or both)");
  }
  MEDPIPE_ASSIGN_OR_RETURN(o.input_prefixes, InputMap(p, "input_prefixes", d));
  for (const auto& [id, prefix] : o.input_prefixes) {
    if (!SafePrefix(prefix)) return p.Error("input_prefixes", fmt::format("prefix '{}' must be a plain name part", prefix));
  }
  MEDPIPE_ASSIGN_OR_RETURN(o.input_sources, InputMap(p, "input_sources", d));

  o.categories = p.GetStringList("categories");
  if (o.categories.empty()) return p.Error("categories", "name at least one target category");
  std::set<std::string> targets(o.categories.begin(), o.categories.end());
  if (targets.size() != o.categories.size()) return p.Error("categories", "a category is listed twice");
  for (const auto& [from, to] : p.GetStringMap("category_map")) {
    if (!targets.count(to)) {
      return p.Error("category_map", fmt::format("'{}' maps to '{}', which is not in categories ({})", from, to,
                                                 Join(o.categories, ", ")));
    }
    if (!o.category_map.emplace(from, to).second) {
      return p.Error("category_map", fmt::format("'{}' is mapped twice", from));
    }
  }
  o.drop_unmapped = p.GetString("unmapped") == "drop";
  o.patient_from_group = p.GetBool("patient_from_group");
  o.bad_boxes = BadBoxesOf(p);
  return std::unique_ptr<Stage>(new MergeStage(std::move(o)));
}

}  // namespace

void RegisterMerge(Registry* registry) {
  KindSpec spec;
  spec.name = "merge";
  spec.version = 1;
  spec.help = "merge COCO datasets and Roboflow exports under file-name prefixes; categories remapped by name, "
              "duplicates kept once, images linked not copied";
  spec.min_inputs = 0;
  spec.max_inputs = -1;
  spec.nested_paths = {{"sources", "path"}};
  spec.params = {
      {"sources", ParamType::kObject, "", false,
       "external datasets, merged after the inputs: a list of {path, prefix, source, format: auto|coco|roboflow}; "
       "path is a COCO file or a Roboflow export folder, relative to the pipeline file", {}},
      {"input_prefixes", ParamType::kStringMap, "", false, "stage input id -> file-name prefix (default none)", {}},
      {"input_sources", ParamType::kStringMap, "", false,
       "stage input id -> source tag (default: the image's own source, else the input id)", {}},
      {"categories", ParamType::kStringList, "", true, "target category names, numbered 1..n in this order", {}},
      {"category_map", ParamType::kStringMap, "", false,
       "source category name -> target name; a name equal to a target maps to itself", {}},
      {"unmapped", ParamType::kString, "error", false,
       "categories neither mapped nor targets: error (fail, listing them) or drop their annotations",
       {"error", "drop"}},
      {"patient_from_group", ParamType::kBool, "false", false,
       "images without a patient id take their Roboflow group (<prefix><stem>) as patient id; off by default: "
       "the group is an upload, not a patient (split's patient_pattern finds the patient in the name)", {}},
      BadBoxesParam(),
  };
  registry->Add(StageKind{std::move(spec), MakeMerge});
}

}  // namespace medpipe
