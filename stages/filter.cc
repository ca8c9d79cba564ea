// filter: keep a subset of categories (e.g. the 6 hemorrhage classes down to
// IPH, IVH, SAH, SDH). Images whose boxes all go are dropped by default: an
// image whose only bleed was an EDH is not a normal scan, and keeping it as a
// negative would teach a bleed as normal and tip the splits' balance
// (`emptied_images: keep` keeps them, for who asks). Per split the negative
// share after filtering is counted (<split>.negative_share_bp) and logged, as
// balance counts it. Image files are symlinks to the input's, never copies.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_set>

#include "stages/link_images.h"
#include "stages/registry.h"
#include "util/strings.h"

namespace medpipe {
namespace {

struct FilterOptions {
  std::vector<std::string> categories;
  bool drop_emptied = false;
  bool renumber = true;
};

class FilterStage : public Stage {
 public:
  explicit FilterStage(FilterOptions o) : o_(std::move(o)) {}

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset in, ctx.ReadInputDataset(0));
    const fs::path in_dir = ctx.inputs()[0].dir;

    // Category mapping: old id -> new id, in the order the params list them.
    std::map<int64_t, int64_t> cat_map;
    Dataset out;
    for (size_t k = 0; k < o_.categories.size(); ++k) {
      const Category* c = in.FindCategory(o_.categories[k]);
      if (!c) {
        std::vector<std::string> names;
        for (const auto& x : in.categories) names.push_back(x.name);
        return Status::Failed(fmt::format("category '{}' is not in input {} ({})", o_.categories[k],
                                          ctx.inputs()[0].id,
                                          names.empty() ? "it has no categories" : "it has: " + Join(names, ", ")));
      }
      Category nc = *c;
      if (o_.renumber) nc.id = static_cast<int64_t>(k) + 1;
      cat_map[c->id] = nc.id;
      out.categories.push_back(nc);
    }

    auto by_image = in.AnnotationsByImage();
    std::vector<const Image*> kept;
    for (const auto& img : in.images) {
      auto it = by_image.find(img.id);
      size_t before = it == by_image.end() ? 0 : it->second.size();
      size_t after = 0;
      if (it != by_image.end()) {
        for (size_t k : it->second) after += cat_map.count(in.annotations[k].category_id);
      }
      if (before > 0 && after == 0) {
        ctx.Count(o_.drop_emptied ? "images_dropped" : "images_now_negative");
        if (o_.drop_emptied) continue;
      }
      if (!IsContainedRelativePath(img.file_name)) {
        ctx.Problem(img.file_name, "file_name leaves the dataset folder; image skipped");
        ctx.Count("unsafe_file_names");
        continue;
      }
      kept.push_back(&img);
    }

    std::vector<LinkSpec> links;
    links.reserve(kept.size());
    for (const Image* img : kept) links.push_back(LinkSpec{img->file_name, in_dir / img->file_name});
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links));

    for (size_t i = 0; i < kept.size(); ++i) {
      if (!linked[i]) continue;
      Image img = *kept[i];
      int64_t old_id = img.id;
      img.id = static_cast<int64_t>(out.images.size()) + 1;
      if (auto it = by_image.find(old_id); it != by_image.end()) {
        for (size_t k : it->second) {
          auto c = cat_map.find(in.annotations[k].category_id);
          if (c == cat_map.end()) {
            ctx.Count("annotations_removed");
            continue;
          }
          Annotation a = in.annotations[k];
          a.id = static_cast<int64_t>(out.annotations.size()) + 1;
          a.image_id = img.id;
          a.category_id = c->second;
          out.annotations.push_back(std::move(a));
        }
      }
      out.images.push_back(std::move(img));
    }
    ctx.Count("images", static_cast<int64_t>(out.images.size()));
    ctx.Count("annotations", static_cast<int64_t>(out.annotations.size()));
    ReportNegativeShares(ctx, out);
    return ctx.WriteDataset(out);
  }

 private:
  // Per split (all images as "all" when none has a split): images, negatives
  // and the negative share in basis points, in counters and one log line.
  static void ReportNegativeShares(StageContext& ctx, const Dataset& out) {
    std::unordered_set<int64_t> with_boxes;
    for (const Annotation& a : out.annotations) with_boxes.insert(a.image_id);
    std::map<std::string, std::pair<int64_t, int64_t>> per_split;  // split -> (images, negatives)
    for (const Image& img : out.images) {
      auto& [images, negatives] = per_split[img.split.empty() ? std::string("unsplit") : img.split];
      ++images;
      negatives += with_boxes.count(img.id) ? 0 : 1;
    }
    std::vector<std::string> parts;
    for (const auto& [split, n] : per_split) {
      const int64_t bp = n.first ? (n.second * 10000 + n.first / 2) / n.first : 0;
      ctx.Count(split + ".images", n.first);
      ctx.Count(split + ".negatives", n.second);
      ctx.Count(split + ".negative_share_bp", bp);
      parts.push_back(fmt::format("{} {:.1f}% ({} of {})", split, static_cast<double>(bp) / 100, n.second, n.first));
    }
    if (!parts.empty()) ctx.Log("negatives after filtering: " + Join(parts, ", "));
  }

  FilterOptions o_;
};

Result<std::unique_ptr<Stage>> MakeFilter(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  FilterOptions o;
  o.categories = p.GetStringList("categories");
  if (o.categories.empty()) return p.Error("categories", "name at least one category to keep");
  std::vector<std::string> sorted = o.categories;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return p.Error("categories", "a category is listed twice");
  }
  o.drop_emptied = p.GetString("emptied_images") == "drop";
  o.renumber = p.GetBool("renumber");
  return std::unique_ptr<Stage>(new FilterStage(std::move(o)));
}

}  // namespace

void RegisterFilter(Registry* registry) {
  KindSpec spec;
  spec.name = "filter";
  spec.version = 1;
  spec.help = "keep a subset of categories; image files are links to the input's, not copies";
  spec.min_inputs = 1;
  spec.max_inputs = 1;
  spec.params = {
      {"categories", ParamType::kStringList, "", true, "category names to keep, in output order", {}},
      {"emptied_images", ParamType::kString, "drop", false,
       "images whose boxes were all removed: drop, or keep (as negatives, though they showed a finding)",
       {"drop", "keep"}},
      {"renumber", ParamType::kBool, "true", false, "number kept categories 1..n in the order listed", {}},
  };
  registry->Add(StageKind{std::move(spec), MakeFilter});
}

}  // namespace medpipe
