// split: patient-level train/valid/test split, or k folds for
// cross-validation, with no patient in two splits.
//
// Groups. Images are grouped by union-find over their patient id and their
// `group_attribute` (merge sets it on Roboflow's augmented copies of one
// source image), so one patient's images, and every image sharing a group
// with them, land in one split. An image without a patient id fails the stage
// unless `missing_patient` says otherwise (own_group: the image is its own
// patient; filename_regex: group 1 of `patient_pattern` on its file's base
// name, else its path, is the patient id, written into the output; the
// pattern also replaces a patient id that is only the image's group, as
// merge's patient_from_group writes).
//
// Assignment (what we do instead of Sechidis et al.'s per-label passes, which
// assume single examples rather than groups): every image counts once for
// each category it has a box of, and negatives (no boxes) count as a class of
// their own. Each bin (split or fold) has a target per class, share * class
// total, and a target for its image count, share * images. Groups are taken
// largest first (ties in an order drawn from a hash of (seed, group key)), and
// each goes to the bin where adding it increases the Pearson-style cost
// sum((count - target)^2 / target), over the group's classes and the image
// total, the least: in effect the bin furthest below its targets relative to
// their size, with a penalty for putting a big group into a small bin. Ratios
// are therefore shares of images, met to within a group's size; per-class
// shares follow the whole as closely as the groups allow.
//
// Keep (`keep: PATH`, see split_keep.h): a group holding a patient or group
// value of the earlier version is pinned to its bin and counted before the
// greedy pass, so new groups fill around the kept ones and bring the shares
// back toward the ratios; no kept patient moves unless this dataset joins two
// kept patients of different bins into one group (counted and listed).
//
// Fallbacks (images grouped by a Roboflow source name or alone rather than by
// a patient id) are counted and said in the run log and report.json.
//
// After assigning, every patient id and group value is checked to appear in
// one bin only; a violation fails the stage listing the ids.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <unordered_map>

#include "dataset/coco_io.h"
#include "stages/link_images.h"
#include "stages/patient_groups.h"
#include "stages/registry.h"
#include "stages/split_keep.h"
#include "util/strings.h"

namespace medpipe {

namespace {

enum class Missing { kError, kOwnGroup, kRegex };

struct SplitOptions {
  bool kfold = false;
  std::vector<std::pair<std::string, double>> ratios;  // holdout: bin name -> share of images
  int folds = 5;
  Missing missing = Missing::kError;
  std::regex patient_regex;
  std::string pattern;         // patient_pattern as written, for messages
  std::string group_attribute;
  fs::path keep;               // an earlier version's splits to keep; empty: none
};

struct Group {
  std::string key;                   // the first-seen patient/group key
  std::vector<size_t> images;        // indices into the kept images
  std::vector<std::pair<size_t, int>> classes;  // (class index, images), sparse
};

// Assigns each group a bin per the header comment. `shares` sum to 1.
// `fixed[g]` >= 0 pins group g to that bin (kept from an earlier version):
// pinned groups are counted first, so the free ones fill around them.
std::vector<int> AssignGroups(const std::vector<Group>& groups, const std::vector<int>& fixed,
                              const std::vector<double>& shares, size_t classes, uint64_t seed) {
  const size_t bins = shares.size();
  std::vector<double> class_total(classes, 0.0);
  double images = 0;
  for (const Group& g : groups) {
    images += static_cast<double>(g.images.size());
    for (auto [c, n] : g.classes) class_total[c] += n;
  }
  // count[b][c] for c < classes; count[b][classes] is the bin's image count.
  std::vector<std::vector<double>> count(bins, std::vector<double>(classes + 1, 0.0));
  auto target = [&](size_t b, size_t c) { return shares[b] * (c < classes ? class_total[c] : images); };

  std::vector<uint64_t> tie(groups.size());
  for (size_t i = 0; i < groups.size(); ++i) tie[i] = SeededHash(seed, groups[i].key);
  std::vector<size_t> order(groups.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (groups[a].images.size() != groups[b].images.size()) return groups[a].images.size() > groups[b].images.size();
    if (tie[a] != tie[b]) return tie[a] < tie[b];
    return groups[a].key < groups[b].key;
  });

  std::vector<int> bin_of(groups.size(), -1);
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    if (fixed[gi] < 0) continue;
    bin_of[gi] = fixed[gi];
    count[fixed[gi]][classes] += static_cast<double>(groups[gi].images.size());
    for (auto [c, n] : groups[gi].classes) count[fixed[gi]][c] += n;
  }
  for (size_t gi : order) {
    if (fixed[gi] >= 0) continue;
    const Group& g = groups[gi];
    const double size = static_cast<double>(g.images.size());
    int best = -1;
    double best_cost = std::numeric_limits<double>::infinity();
    for (size_t b = 0; b < bins; ++b) {
      if (shares[b] <= 0) continue;
      // Increase of (x - t)^2 / t when x grows by n: n * (2 (x - t) + n) / t.
      auto inc = [&](size_t c, double n) {
        double t = target(b, c);
        return n * (2 * (count[b][c] - t) + n) / t;
      };
      double cost = inc(classes, size);
      for (auto [c, n] : g.classes) cost += inc(c, n);
      if (cost < best_cost) best_cost = cost, best = static_cast<int>(b);
    }
    bin_of[gi] = best;
    count[best][classes] += size;
    for (auto [c, n] : g.classes) count[best][c] += n;
  }
  return bin_of;
}

class SplitStage : public Stage {
 public:
  explicit SplitStage(SplitOptions o) : o_(std::move(o)) {}

  // The keep source decides the output, so its content is fingerprinted.
  Result<std::string> ExternalFingerprint() const override {
    if (o_.keep.empty()) return std::string();
    return KeepFingerprint(o_.keep);
  }

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset in, ctx.ReadInputDataset(0));
    const fs::path in_dir = ctx.inputs()[0].dir;

    // Images whose file name would leave the folder are dropped, as filter does.
    std::vector<Image> images;
    images.reserve(in.images.size());
    for (const Image& img : in.images) {
      if (!IsContainedRelativePath(img.file_name)) {
        ctx.Problem(img.file_name, "file_name leaves the dataset folder; image skipped");
        ctx.Count("unsafe_file_names");
        continue;
      }
      images.push_back(img);
    }

    // Identities: patient id (or the fallback), and the group attribute.
    UnionFind uf;
    std::vector<uint32_t> node(images.size());
    std::vector<std::string> unresolved;
    int64_t by_group = 0, alone = 0, id_is_group = 0;
    for (size_t i = 0; i < images.size(); ++i) {
      Image& img = images[i];
      const std::string group = GroupOf(img);
      // merge's patient_from_group writes the Roboflow source name as patient
      // id: a patient id equal to the image's group is no patient id at all,
      // and a pattern on the file name, when configured, decides instead.
      const bool from_group = !img.patient_id.empty() && img.patient_id == group;
      if (img.patient_id.empty() || (from_group && o_.missing == Missing::kRegex)) {
        if (o_.missing == Missing::kRegex) {
          if (std::string id = PatternId(img.file_name); !id.empty()) {
            img.patient_id = std::move(id);
            ctx.Count("patient_from_pattern");
          }
        }
      }
      if (img.patient_id.empty()) {
        ctx.Count("missing_patient_id");
        if (o_.missing != Missing::kOwnGroup) unresolved.push_back(img.file_name);
        ++(group.empty() ? alone : by_group);
      } else if (img.patient_id == group) {
        ++id_is_group;
      }
      node[i] = img.patient_id.empty() ? uf.Node("image\x1f" + std::to_string(i))
                                       : uf.Node("patient\x1f" + img.patient_id);
      if (!group.empty()) uf.Union(node[i], uf.Node("group\x1f" + group));
    }
    if (!unresolved.empty()) {
      std::vector<std::string> shown(unresolved.begin(), unresolved.begin() + std::min<size_t>(unresolved.size(), 10));
      std::string list = Join(shown, ", ") + (unresolved.size() > shown.size() ? ", ..." : "");
      if (o_.missing == Missing::kRegex) {
        const std::string& first = unresolved.front();
        return Status::Failed(fmt::format(
            "{} image(s) have no patient id and patient_pattern '{}' matches neither their base name nor their "
            "path (tried on '{}' and '{}'): {}; fix patient_pattern, or set missing_patient: own_group to group "
            "them without patient ids",
            unresolved.size(), o_.pattern, fs::path(first).filename().string(), first, list));
      }
      return Status::Failed(fmt::format(
          "{} image(s) have no patient id: {}; set missing_patient to own_group or filename_regex", unresolved.size(),
          list));
    }
    ReportFallback(ctx, images.size(), by_group, alone, id_is_group);

    // Classes: categories in dataset order, then "negative".
    std::unordered_map<int64_t, size_t> class_of;
    for (size_t c = 0; c < in.categories.size(); ++c) class_of.emplace(in.categories[c].id, c);
    const size_t negative = in.categories.size();
    auto by_image = in.AnnotationsByImage();
    std::vector<std::vector<size_t>> image_classes(images.size());
    for (size_t i = 0; i < images.size(); ++i) {
      auto it = by_image.find(images[i].id);
      if (it == by_image.end() || it->second.empty()) {
        image_classes[i] = {negative};
        continue;
      }
      for (size_t k : it->second) {
        auto c = class_of.find(in.annotations[k].category_id);
        if (c != class_of.end()) image_classes[i].push_back(c->second);
      }
      std::sort(image_classes[i].begin(), image_classes[i].end());
      image_classes[i].erase(std::unique(image_classes[i].begin(), image_classes[i].end()), image_classes[i].end());
    }

    // Groups in order of first appearance.
    std::vector<Group> groups;
    std::unordered_map<uint32_t, size_t> group_of_root;
    std::vector<size_t> group_of_image(images.size());
    for (size_t i = 0; i < images.size(); ++i) {
      uint32_t root = uf.Find(node[i]);
      auto [it, inserted] = group_of_root.try_emplace(root, groups.size());
      if (inserted) groups.push_back(Group{uf.Key(root), {}, {}});
      group_of_image[i] = it->second;
      groups[it->second].images.push_back(i);
    }
    for (Group& g : groups) {
      std::map<size_t, int> n;
      for (size_t i : g.images) {
        for (size_t c : image_classes[i]) ++n[c];
      }
      g.classes.assign(n.begin(), n.end());
    }

    std::vector<std::string> bin_names;
    std::vector<double> shares;
    if (o_.kfold) {
      for (int k = 0; k < o_.folds; ++k) {
        bin_names.push_back(fmt::format("fold{}", k));
        shares.push_back(1.0 / o_.folds);
      }
    } else {
      for (const auto& [name, share] : o_.ratios) bin_names.push_back(name), shares.push_back(share);
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<int> fixed, PinKept(ctx, images, groups, bin_names));
    std::vector<int> bin_of_group = AssignGroups(groups, fixed, shares, negative + 1, ctx.seed());

    std::vector<std::string> bins(images.size());
    for (size_t i = 0; i < images.size(); ++i) {
      int b = bin_of_group[group_of_image[i]];
      bins[i] = bin_names[b];
      if (o_.kfold) {
        images[i].split = "train";
        images[i].attributes["fold"] = int64_t{b};
      } else {
        images[i].split = bin_names[b];
      }
    }

    // The leakage check runs on the output itself, not on the groups it came
    // from, so a bug in the grouping cannot pass unnoticed.
    Dataset out;
    out.categories = in.categories;
    out.images = std::move(images);
    if (std::vector<std::string> leaks = FindPatientLeaks(out, bins, o_.group_attribute); !leaks.empty()) {
      return Status::Failed(fmt::format("patient leakage between {}: {}", o_.kfold ? "folds" : "splits",
                                        Join(leaks, "; ")));
    }

    std::vector<LinkSpec> links;
    links.reserve(out.images.size());
    for (const Image& img : out.images) links.push_back(LinkSpec{img.file_name, in_dir / img.file_name});
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links));

    // Keep linked images (ids unchanged) and their annotations; count per bin.
    std::vector<Image> kept;
    kept.reserve(out.images.size());
    std::unordered_map<int64_t, bool> kept_ids;
    std::vector<std::set<std::string>> patients(bin_names.size());
    std::vector<std::set<size_t>> bin_groups(bin_names.size());
    std::vector<std::vector<int64_t>> per_class(bin_names.size(), std::vector<int64_t>(negative + 1, 0));
    std::vector<int64_t> per_bin(bin_names.size(), 0);
    for (size_t i = 0; i < out.images.size(); ++i) {
      if (!linked[i]) continue;
      size_t b = static_cast<size_t>(bin_of_group[group_of_image[i]]);
      ++per_bin[b];
      if (!out.images[i].patient_id.empty()) patients[b].insert(out.images[i].patient_id);
      bin_groups[b].insert(group_of_image[i]);
      for (size_t c : image_classes[i]) ++per_class[b][c];
      kept_ids[out.images[i].id] = true;
      kept.push_back(std::move(out.images[i]));
    }
    out.images = std::move(kept);
    for (const Annotation& a : in.annotations) {
      if (kept_ids.count(a.image_id)) out.annotations.push_back(a);
    }

    ctx.Count("images", static_cast<int64_t>(out.images.size()));
    ctx.Count("groups", static_cast<int64_t>(groups.size()));
    for (size_t b = 0; b < bin_names.size(); ++b) {
      const std::string& s = bin_names[b];
      ctx.Count(s + ".images", per_bin[b]);
      ctx.Count(s + ".patients", static_cast<int64_t>(patients[b].size()));
      ctx.Count(s + ".groups", static_cast<int64_t>(bin_groups[b].size()));
      ctx.Count(s + ".negatives", per_class[b][negative]);
      for (size_t c = 0; c < negative; ++c) ctx.Count(s + ".class." + in.categories[c].name, per_class[b][c]);
    }
    return ctx.WriteDataset(out);
  }

 private:
  // Per group, the bin an earlier version put its patients (or group values)
  // in, or -1 for a group that is new. A group that joins keys of two kept
  // bins (new data linked two old patients) goes to the bin of its first
  // image's key; the others are counted and listed as moved.
  Result<std::vector<int>> PinKept(StageContext& ctx, const std::vector<Image>& images, const std::vector<Group>& groups,
                                   const std::vector<std::string>& bin_names) const {
    std::vector<int> fixed(groups.size(), -1);
    if (o_.keep.empty()) return fixed;
    MEDPIPE_ASSIGN_OR_RETURN(KeptSplits kept, ReadKeptSplits(o_.keep, o_.kfold, o_.group_attribute));
    std::map<std::string, int> index;
    for (size_t b = 0; b < bin_names.size(); ++b) index[bin_names[b]] = static_cast<int>(b);
    std::set<std::string> unknown;
    for (const auto& [key, bin] : kept.bin_of) {
      if (!index.count(bin)) unknown.insert(bin);
    }
    if (!unknown.empty()) {
      return Status::Failed(fmt::format("keep: {} puts patients in {} '{}', which this stage does not make ({})",
                                        o_.keep.string(), o_.kfold ? "fold" : "split",
                                        Join(std::vector<std::string>(unknown.begin(), unknown.end()), "', '"),
                                        Join(bin_names, ", ")));
    }
    std::set<std::string> kept_patients, moved_patients, new_patients;
    int64_t kept_images = 0;
    for (size_t g = 0; g < groups.size(); ++g) {
      std::vector<std::pair<std::string, int>> found;  // key -> kept bin, in image order
      for (size_t i : groups[g].images) {
        const std::string group = GroupOf(images[i]);
        for (const std::string& key : {images[i].patient_id.empty() ? std::string() : "patient\x1f" + images[i].patient_id,
                                       group.empty() ? std::string() : "group\x1f" + group}) {
          auto it = key.empty() ? kept.bin_of.end() : kept.bin_of.find(key);
          if (it != kept.bin_of.end()) found.emplace_back(key, index[it->second]);
        }
      }
      if (!found.empty()) {
        fixed[g] = found.front().second;
        kept_images += static_cast<int64_t>(groups[g].images.size());
      }
      for (const auto& [key, b] : found) {
        const bool patient = key.rfind("patient\x1f", 0) == 0;
        const std::string name = key.substr(key.find('\x1f') + 1);
        if (b == fixed[g]) {
          if (patient) kept_patients.insert(name);
          continue;
        }
        if (patient && !moved_patients.insert(name).second) continue;
        ctx.Problem((patient ? "patient " : "group ") + name,
                    fmt::format("kept in {} by {}, but this dataset joins it to {} of {}: moved", bin_names[b],
                                o_.keep.string(), found.front().first.substr(found.front().first.find('\x1f') + 1),
                                bin_names[fixed[g]]));
      }
      for (size_t i : groups[g].images) {
        const std::string& id = images[i].patient_id;
        if (!id.empty() && !kept.bin_of.count("patient\x1f" + id)) new_patients.insert(id);
      }
    }
    for (const std::string& id : moved_patients) kept_patients.erase(id);
    ctx.Count("keep.patients_kept", static_cast<int64_t>(kept_patients.size()));
    ctx.Count("keep.patients_new", static_cast<int64_t>(new_patients.size()));
    ctx.Count("keep.patients_moved", static_cast<int64_t>(moved_patients.size()));
    ctx.Count("keep.images_pinned", kept_images);
    ctx.Log(fmt::format("keep {}: {} patient(s) kept in their {}, {} new, {} moved", o_.keep.string(),
                        kept_patients.size(), o_.kfold ? "fold" : "split", new_patients.size(),
                        moved_patients.size()));
    return fixed;
  }

  std::string GroupOf(const Image& img) const {
    if (o_.group_attribute.empty()) return std::string();
    auto it = img.attributes.find(o_.group_attribute);
    return it == img.attributes.end() ? std::string() : AttrToString(it->second);
  }

  std::string PatternId(const std::string& file_name) const { return PatientFromName(file_name, o_.patient_regex); }

  // Says, in the run log and the report, how many images are grouped by
  // something other than a patient id: their patients may be in two splits
  // without any check noticing.
  static void ReportFallback(StageContext& ctx, size_t total, int64_t by_group, int64_t alone, int64_t id_is_group) {
    auto say = [&](int64_t n, const char* what, const std::string& counter) {
      ctx.Count(counter, n);
      if (n == 0) return;
      std::string text = fmt::format("{} of {} images {}; patient leakage cannot be ruled out", n, total, what);
      ctx.Log(text);
      ctx.Problem("(patient grouping)", text);
    };
    say(by_group, "have no patient_id: grouped by Roboflow source name", "patient_fallback.group");
    say(alone, "have no patient_id and no group: each image is its own patient", "patient_fallback.alone");
    say(id_is_group, "have a patient_id that is their Roboflow source name (merge's patient_from_group)",
        "patient_fallback.id_is_group");
  }

  SplitOptions o_;
};

Result<std::unique_ptr<Stage>> MakeSplit(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  SplitOptions o;
  o.kfold = p.GetString("mode") == "kfold";
  if (!o.kfold) {
    double sum = 0;
    std::set<std::string> names;
    for (const auto& [raw_name, text] : p.GetStringMap("ratios")) {
      // "val" is written as "valid", the name every reader uses.
      const std::string name = CanonicalSplit(raw_name);
      char* end = nullptr;
      double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !std::isfinite(v) || v < 0 || v > 1) {
        return p.Error("ratios", fmt::format("'{}: {}' is not a share between 0 and 1", name, text));
      }
      if (name.empty() || !names.insert(name).second) {
        return p.Error("ratios", fmt::format("split name '{}' is empty or listed twice{}", raw_name,
                                             raw_name == name ? "" : " (read as '" + name + "')"));
      }
      o.ratios.emplace_back(name, v);
      sum += v;
    }
    if (o.ratios.empty()) return p.Error("ratios", "name at least one split, e.g. {train: 0.8, valid: 0.2}");
    if (std::abs(sum - 1.0) > 1e-6) return p.Error("ratios", fmt::format("the shares sum to {}, not 1", sum));
  }
  int64_t folds = p.GetInt("folds");
  if (folds < 2 || folds > 1000) return p.Error("folds", "needs 2 to 1000 folds");
  o.folds = static_cast<int>(folds);

  const std::string& missing = p.GetString("missing_patient");
  o.missing = missing == "own_group" ? Missing::kOwnGroup : missing == "filename_regex" ? Missing::kRegex : Missing::kError;
  const std::string& pattern = p.GetString("patient_pattern");
  if (o.missing == Missing::kRegex) {
    if (pattern.empty()) return p.Error("patient_pattern", "missing_patient: filename_regex needs a patient_pattern");
    try {
      o.patient_regex = std::regex(pattern, std::regex::ECMAScript);
      o.pattern = pattern;
    } catch (const std::regex_error& e) {
      return p.Error("patient_pattern", std::string("not a valid regular expression: ") + e.what());
    }
    if (o.patient_regex.mark_count() < 1) {
      return p.Error("patient_pattern", "needs a capture group for the patient id, e.g. '^images/(P\\d+)_'");
    }
  } else if (!pattern.empty()) {
    return p.Error("patient_pattern", "only used with missing_patient: filename_regex");
  }
  o.group_attribute = p.GetString("group_attribute");
  o.keep = p.GetString("keep");
  if (!o.keep.empty()) {
    if (Result<std::vector<fs::path>> files = KeepFiles(o.keep); !files.ok()) {
      return p.Error("keep", files.status().message() +
                                 " (keep reads a split stage's folder or dataset.json, an export folder, or a CSV of "
                                 "patient_id,split)");
    }
  }
  return std::unique_ptr<Stage>(new SplitStage(std::move(o)));
}

}  // namespace

void RegisterSplit(Registry* registry) {
  KindSpec spec;
  spec.name = "split";
  spec.version = 2;
  spec.help =
      "patient-level split (or k folds) stratified by class, negatives included; no patient or group in two "
      "splits";
  spec.min_inputs = 1;
  spec.max_inputs = 1;
  spec.params = {
      {"mode", ParamType::kString, "holdout", false,
       "holdout: split per `ratios`; kfold: `folds` folds in attributes.fold (split set to train)",
       {"holdout", "kfold"}},
      {"ratios", ParamType::kStringMap, "{train: 0.8, valid: 0.15, test: 0.05}", false,
       "split name -> share of images, summing to 1 (holdout)", {}},
      {"folds", ParamType::kInt, "5", false, "number of folds (kfold)", {}},
      {"missing_patient", ParamType::kString, "error", false,
       "images without a patient id: error, own_group (each its own patient) or filename_regex",
       {"error", "own_group", "filename_regex"}},
      {"patient_pattern", ParamType::kString, "", false,
       "regex on the file's base name (else its path) whose group 1 is the patient id, for images without one or "
       "whose id is their Roboflow group (missing_patient: filename_regex)", {}},
      {"group_attribute", ParamType::kString, "group", false,
       "image attribute whose equal values must share a split (e.g. Roboflow copies); empty: none", {}},
      {"keep", ParamType::kPath, "", false,
       "an earlier version's splits (split folder or dataset.json, export folder, or CSV patient_id,split): its "
       "patients keep their split or fold; new patients fill the ratios", {}},
  };
  registry->Add(StageKind{std::move(spec), MakeSplit});
}

}  // namespace medpipe
