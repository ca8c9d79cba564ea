// analyze: the numbers users check after every build of a dataset, per split
// and in total: images, patients, negatives and their share, images and boxes
// per class, augmented images (those with an origin), and sources.
//
// Writes analysis.json (the numbers) and analysis.txt (the same as a table,
// splits as columns, for people and the run log). Splits are listed train,
// valid, test, then any other split names sorted, then "unsplit" for images
// with no split; "total" last. Counters: images, patients, negatives,
// augmented, and images_<split> / negatives_<split> per split. The stage only
// reads; it writes no dataset.json.
#include <fmt/format.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "dataset/coco_io.h"
#include "stages/registry.h"

namespace medpipe {
namespace {

struct SplitStats {
  int64_t images = 0;
  std::set<std::string> patients;
  int64_t images_without_patient = 0;
  int64_t negatives = 0;
  int64_t augmented = 0;
  int64_t boxes = 0;
  std::vector<int64_t> images_per_class;  // indexed like Dataset::categories
  std::vector<int64_t> boxes_per_class;
  std::map<std::string, int64_t> sources;

  explicit SplitStats(size_t categories) : images_per_class(categories), boxes_per_class(categories) {}
  double NegativeShare() const { return images == 0 ? 0.0 : static_cast<double>(negatives) / images; }
};

constexpr const char* kUnsplit = "unsplit";

// Split names in report order: the Roboflow three, other names, "unsplit".
std::vector<std::string> SplitOrder(const Dataset& ds) {
  std::set<std::string> present, other;
  for (const auto& img : ds.images) present.insert(img.split.empty() ? kUnsplit : img.split);
  std::vector<std::string> out;
  for (std::string_view s : kSplitNames) {
    if (present.count(std::string(s))) out.emplace_back(s);
  }
  for (const auto& s : present) {
    if (s != kUnsplit && std::find(out.begin(), out.end(), s) == out.end()) other.insert(s);
  }
  out.insert(out.end(), other.begin(), other.end());
  if (present.count(kUnsplit)) out.push_back(kUnsplit);
  return out;
}

void Add(SplitStats& s, const Image& img, const std::vector<size_t>& category_counts_of_image) {
  s.images++;
  if (img.patient_id.empty()) {
    s.images_without_patient++;
  } else {
    s.patients.insert(img.patient_id);
  }
  if (!img.origin.empty()) s.augmented++;
  s.sources[img.source.empty() ? "(none)" : img.source]++;
  int64_t boxes = 0;
  for (size_t c = 0; c < category_counts_of_image.size(); ++c) {
    const auto n = static_cast<int64_t>(category_counts_of_image[c]);
    boxes += n;
    s.boxes_per_class[c] += n;
    if (n > 0) s.images_per_class[c]++;
  }
  s.boxes += boxes;
  if (boxes == 0) s.negatives++;
}

void WriteSplit(rapidjson::PrettyWriter<rapidjson::StringBuffer>& w, const Dataset& ds, const SplitStats& s) {
  w.StartObject();
  w.Key("images"), w.Int64(s.images);
  w.Key("patients"), w.Int64(static_cast<int64_t>(s.patients.size()));
  w.Key("images_without_patient"), w.Int64(s.images_without_patient);
  w.Key("negatives"), w.Int64(s.negatives);
  w.Key("negative_share"), w.Double(s.NegativeShare());
  w.Key("augmented"), w.Int64(s.augmented);
  w.Key("boxes"), w.Int64(s.boxes);
  w.Key("images_per_class"), w.StartObject();
  for (size_t c = 0; c < ds.categories.size(); ++c) w.Key(ds.categories[c].name.c_str()), w.Int64(s.images_per_class[c]);
  w.EndObject();
  w.Key("boxes_per_class"), w.StartObject();
  for (size_t c = 0; c < ds.categories.size(); ++c) w.Key(ds.categories[c].name.c_str()), w.Int64(s.boxes_per_class[c]);
  w.EndObject();
  w.Key("sources"), w.StartObject();
  for (const auto& [name, n] : s.sources) w.Key(name.c_str()), w.Int64(n);
  w.EndObject();
  w.EndObject();
}

// A table with one row per number and one column per split.
std::string RenderTable(const Dataset& ds, const std::vector<std::string>& names, const std::vector<SplitStats>& stats) {
  std::vector<std::pair<std::string, std::vector<std::string>>> rows;
  auto row = [&](std::string label, auto cell) {
    std::vector<std::string> cells;
    for (const auto& s : stats) cells.push_back(cell(s));
    rows.emplace_back(std::move(label), std::move(cells));
  };
  auto num = [](int64_t v) { return std::to_string(v); };
  row("images", [&](const SplitStats& s) { return num(s.images); });
  row("patients", [&](const SplitStats& s) { return num(static_cast<int64_t>(s.patients.size())); });
  row("negatives", [&](const SplitStats& s) { return num(s.negatives); });
  row("negative share", [&](const SplitStats& s) { return fmt::format("{:.1f}%", 100.0 * s.NegativeShare()); });
  row("augmented", [&](const SplitStats& s) { return num(s.augmented); });
  row("boxes", [&](const SplitStats& s) { return num(s.boxes); });
  for (size_t c = 0; c < ds.categories.size(); ++c) {
    row("images " + ds.categories[c].name, [&](const SplitStats& s) { return num(s.images_per_class[c]); });
  }
  for (size_t c = 0; c < ds.categories.size(); ++c) {
    row("boxes " + ds.categories[c].name, [&](const SplitStats& s) { return num(s.boxes_per_class[c]); });
  }
  std::set<std::string> sources;
  for (const auto& s : stats) {
    for (const auto& [name, n] : s.sources) sources.insert(name);
  }
  for (const auto& src : sources) {
    row("source " + src, [&](const SplitStats& s) {
      auto it = s.sources.find(src);
      return num(it == s.sources.end() ? 0 : it->second);
    });
  }
  size_t label_width = 0;
  for (const auto& r : rows) label_width = std::max(label_width, r.first.size());
  std::vector<size_t> widths;
  for (size_t k = 0; k < names.size(); ++k) {
    size_t wdt = std::max<size_t>(names[k].size(), 6);
    for (const auto& r : rows) wdt = std::max(wdt, r.second[k].size());
    widths.push_back(wdt);
  }
  std::string out = fmt::format("{:<{}}", "", label_width);
  for (size_t k = 0; k < names.size(); ++k) out += fmt::format("  {:>{}}", names[k], widths[k]);
  out += "\n";
  for (const auto& [label, cells] : rows) {
    out += fmt::format("{:<{}}", label, label_width);
    for (size_t k = 0; k < cells.size(); ++k) out += fmt::format("  {:>{}}", cells[k], widths[k]);
    out += "\n";
  }
  return out;
}

class AnalyzeStage : public Stage {
 public:
  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset ds, ctx.ReadInputDataset(0));
    std::unordered_map<int64_t, size_t> category_index;
    for (size_t c = 0; c < ds.categories.size(); ++c) category_index.emplace(ds.categories[c].id, c);
    auto by_image = ds.AnnotationsByImage();

    const std::vector<std::string> names = SplitOrder(ds);
    std::vector<SplitStats> stats(names.size() + 1, SplitStats(ds.categories.size()));  // last: total
    std::vector<size_t> counts(ds.categories.size());
    int64_t undefined = 0;
    for (const auto& img : ds.images) {
      std::fill(counts.begin(), counts.end(), 0);
      if (auto it = by_image.find(img.id); it != by_image.end()) {
        for (size_t k : it->second) {
          auto c = category_index.find(ds.annotations[k].category_id);
          if (c == category_index.end()) {
            undefined++;  // validate reports these; here they are not a class
            continue;
          }
          counts[c->second]++;
        }
      }
      const std::string split = img.split.empty() ? kUnsplit : img.split;
      size_t s = static_cast<size_t>(std::find(names.begin(), names.end(), split) - names.begin());
      Add(stats[s], img, counts);
      Add(stats.back(), img, counts);
    }

    rapidjson::StringBuffer buf;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
    w.SetIndent(' ', 2);
    w.StartObject();
    w.Key("categories"), w.StartArray();
    for (const auto& c : ds.categories) w.String(c.name.c_str());
    w.EndArray();
    w.Key("annotations_with_undefined_category"), w.Int64(undefined);
    w.Key("splits"), w.StartObject();
    for (size_t s = 0; s < names.size(); ++s) {
      w.Key(names[s].c_str());
      WriteSplit(w, ds, stats[s]);
    }
    w.EndObject();
    w.Key("total");
    WriteSplit(w, ds, stats.back());
    w.EndObject();
    MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("analysis.json", std::string(buf.GetString(), buf.GetSize()) + "\n"));

    std::vector<std::string> columns = names;
    columns.push_back("total");
    const std::string table = RenderTable(ds, columns, stats);
    MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("analysis.txt", table));
    ctx.Log(table);

    const SplitStats& total = stats.back();
    // A class with no box anywhere is most often a typo upstream (a merge
    // target no source maps to): said, not only shown as a row of zeros.
    for (size_t c = 0; c < ds.categories.size(); ++c) {
      if (total.boxes_per_class[c] > 0) continue;
      ctx.Problem("category '" + ds.categories[c].name + "'", "no annotations in any split");
      ctx.Count("categories_without_annotations");
    }
    if (undefined > 0) {
      ctx.Problem("annotations", fmt::format("{} annotation(s) with a category id the dataset does not define; not "
                                             "counted in any class",
                                             undefined));
      ctx.Count("annotations_with_undefined_category", undefined);
    }
    ctx.Count("images", total.images);
    ctx.Count("patients", static_cast<int64_t>(total.patients.size()));
    ctx.Count("negatives", total.negatives);
    ctx.Count("augmented", total.augmented);
    for (size_t s = 0; s < names.size(); ++s) {
      ctx.Count("images_" + names[s], stats[s].images);
      ctx.Count("negatives_" + names[s], stats[s].negatives);
    }
    return Status::OK();
  }
};

}  // namespace

void RegisterAnalyze(Registry* registry) {
  KindSpec spec;
  spec.name = "analyze";
  spec.version = 1;
  spec.help =
      "per split and in total: images, patients, negatives and their share, images and boxes per class, augmented "
      "images, sources; analysis.json and a table in analysis.txt";
  spec.min_inputs = 1;
  spec.max_inputs = 1;
  registry->Add(StageKind{std::move(spec), [](const StageDecl&, uint64_t) -> Result<std::unique_ptr<Stage>> {
                            return std::unique_ptr<Stage>(new AnalyzeStage);
                          }});
}

}  // namespace medpipe
