// balance: fill each split to a target share of negatives from a pool of
// negative images (e.g. the downloaded no-hemorrhage images, labelled FP/TN).
// Defaults are neutral: no label priority, no file-name prefix; a project
// names its own (configs/hemorrhage_v4.yaml: priority [FP, TN], no_hem_).
//
// Inputs: the split dataset first (every image has `split`), then the pool.
//
// Per split s with P positives (images with a box) and N negatives, the
// shortfall is need[s] = max(0, round(P f / (1 - f)) - N) for the target
// fraction f. When the pool has fewer usable images A than the total
// shortfall S, each split's quota is its share of the pool, A need[s] / S
// (largest remainders round), else its quota is need[s].
//
// Pool units: pool images are grouped by union-find over patient id and the
// group attribute (an image with neither is a unit of its own; pool images
// without a patient id are counted and said in the run log, or fail the stage
// with `missing_patient: error`); a unit goes
// to one split whole. A unit whose patient or group is already in split s is
// pinned to s: it is used only there, counts against s's quota, and may
// overflow it, but never goes to another split (a unit pinned to two splits
// is left out and reported). Units are taken in priority order (a unit ranks
// as its best image label in `priority`; labels not listed come last or are
// skipped, per `other_labels`); within a rank pinned units come first, so
// free units fill around them; remaining ties in a seeded hash order. A free unit goes
// to the split with the largest unfilled fraction of its quota, among those
// it does not overflow by more than what is left unfilled. A second pass
// over the unused units fills the true shortfalls (quota raised to need[s])
// when pinned units left room. Unused pool images are counted, not output.
//
// Output: every image of the split dataset, then the chosen pool images with
// `split` set (source, labels, patient kept), linked under
// images/<pool_prefix><flattened name>, renamed on collision. Counters
// before.<split>.*, after.<split>.* and the pool's, and balance.json with the
// same per split; a patient or group in two splits of the output fails the
// stage.
#include <fmt/format.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "dataset/coco_io.h"
#include "graph/params.h"
#include "stages/link_images.h"
#include "stages/patient_groups.h"
#include "stages/registry.h"
#include "util/strings.h"

namespace medpipe {

namespace {

struct BalanceOptions {
  double fraction = 0.5;
  double tolerance = 0.02;  // a split ending outside fraction +/- tolerance is a problem
  std::vector<std::string> priority;
  bool skip_other_labels = false;
  std::string prefix;
  std::string group_attribute;
  bool missing_patient_error = false;
};

struct SplitStats {
  int64_t images = 0, negatives = 0;
  double share() const { return images ? static_cast<double>(negatives) / static_cast<double>(images) : 0.0; }
};

struct Unit {
  std::string key;
  std::vector<size_t> images;  // pool indices
  size_t rank = 0;             // best priority rank of its images
  int pinned = -1;             // split index it must go to, or -1
  bool conflict = false;       // pinned to two splits: left out
  int assigned = -1;
};

// What balance needs of a pool image. The pool can be the whole feedback
// CSV (325,000 images); building full Images for it through ParseCoco costs
// more than the 300 MB budget, so a SAX pass keeps only these fields and each
// image's byte range, and only the chosen images are parsed fully.
struct PoolEntry {
  int64_t id = 0;
  std::string file_name, patient_id, group;
  size_t rank = 0;  // best label's index in `priority`; priority.size() if none
  size_t begin = 0, end = 0;  // the image's JSON object in the file text
};
struct PoolIndex {
  std::vector<PoolEntry> images;
  std::unordered_set<int64_t> with_boxes;  // image ids of the pool's annotations
};

// rapidjson SAX handler over a COCO text: the fields of PoolEntry from
// "images", the image_id of each of "annotations"; everything else skipped.
class PoolScanner : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, PoolScanner> {
 public:
  PoolScanner(const rapidjson::StringStream& in, const BalanceOptions& o, PoolIndex* out)
      : in_(in), o_(o), out_(out) {}
  bool StartObject() { return Push(true); }
  bool EndObject(rapidjson::SizeType) { return Pop(); }
  bool StartArray() { return Push(false); }
  bool EndArray(rapidjson::SizeType) { return Pop(); }
  bool Key(const char* s, rapidjson::SizeType n, bool) { return key_.assign(s, n), true; }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    Frame f = stack_.back();
    if (f == kImage && key_ == "file_name") out_->images.back().file_name.assign(s, n);
    if (f == kImage && key_ == "patient_id") out_->images.back().patient_id.assign(s, n);
    if (f == kAttrs && key_ == o_.group_attribute) out_->images.back().group.assign(s, n);
    if (f == kLabels) {
      PoolEntry& e = out_->images.back();
      for (size_t r = 0; r < e.rank; ++r) {
        if (o_.priority[r].size() == n && o_.priority[r].compare(0, n, s, n) == 0) e.rank = r;
      }
    }
    return true;
  }
  bool Int(int i) { return Number(AttrValue(int64_t{i})); }
  bool Uint(unsigned u) { return Number(AttrValue(int64_t{u})); }
  bool Int64(int64_t i) { return Number(AttrValue(i)); }
  bool Uint64(uint64_t u) { return Number(AttrValue(static_cast<int64_t>(u))); }
  bool Double(double d) { return Number(AttrValue(d)); }
  bool Bool(bool b) { return Number(AttrValue(b)); }

 private:
  enum Frame { kTop, kImages, kImage, kLabels, kAttrs, kAnns, kAnn, kOther };
  bool Push(bool object) {
    Frame f = kOther;
    Frame parent = stack_.empty() ? kOther : stack_.back();
    if (stack_.empty()) {
      f = object ? kTop : kOther;
    } else if (parent == kTop && !object) {
      f = key_ == "images" ? kImages : key_ == "annotations" ? kAnns : kOther;
    } else if (parent == kImages && object) {
      f = kImage;
      out_->images.emplace_back();
      out_->images.back().rank = o_.priority.size();
      out_->images.back().begin = in_.Tell() - 1;  // the '{' was just taken
    } else if (parent == kImage) {
      f = !object && key_ == "labels" ? kLabels : object && key_ == "attributes" ? kAttrs : kOther;
    } else if (parent == kAnns && object) {
      f = kAnn;
    }
    stack_.push_back(f);
    return true;
  }
  bool Pop() {
    if (stack_.back() == kImage) out_->images.back().end = in_.Tell();  // the '}' was just taken
    stack_.pop_back();
    return true;
  }
  bool Number(const AttrValue& v) {
    Frame f = stack_.back();
    auto as_int = [&] { return std::holds_alternative<double>(v) ? static_cast<int64_t>(std::get<double>(v))
                                                                  : std::get<int64_t>(v); };
    bool numeric = !std::holds_alternative<bool>(v);
    if (f == kImage && key_ == "id" && numeric) out_->images.back().id = as_int();
    if (f == kImage && key_ == "patient_id" && std::holds_alternative<int64_t>(v)) {
      out_->images.back().patient_id = AttrToString(v);  // as ParseCoco reads a numeric patient id
    }
    if (f == kAttrs && key_ == o_.group_attribute) out_->images.back().group = AttrToString(v);
    if (f == kAnn && key_ == "image_id" && numeric) out_->with_boxes.insert(as_int());
    return true;
  }

  const rapidjson::StringStream& in_;
  const BalanceOptions& o_;
  PoolIndex* out_;
  std::vector<Frame> stack_;
  std::string key_;
};

Result<PoolIndex> ScanPool(const std::string& text, const std::string& origin, const BalanceOptions& o) {
  PoolIndex index;
  // Reserve by counting "file_name" keys: growing a vector of 325,000 entries
  // by doubling moved them all several times (a third of the scan's time).
  size_t estimate = 0;
  for (size_t at = text.find("\"file_name\""); at != std::string::npos; at = text.find("\"file_name\"", at + 11)) {
    ++estimate;
  }
  index.images.reserve(estimate);
  rapidjson::StringStream in(text.c_str());
  PoolScanner scanner(in, o, &index);
  rapidjson::Reader reader;
  if (!reader.Parse<rapidjson::kParseStopWhenDoneFlag>(in, scanner)) {
    return Status::Invalid(fmt::format("{}: not valid JSON near byte {}", origin, reader.GetErrorOffset()));
  }
  return index;
}

// The link name of a pool image: images/<prefix><file name with '/' -> '_'>,
// made unique against `taken` by a _<n> before the extension.
std::string PoolName(const std::string& prefix, const std::string& file_name, std::unordered_set<std::string>* taken) {
  std::string flat = file_name.rfind("images/", 0) == 0 ? file_name.substr(7) : file_name;
  std::replace(flat.begin(), flat.end(), '/', '_');
  std::string base = "images/" + prefix + flat;
  std::string name = base;
  size_t dot = base.find_last_of('.');
  if (dot != std::string::npos && dot < base.find_last_of('/')) dot = std::string::npos;
  for (int n = 2; !taken->insert(name).second; ++n) {
    name = dot == std::string::npos ? fmt::format("{}_{}", base, n)
                                    : fmt::format("{}_{}{}", base.substr(0, dot), n, base.substr(dot));
  }
  return name;
}

class BalanceStage : public Stage {
 public:
  explicit BalanceStage(BalanceOptions o) : o_(std::move(o)) {}

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset ds, ctx.ReadInputDataset(0));
    const fs::path ds_dir = ctx.inputs()[0].dir, pool_dir = ctx.inputs()[1].dir;
    MEDPIPE_ASSIGN_OR_RETURN(std::string pool_text, ReadFile(pool_dir / "dataset.json"));
    MEDPIPE_ASSIGN_OR_RETURN(PoolIndex pool, ScanPool(pool_text, (pool_dir / "dataset.json").string(), o_));

    // The split dataset: every image must have a split.
    std::vector<std::string> unsplit;
    for (const Image& img : ds.images) {
      if (img.split.empty()) unsplit.push_back(img.file_name);
    }
    if (!unsplit.empty()) {
      unsplit.resize(std::min<size_t>(unsplit.size(), 10));
      return Status::Failed(fmt::format("input {} has images without a split ({}); balance reads split's output",
                                        ctx.inputs()[0].id, Join(unsplit, ", ")));
    }
    Dataset out;
    out.categories = ds.categories;
    std::unordered_set<int64_t> has_boxes;
    for (const Annotation& a : ds.annotations) has_boxes.insert(a.image_id);
    std::unordered_set<int64_t> kept_ids;
    for (Image& img : ds.images) {
      if (!IsContainedRelativePath(img.file_name)) {
        ctx.Problem(img.file_name, "file_name leaves the dataset folder; image skipped");
        ctx.Count("unsafe_file_names");
        continue;
      }
      kept_ids.insert(img.id);
      out.images.push_back(std::move(img));
    }
    for (const Annotation& a : ds.annotations) {
      if (kept_ids.count(a.image_id)) out.annotations.push_back(a);
    }

    // Splits: train, valid, test, then any others by name.
    std::vector<std::string> splits;
    {
      std::set<std::string> names;
      for (const Image& img : out.images) names.insert(img.split);
      for (const char* s : {"train", "valid", "test"}) {
        if (names.erase(s)) splits.push_back(s);
      }
      splits.insert(splits.end(), names.begin(), names.end());
    }
    std::unordered_map<std::string, int> split_index;
    for (size_t s = 0; s < splits.size(); ++s) split_index[splits[s]] = static_cast<int>(s);
    const size_t n_splits = splits.size();

    std::vector<SplitStats> before(n_splits);
    // Where each patient and group of the split dataset is: the split index,
    // or -2 when it is in several (a leak the final check reports).
    std::unordered_map<std::string, int> home;
    auto note_home = [&](const std::string& key, int s) {
      auto [it, inserted] = home.try_emplace(key, s);
      if (!inserted && it->second != s) it->second = -2;
    };
    for (const Image& img : out.images) {
      int s = split_index[img.split];
      ++before[s].images;
      if (!has_boxes.count(img.id)) ++before[s].negatives;
      if (!img.patient_id.empty()) note_home("patient\x1f" + img.patient_id, s);
      if (const std::string g = GroupOf(img); !g.empty()) note_home("group\x1f" + g, s);
    }
    std::vector<int64_t> need(n_splits);
    for (size_t s = 0; s < n_splits; ++s) {
      int64_t positives = before[s].images - before[s].negatives;
      int64_t want = std::llround(static_cast<double>(positives) * o_.fraction / (1.0 - o_.fraction));
      need[s] = std::max<int64_t>(0, want - before[s].negatives);
    }

    // Usable pool images, grouped into units.
    UnionFind uf;
    std::vector<int64_t> node(pool.images.size(), -1);  // -1: not usable
    std::vector<size_t> rank(pool.images.size(), 0);
    int64_t usable = 0;
    for (size_t i = 0; i < pool.images.size(); ++i) {
      const PoolEntry& img = pool.images[i];
      if (!IsContainedRelativePath(img.file_name)) {
        ctx.Problem(img.file_name, "pool file_name leaves the dataset folder; image skipped");
        ctx.Count("pool.unsafe_file_names");
        continue;
      }
      if (pool.with_boxes.count(img.id)) {
        ctx.Count("pool.not_negative");
        continue;
      }
      rank[i] = img.rank;
      if (rank[i] == o_.priority.size() && o_.skip_other_labels) {
        ctx.Count("pool.other_label");
        continue;
      }
      ++usable;
      uint32_t n = img.patient_id.empty() ? uf.Node("image\x1f" + std::to_string(i))
                                          : uf.Node("patient\x1f" + img.patient_id);
      if (!img.group.empty()) uf.Union(n, uf.Node("group\x1f" + img.group));
      node[i] = n;
    }
    MEDPIPE_RETURN_IF_ERROR(ReportFallback(ctx, pool, node));
    std::vector<Unit> units;
    std::unordered_map<uint32_t, size_t> unit_of_root;
    for (size_t i = 0; i < pool.images.size(); ++i) {
      if (node[i] < 0) continue;
      uint32_t root = uf.Find(static_cast<uint32_t>(node[i]));
      auto [it, inserted] = unit_of_root.try_emplace(root, units.size());
      if (inserted) {
        units.push_back(Unit{uf.Key(root), {}, rank[i], -1, false, -1});
      }
      Unit& u = units[it->second];
      u.images.push_back(i);
      u.rank = std::min(u.rank, rank[i]);
      const PoolEntry& img = pool.images[i];
      for (const std::string& key : {img.patient_id.empty() ? std::string() : "patient\x1f" + img.patient_id,
                                     img.group.empty() ? std::string() : "group\x1f" + img.group}) {
        auto h = key.empty() ? home.end() : home.find(key);
        if (h == home.end()) continue;
        if (h->second < 0 || (u.pinned >= 0 && u.pinned != h->second)) u.conflict = true;
        if (h->second >= 0) u.pinned = h->second;
      }
    }
    for (const Unit& u : units) {
      if (!u.conflict) continue;
      ctx.Count("pool.conflicting_patient", static_cast<int64_t>(u.images.size()));
      ctx.Problem(pool.images[u.images[0]].file_name,
                  "pool patient is already in more than one split; its pool images are left out");
    }

    // Quotas: the shortfall, or the pool's share of it when the pool is short.
    int64_t shortfall = 0;
    for (int64_t n : need) shortfall += n;
    std::vector<int64_t> quota = need;
    if (usable < shortfall) {
      std::vector<std::pair<int64_t, size_t>> remainders;
      int64_t given = 0;
      for (size_t s = 0; s < n_splits; ++s) {
        quota[s] = usable * need[s] / shortfall;
        given += quota[s];
        remainders.emplace_back(-(usable * need[s] % shortfall), s);
      }
      std::sort(remainders.begin(), remainders.end());
      for (size_t k = 0; given < usable && k < remainders.size(); ++k, ++given) ++quota[remainders[k].second];
    }

    std::vector<size_t> order(units.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    {
      std::vector<uint64_t> tie(units.size());
      for (size_t k = 0; k < units.size(); ++k) tie[k] = SeededHash(ctx.seed(), units[k].key);
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        if (units[a].rank != units[b].rank) return units[a].rank < units[b].rank;
        if ((units[a].pinned >= 0) != (units[b].pinned >= 0)) return units[a].pinned >= 0;
        if (tie[a] != tie[b]) return tie[a] < tie[b];
        return units[a].key < units[b].key;
      });
    }
    std::vector<int64_t> added(n_splits, 0);
    for (const std::vector<int64_t>* cap : {&quota, &need}) {
      auto left = [&](size_t s) { return (*cap)[s] - added[s]; };
      for (size_t k : order) {
        Unit& u = units[k];
        if (u.assigned >= 0 || u.conflict) continue;
        const int64_t size = static_cast<int64_t>(u.images.size());
        int best = -1;
        if (u.pinned >= 0) {
          if (left(u.pinned) > 0) best = u.pinned;
        } else {
          for (size_t s = 0; s < n_splits; ++s) {
            if (left(s) <= 0 || size >= 2 * left(s)) continue;
            // Largest unfilled fraction left/cap, compared without division.
            if (best < 0 || left(s) * (*cap)[best] > left(best) * (*cap)[s]) best = static_cast<int>(s);
          }
        }
        if (best < 0) continue;
        u.assigned = best;
        added[best] += size;
      }
    }

    // The chosen pool images, in pool order, under collision-free names.
    std::vector<int> pool_split(pool.images.size(), -1);
    for (const Unit& u : units) {
      for (size_t i : u.images) pool_split[i] = u.assigned;
    }
    std::unordered_set<std::string> taken;
    for (const Image& img : out.images) taken.insert(img.file_name);
    int64_t next_id = 0;
    for (const Image& img : out.images) next_id = std::max(next_id, img.id);
    const size_t first_pool = out.images.size();
    std::vector<LinkSpec> links;
    links.reserve(out.images.size());
    for (const Image& img : out.images) links.push_back(LinkSpec{img.file_name, ds_dir / img.file_name});
    std::map<std::pair<int, size_t>, int64_t> added_by_rank;
    int64_t unused = 0;
    std::vector<size_t> chosen;
    std::string chosen_json = "{\"images\": [";
    for (size_t i = 0; i < pool.images.size(); ++i) {
      if (node[i] < 0) continue;
      if (pool_split[i] < 0) {
        ++unused;
        continue;
      }
      if (!chosen.empty()) chosen_json += ",\n";
      chosen_json.append(pool_text, pool.images[i].begin, pool.images[i].end - pool.images[i].begin);
      chosen.push_back(i);
    }
    chosen_json += "]}";
    pool_text = std::string();  // done with the 60 MB
    MEDPIPE_ASSIGN_OR_RETURN(Dataset chosen_ds, ParseCoco(chosen_json, (pool_dir / "dataset.json").string()));
    if (chosen_ds.images.size() != chosen.size()) return Status::Invalid("pool images were misread");
    for (size_t k = 0; k < chosen.size(); ++k) {
      const size_t i = chosen[k];
      Image img = std::move(chosen_ds.images[k]);
      links.push_back(LinkSpec{"", pool_dir / img.file_name});
      img.file_name = PoolName(o_.prefix, img.file_name, &taken);
      links.back().out_rel = img.file_name;
      img.id = ++next_id;
      img.split = splits[pool_split[i]];
      ++added_by_rank[{pool_split[i], rank[i]}];
      out.images.push_back(std::move(img));
    }

    std::vector<std::string> bins;
    bins.reserve(out.images.size());
    for (const Image& img : out.images) bins.push_back(img.split);
    if (std::vector<std::string> leaks = FindPatientLeaks(out, bins, o_.group_attribute); !leaks.empty()) {
      return Status::Failed("patient leakage between splits: " + Join(leaks, "; "));
    }

    MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links));
    std::vector<SplitStats> after(n_splits);
    {
      std::vector<Image> kept;
      kept.reserve(out.images.size());
      std::unordered_set<int64_t> dropped;
      for (size_t i = 0; i < out.images.size(); ++i) {
        if (!linked[i]) {
          dropped.insert(out.images[i].id);
          continue;
        }
        int s = split_index[out.images[i].split];
        ++after[s].images;
        if (i >= first_pool || !has_boxes.count(out.images[i].id)) ++after[s].negatives;
        kept.push_back(std::move(out.images[i]));
      }
      out.images = std::move(kept);
      if (!dropped.empty()) {
        std::erase_if(out.annotations, [&](const Annotation& a) { return dropped.count(a.image_id) > 0; });
      }
    }

    ctx.Count("pool.images", static_cast<int64_t>(pool.images.size()));
    int64_t used = 0;
    for (int64_t a : added) used += a;
    ctx.Count("pool.used", used);
    ctx.Count("pool.unused", unused);
    auto rank_name = [&](size_t r) { return r < o_.priority.size() ? o_.priority[r] : std::string("other"); };
    std::string json = "{\n  \"target_negative_fraction\": " + fmt::format("{}", o_.fraction) + ",\n  \"splits\": {";
    for (size_t s = 0; s < n_splits; ++s) {
      const std::string& n = splits[s];
      for (const auto& [when, st] : {std::pair<const char*, SplitStats>{"before", before[s]}, {"after", after[s]}}) {
        ctx.Count(fmt::format("{}.{}.images", when, n), st.images);
        ctx.Count(fmt::format("{}.{}.negatives", when, n), st.negatives);
        ctx.Count(fmt::format("{}.{}.negative_share_bp", when, n), std::llround(st.share() * 10000));
      }
      ctx.Count("needed." + n, need[s]);
      ctx.Count("added." + n, added[s]);
      std::string by_label;
      for (size_t r = 0; r <= o_.priority.size(); ++r) {
        auto it = added_by_rank.find({static_cast<int>(s), r});
        int64_t v = it == added_by_rank.end() ? 0 : it->second;
        if (r < o_.priority.size() || v > 0) {
          ctx.Count(fmt::format("added.{}.{}", n, rank_name(r)), v);
          by_label += fmt::format("{}{}: {}", by_label.empty() ? "" : ", ", JsonQuote(rank_name(r)), v);
        }
      }
      json += fmt::format(
          "{}\n    {}: {{\"before\": {{\"images\": {}, \"negatives\": {}, \"negative_share\": {:.4f}}}, "
          "\"needed\": {}, \"quota\": {}, \"added\": {}, \"added_by_label\": {{{}}}, "
          "\"after\": {{\"images\": {}, \"negatives\": {}, \"negative_share\": {:.4f}}}}}",
          s ? "," : "", JsonQuote(n), before[s].images, before[s].negatives, before[s].share(), need[s], quota[s],
          added[s], by_label, after[s].images, after[s].negatives, after[s].share());
    }
    json += fmt::format("\n  }},\n  \"pool\": {{\"images\": {}, \"usable\": {}, \"used\": {}, \"unused\": {}}}\n}}\n",
                        pool.images.size(), usable, used, unused);
    MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("balance.json", json));
    for (size_t s = 0; s < n_splits; ++s) {
      ReportMissedTarget(ctx, splits[s], before[s], after[s], need[s], quota[s], added[s], usable, shortfall,
                         links.size() - out.images.size());
    }
    return ctx.WriteDataset(out);
  }

 private:
  // A split that ends outside target +/- tolerance is a problem naming the
  // shortfall and why it was not filled, so a missed target is on the
  // console and not only a counter in report.json.
  void ReportMissedTarget(StageContext& ctx, const std::string& split, const SplitStats& before,
                          const SplitStats& after, int64_t need, int64_t quota, int64_t added, int64_t usable,
                          int64_t shortfall, size_t unlinked) const {
    if (after.images == 0) return;
    const double share = after.share();
    if (std::abs(share - o_.fraction) <= o_.tolerance + 1e-12) return;
    const std::string item = "split " + split;
    const std::string head = fmt::format("negatives {:.1f}% against a target of {:.1f}% +/- {:.1f}", share * 100,
                                         o_.fraction * 100, o_.tolerance * 100);
    if (share > o_.fraction) {
      std::string why = before.share() > o_.fraction + o_.tolerance
                            ? fmt::format("it had {:.1f}% negatives before balancing, and balance adds negatives, "
                                          "never removes them",
                                          before.share() * 100)
                            : "pool patients already in this split were kept here whole and overflowed its quota";
      ctx.Problem(item, head + ": " + why, "target missed");
      return;
    }
    const int64_t positives = after.images - after.negatives;
    const int64_t short_by =
        std::llround(static_cast<double>(positives) * o_.fraction / (1.0 - o_.fraction)) - after.negatives;
    std::string why;
    if (usable == 0) {
      why = "the pool has no usable negative images";
    } else if (quota < need) {
      why = fmt::format("pool exhausted: {} usable pool images for a shortfall of {} over all splits, so this "
                        "split's share was {}",
                        usable, shortfall, quota);
    } else {
      why = fmt::format("{} of its quota of {} could be placed: the rest of the pool is pinned to other splits by "
                        "patient or group, or in units larger than what was left",
                        added, quota);
    }
    if (unlinked > 0) why += fmt::format("; {} images could not be linked", unlinked);
    ctx.Problem(item, fmt::format("{}: {} negatives short; {}", head, short_by, why), "target missed");
  }

  // Usable pool images without a patient id are grouped by their Roboflow
  // source name (group attribute) or stand alone: said in the run log and the
  // report with the count, or, with missing_patient: error, the stage fails.
  Status ReportFallback(StageContext& ctx, const PoolIndex& pool, const std::vector<int64_t>& node) const {
    int64_t usable = 0, by_group = 0, alone = 0;
    std::vector<std::string> names;
    for (size_t i = 0; i < pool.images.size(); ++i) {
      if (node[i] < 0) continue;
      ++usable;
      const PoolEntry& img = pool.images[i];
      if (!img.patient_id.empty()) continue;
      ++(img.group.empty() ? alone : by_group);
      if (names.size() < 10) names.push_back(img.file_name);
    }
    ctx.Count("pool.patient_fallback.group", by_group);
    ctx.Count("pool.patient_fallback.alone", alone);
    if (by_group + alone == 0) return Status::OK();
    if (o_.missing_patient_error) {
      return Status::Failed(fmt::format("{} of {} usable pool images have no patient_id ({}{}); missing_patient: error "
                                        "stops the run (own_group groups them by Roboflow source name or alone)",
                                        by_group + alone, usable, Join(names, ", "),
                                        by_group + alone > static_cast<int64_t>(names.size()) ? ", ..." : ""));
    }
    for (const auto& [n, what] : {std::pair<int64_t, const char*>{by_group, "grouped by Roboflow source name"},
                                  {alone, "each image its own patient"}}) {
      if (n == 0) continue;
      std::string text = fmt::format("{} of {} pool images have no patient_id: {}; patient leakage cannot be ruled out",
                                     n, usable, what);
      ctx.Log(text);
      ctx.Problem("(pool patient grouping)", text);
    }
    return Status::OK();
  }

  std::string GroupOf(const Image& img) const {
    if (o_.group_attribute.empty()) return std::string();
    auto it = img.attributes.find(o_.group_attribute);
    return it == img.attributes.end() ? std::string() : AttrToString(it->second);
  }

  BalanceOptions o_;
};

Result<std::unique_ptr<Stage>> MakeBalance(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  BalanceOptions o;
  o.fraction = p.GetFloat("target_negative_fraction");
  if (!(o.fraction >= 0 && o.fraction < 1)) return p.Error("target_negative_fraction", "needs 0 <= f < 1");
  o.tolerance = p.GetFloat("tolerance");
  if (!(o.tolerance >= 0 && o.tolerance < 1)) return p.Error("tolerance", "needs 0 <= t < 1");
  o.priority = p.GetStringList("priority");
  std::vector<std::string> sorted = o.priority;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return p.Error("priority", "a label is listed twice");
  }
  o.skip_other_labels = p.GetString("other_labels") == "skip";
  o.prefix = p.GetString("pool_prefix");
  if (o.prefix.find('/') != std::string::npos || o.prefix.rfind('.', 0) == 0) {
    return p.Error("pool_prefix", "a file name prefix: no '/', not starting with '.'");
  }
  o.group_attribute = p.GetString("group_attribute");
  o.missing_patient_error = p.GetString("missing_patient") == "error";
  return std::unique_ptr<Stage>(new BalanceStage(std::move(o)));
}

}  // namespace

void RegisterBalance(Registry* registry) {
  KindSpec spec;
  spec.name = "balance";
  spec.version = 1;
  spec.help =
      "fill each split to a share of negatives from a pool (input 2), in proportion to each split's shortfall, "
      "priority labels first, pool patients in one split";
  spec.min_inputs = 2;
  spec.max_inputs = 2;
  spec.params = {
      {"target_negative_fraction", ParamType::kFloat, "0.5", false, "share of negatives to reach in every split", {}},
      {"tolerance", ParamType::kFloat, "0.02", false,
       "a split whose negative share ends further than this from the target is a problem on the console "
       "(0.02: 2 percentage points)",
       {}},
      {"priority", ParamType::kStringList, "", false,
       "pool image labels, most wanted first, e.g. [FP, TN]; empty: no preference", {}},
      {"other_labels", ParamType::kString, "last", false,
       "pool images with none of the priority labels: used last, or skipped", {"last", "skip"}},
      {"pool_prefix", ParamType::kString, "", false,
       "file name prefix of pool images in images/, e.g. no_hem_; empty: none", {}},
      {"group_attribute", ParamType::kString, "group", false,
       "image attribute whose equal values must share a split; empty: none", {}},
      {"missing_patient", ParamType::kString, "own_group", false,
       "pool images without a patient id: own_group (grouped by their group value, else alone; logged and "
       "counted) or error",
       {"own_group", "error"}},
  };
  registry->Add(StageKind{std::move(spec), MakeBalance});
}

}  // namespace medpipe
