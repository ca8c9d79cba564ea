// filter: keep a subset of categories (e.g. the 6 hemorrhage classes down to
// IPH, IVH, SAH, SDH). Images whose boxes all go are dropped by default: an
// image whose only bleed was an EDH is not a normal scan, and keeping it as a
// negative would teach a bleed as normal and tip the splits' balance
// (`emptied_images: keep` keeps them, for who asks). Per split the negative
// share after filtering is counted (<split>.negative_share_bp) and logged, as
// balance counts it; `negative_share: as_input` trims negatives back to the
// input's share (see TrimNegatives). Image files are symlinks to the input's,
// never copies.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_set>

#include "stages/link_images.h"
#include "stages/patient_groups.h"
#include "stages/registry.h"
#include "util/strings.h"

namespace medpipe {
namespace {

struct FilterOptions {
  std::vector<std::string> categories;
  bool drop_emptied = false;
  bool trim_negatives = false;  // negative_share: as_input
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
        // The image's kept annotations go with it: counted, not lost quietly.
        ctx.Problem(img.file_name, after == 0 ? std::string("file_name leaves the dataset folder; image skipped")
                                              : fmt::format("file_name leaves the dataset folder; image skipped with "
                                                            "its {} annotation(s)",
                                                            after));
        ctx.Count("unsafe_file_names");
        if (after > 0) ctx.Count("annotations_dropped", static_cast<int64_t>(after));
        continue;
      }
      kept.push_back(&img);
    }

    if (o_.trim_negatives) kept = TrimNegatives(ctx, in, by_image, cat_map, std::move(kept));

    std::vector<LinkSpec> links;
    links.reserve(kept.size());
    for (const Image* img : kept) links.push_back(LinkSpec{img->file_name, in_dir / img->file_name});
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links));

    for (size_t i = 0; i < kept.size(); ++i) {
      if (!linked[i]) {
        auto it = by_image.find(kept[i]->id);
        size_t n = 0;
        if (it != by_image.end()) {
          for (size_t k : it->second) n += cat_map.count(in.annotations[k].category_id);
        }
        if (n > 0) ctx.Count("annotations_dropped", static_cast<int64_t>(n));
        continue;
      }
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
          a.category_id = c->second;
          out.AddAnnotation(std::move(a), img.id);
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
  // negative_share: as_input. Dropping images whose boxes all went makes
  // each split's negative share rise above what balance made it; this drops
  // negatives per split, in a seeded order, until the share is back at most
  // at the input's. A source image and its augmented copies (origin.image)
  // go together, so no copy outlives its source; a unit larger than what is
  // left to drop is passed over for a smaller one.
  std::vector<const Image*> TrimNegatives(StageContext& ctx, const Dataset& in,
                                          const std::unordered_map<int64_t, std::vector<size_t>>& by_image,
                                          const std::map<int64_t, int64_t>& cat_map,
                                          std::vector<const Image*> kept) const {
    auto boxes = [&](const Image& img, bool mapped_only) {
      auto it = by_image.find(img.id);
      size_t n = 0;
      if (it == by_image.end()) return n;
      for (size_t k : it->second) n += !mapped_only || cat_map.count(in.annotations[k].category_id);
      return n;
    };
    struct Split {
      int64_t in_images = 0, in_negatives = 0, positives = 0, negatives = 0;
      std::map<std::string, std::vector<size_t>> units;  // root file name -> indices into kept
    };
    std::map<std::string, Split> splits;
    for (const Image& img : in.images) {
      Split& s = splits[img.split];
      ++s.in_images;
      s.in_negatives += boxes(img, false) == 0;
    }
    for (size_t i = 0; i < kept.size(); ++i) {
      Split& s = splits[kept[i]->split];
      if (boxes(*kept[i], true) > 0) {
        ++s.positives;
        continue;
      }
      ++s.negatives;
      s.units[kept[i]->origin.image.empty() ? kept[i]->file_name : kept[i]->origin.image].push_back(i);
    }
    std::vector<bool> drop(kept.size(), false);
    for (auto& [name, s] : splits) {
      if (s.in_images == 0 || s.in_negatives == s.in_images) continue;
      // The most negatives that keep the share at most in_negatives / in_images.
      const int64_t allowed = s.positives * s.in_negatives / (s.in_images - s.in_negatives);
      int64_t excess = s.negatives - allowed;
      if (excess <= 0) continue;
      std::vector<std::pair<uint64_t, const std::string*>> order;
      for (const auto& [root, members] : s.units) order.emplace_back(SeededHash(ctx.seed(), root), &root);
      std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first < b.first : *a.second < *b.second;
      });
      int64_t trimmed = 0;
      for (const auto& [hash, root] : order) {
        const std::vector<size_t>& members = s.units[*root];
        if (static_cast<int64_t>(members.size()) > excess) continue;
        for (size_t i : members) drop[i] = true;
        excess -= static_cast<int64_t>(members.size());
        trimmed += static_cast<int64_t>(members.size());
        if (excess == 0) break;
      }
      ctx.Count((name.empty() ? std::string("unsplit") : name) + ".negatives_trimmed", trimmed);
    }
    std::vector<const Image*> out;
    out.reserve(kept.size());
    for (size_t i = 0; i < kept.size(); ++i) {
      if (!drop[i]) out.push_back(kept[i]);
    }
    return out;
  }

  // Per split ("unsplit" for images without one): images, negatives
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
  o.trim_negatives = p.GetString("negative_share") == "as_input";
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
       {"keep", "drop"}},
      {"negative_share", ParamType::kString, "free", false,
       "free: negatives as they come; as_input: drop negatives (with their augmented copies, in a seeded order) "
       "so each split's negative share is at most the input's",
       {"free", "as_input"}},
      {"renumber", ParamType::kBool, "true", false, "number kept categories 1..n in the order listed", {}},
  };
  registry->Add(StageKind{std::move(spec), MakeFilter});
}

}  // namespace medpipe
