#include "report/dataset_stats.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

namespace medpipe::report {

namespace {

std::vector<std::string> SplitOrder(const Dataset& ds) {
  std::set<std::string> present;
  for (const auto& img : ds.images) present.insert(img.split.empty() ? kUnsplit : img.split);
  std::vector<std::string> out;
  for (const char* s : {"train", "valid", "test"}) {
    if (present.erase(s)) out.emplace_back(s);
  }
  const bool unsplit = present.erase(kUnsplit) > 0;
  out.insert(out.end(), present.begin(), present.end());
  if (unsplit) out.emplace_back(kUnsplit);
  return out;
}

SplitStats EmptySplit(size_t classes) {
  SplitStats s;
  s.images_per_class.assign(classes, 0);
  s.boxes_per_class.assign(classes, 0);
  s.boxes_per_image.assign(kBoxesPerImageBins.size(), 0);
  return s;
}

size_t BoxesPerImageBin(int64_t n) {
  if (n < 5) return static_cast<size_t>(n);
  return n < 10 ? 5 : 6;
}

size_t SideBin(double v) {
  size_t bin = 0;
  for (double edge = 8; bin + 1 < kSideBins.size() && v >= edge; edge *= 2) ++bin;
  return bin;
}

size_t AreaBin(double share) {
  static constexpr double kEdges[] = {0.001, 0.003, 0.01, 0.03, 0.1, 0.3};
  size_t bin = 0;
  while (bin < std::size(kEdges) && share >= kEdges[bin]) ++bin;
  return bin;
}

bool ParseInt(const std::string& s, long long* v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && p == s.data() + s.size();
}

// Builds an AttributeCounts from (value -> per split counts).
AttributeCounts Finish(std::map<std::string, std::vector<int64_t>>& m) {
  AttributeCounts out;
  for (auto& [v, counts] : m) out.values.push_back(v);
  std::sort(out.values.begin(), out.values.end(), NaturalLess);
  for (const auto& v : out.values) out.per_split.push_back(std::move(m[v]));
  return out;
}

const AttrValue* FindAttr(const Image& img, const char* name) {
  auto it = img.attributes.find(name);
  return it == img.attributes.end() ? nullptr : &it->second;
}

// FNV-1a (64-bit) of the seed and a name: a fast, stable hash for the
// gallery's seeded order. Not for integrity; SHA-256 would cost a context
// per image for nothing here.
uint64_t SeededHash(uint64_t seed, const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](unsigned char c) { h = (h ^ c) * 1099511628211ull; };
  for (int k = 0; k < 8; ++k) mix(static_cast<unsigned char>(seed >> (8 * k)));
  for (char c : s) mix(static_cast<unsigned char>(c));
  return h;
}

}  // namespace

bool NaturalLess(const std::string& a, const std::string& b) {
  long long x = 0, y = 0;
  const bool na = ParseInt(a, &x), nb = ParseInt(b, &y);
  if (na && nb) return x != y ? x < y : a < b;
  if (na != nb) return na;
  return a < b;
}

DatasetStats ComputeStats(const Dataset& ds, size_t max_listed) {
  DatasetStats st;
  const size_t nc = ds.categories.size();
  std::unordered_map<int64_t, size_t> category_index;
  for (size_t c = 0; c < nc; ++c) {
    st.classes.push_back(ds.categories[c].name);
    category_index.emplace(ds.categories[c].id, c);
  }
  st.splits = SplitOrder(ds);
  std::unordered_map<std::string, size_t> split_index;
  for (size_t s = 0; s < st.splits.size(); ++s) split_index.emplace(st.splits[s], s);
  st.per_split.assign(st.splits.size(), EmptySplit(nc));
  st.total = EmptySplit(nc);
  bool any_risk_level = false;
  st.boxes.assign(nc, ClassBoxStats{0, 0, std::vector<int64_t>(kSideBins.size()), std::vector<int64_t>(kSideBins.size()),
                                    std::vector<int64_t>(kAreaBins.size())});

  // Annotations grouped by image without a map of vectors: one sort of
  // indices by image id.
  std::vector<size_t> order(ds.annotations.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return ds.annotations[a].image_id < ds.annotations[b].image_id; });
  auto annotations_of = [&](int64_t image_id) {
    auto lo = std::lower_bound(order.begin(), order.end(), image_id,
                               [&](size_t k, int64_t id) { return ds.annotations[k].image_id < id; });
    auto hi = lo;
    while (hi != order.end() && ds.annotations[*hi].image_id == image_id) ++hi;
    return std::make_pair(lo, hi);
  };
  // An image id used twice (validate's ids check) must not count its boxes
  // twice: the first image with an id takes them, as analyze's map does.
  std::unordered_map<int64_t, size_t> first_with_id;
  for (size_t i = 0; i < ds.images.size(); ++i) first_with_id.emplace(ds.images[i].id, i);

  std::unordered_map<std::string, std::vector<size_t>> patient_splits;
  std::map<std::string, std::vector<int64_t>> risk, machine;
  std::set<std::string> label_set(st.classes.begin(), st.classes.end());
  for (const auto& img : ds.images) label_set.insert(img.labels.begin(), img.labels.end());
  st.labels.assign(label_set.begin(), label_set.end());
  std::unordered_map<std::string, size_t> label_index;
  for (size_t k = 0; k < st.labels.size(); ++k) label_index.emplace(st.labels[k], k);
  std::vector<size_t> class_label(nc);
  for (size_t c = 0; c < nc; ++c) class_label[c] = label_index[st.classes[c]];
  for (SplitStats& sp : st.per_split) sp.images_per_label.assign(st.labels.size(), 0);
  st.total.images_per_label.assign(st.labels.size(), 0);
  std::vector<char> image_label(st.labels.size());
  std::map<std::string, std::pair<int64_t, std::vector<int64_t>>> folds;
  std::map<std::string, std::vector<int64_t>> machine_labels;

  std::vector<int64_t> counts(nc);
  std::vector<char> positive(st.labels.size());
  for (size_t i = 0; i < ds.images.size(); ++i) {
    const Image& img = ds.images[i];
    const size_t s = split_index[img.split.empty() ? kUnsplit : img.split];
    std::fill(counts.begin(), counts.end(), 0);
    int64_t boxes = 0;
    if (first_with_id[img.id] == i) {
      auto [lo, hi] = annotations_of(img.id);
      for (auto it = lo; it != hi; ++it) {
        const Annotation& a = ds.annotations[*it];
        auto c = category_index.find(a.category_id);
        if (c == category_index.end()) {
          st.annotations_with_undefined_category++;
          continue;
        }
        counts[c->second]++;
        boxes++;
        ClassBoxStats& b = st.boxes[c->second];
        b.boxes++;
        b.width[SideBin(a.bbox[2])]++;
        b.height[SideBin(a.bbox[3])]++;
        if (img.width > 0 && img.height > 0) {
          b.area[AreaBin(a.bbox[2] * a.bbox[3] / (static_cast<double>(img.width) * img.height))]++;
        }
      }
    }
    std::fill(image_label.begin(), image_label.end(), 0);
    for (const auto& l : img.labels) image_label[label_index[l]] = 1;  // a label listed twice counts once
    for (SplitStats* sp : {&st.per_split[s], &st.total}) {
      sp->images++;
      if (!img.labels.empty()) sp->images_with_labels++;
      for (size_t k = 0; k < image_label.size(); ++k) sp->images_per_label[k] += image_label[k];
      if (img.patient_id.empty()) sp->images_without_patient++;
      if (!img.origin.empty()) sp->augmented++;
      sp->sources[img.source.empty() ? "(none)" : img.source]++;
      sp->boxes += boxes;
      if (boxes == 0) sp->negatives++;
      sp->boxes_per_image[BoxesPerImageBin(boxes)]++;
      for (size_t c = 0; c < nc; ++c) {
        sp->boxes_per_class[c] += counts[c];
        if (counts[c] > 0) sp->images_per_class[c]++;
      }
    }
    for (size_t c = 0; c < nc; ++c) {
      if (counts[c] > 0) st.boxes[c].images++;
    }
    if (!img.patient_id.empty()) {
      auto& v = patient_splits[img.patient_id];
      if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
    }

    // Attribute-driven tables, only for images that carry the attribute.
    std::fill(positive.begin(), positive.end(), 0);
    for (size_t c = 0; c < nc; ++c) positive[class_label[c]] |= counts[c] > 0;
    for (const auto& l : img.labels) positive[label_index[l]] = 1;
    if (const AttrValue* v = FindAttr(img, "fold")) {
      auto& [n, pos] = folds[AttrToString(*v)];
      if (pos.empty()) pos.assign(st.labels.size(), 0);
      n++;
      for (size_t k = 0; k < positive.size(); ++k) pos[k] += positive[k];
    }
    if (const AttrValue* v = FindAttr(img, "risk_level")) {
      any_risk_level = true;
      auto& row = risk[AttrToString(*v)];
      if (row.empty()) row.assign(st.splits.size(), 0);
      row[s]++;
    }
    if (const AttrValue* v = FindAttr(img, "machine_type")) {
      const std::string value = AttrToString(*v);
      auto& row = machine[value];
      if (row.empty()) row.assign(st.splits.size(), 0);
      row[s]++;
      auto& lab = machine_labels[value];
      if (lab.empty()) lab.assign(st.labels.size(), 0);
      for (size_t k = 0; k < positive.size(); ++k) lab[k] += positive[k];
    }
    for (const auto& [name, value] : img.attributes) {
      if (name.rfind("prob_", 0) != 0 || name.size() == 5) continue;
      double p = 0;
      if (const double* d = std::get_if<double>(&value)) {
        p = *d;
      } else if (const int64_t* n = std::get_if<int64_t>(&value)) {
        p = static_cast<double>(*n);
      } else {
        continue;
      }
      if (!(p >= 0 && p <= 1)) continue;
      auto& hist = st.probabilities[name.substr(5)];
      if (hist.empty()) hist.assign(kProbabilityBins.size(), 0);
      hist[std::min<size_t>(kProbabilityBins.size() - 1, static_cast<size_t>(p * 10))]++;
    }
  }

  // Patients per split and the overlap matrix.
  const size_t ns = st.splits.size();
  st.patient_overlap.assign(ns, std::vector<int64_t>(ns, 0));
  std::vector<std::pair<std::string, std::vector<std::string>>> offenders;
  for (auto& [patient, splits] : patient_splits) {
    for (size_t a : splits) {
      for (size_t b : splits) st.patient_overlap[a][b]++;
    }
    // Like validate's leakage check, images without a split do not count.
    const size_t unsplit_index =
        !st.splits.empty() && st.splits.back() == kUnsplit ? st.splits.size() - 1 : std::string::npos;
    const size_t real = splits.size() - static_cast<size_t>(std::count(splits.begin(), splits.end(), unsplit_index));
    if (real > 1) {
      st.patients_in_several_splits++;
      std::sort(splits.begin(), splits.end());
      std::vector<std::string> names;
      for (size_t k : splits) names.push_back(st.splits[k]);
      offenders.emplace_back(patient, std::move(names));
    }
  }
  std::sort(offenders.begin(), offenders.end());
  if (offenders.size() > max_listed) offenders.resize(max_listed);
  st.overlap_offenders = std::move(offenders);
  for (size_t s = 0; s < ns; ++s) st.per_split[s].patients = st.patient_overlap[s][s];
  st.total.patients = static_cast<int64_t>(patient_splits.size());

  for (auto& [fold, entry] : folds) st.folds.push_back(fold);
  std::sort(st.folds.begin(), st.folds.end(), NaturalLess);
  for (const auto& f : st.folds) {
    st.fold_images.push_back(folds[f].first);
    st.fold_positives.push_back(folds[f].second);
  }
  st.risk_level = Finish(risk);
  st.image_level = st.total.boxes == 0 && st.annotations_with_undefined_category == 0 &&
                   (st.total.images_with_labels > 0 || any_risk_level);
  st.machine_type = Finish(machine);
  for (const auto& v : st.machine_type.values) st.machine_type_labels.push_back(machine_labels[v]);
  return st;
}

std::vector<GalleryGroup> ChooseGallery(const Dataset& ds, const DatasetStats& stats, uint64_t seed, size_t per_group,
                                        size_t max_copies) {
  // Groups: the classes of boxes, then negatives; for an image-level
  // dataset its labels, then images without one.
  const size_t nc = stats.image_level ? stats.labels.size() : stats.classes.size();
  const size_t groups_per_split = nc + 1;
  std::unordered_map<int64_t, size_t> category_index;
  std::unordered_map<std::string, size_t> split_index;
  for (size_t s = 0; s < stats.splits.size(); ++s) split_index.emplace(stats.splits[s], s);
  std::unordered_map<int64_t, std::vector<char>> classes_of;  // image id -> group present
  if (stats.image_level) {
    std::unordered_map<std::string, size_t> label_index;
    for (size_t k = 0; k < nc; ++k) label_index.emplace(stats.labels[k], k);
    for (const auto& img : ds.images) {
      if (img.labels.empty()) continue;
      auto& v = classes_of[img.id];
      v.assign(nc, 0);
      for (const auto& l : img.labels) v[label_index.at(l)] = 1;
    }
  } else {
    for (size_t c = 0; c < nc; ++c) category_index.emplace(ds.categories[c].id, c);
    for (const auto& a : ds.annotations) {
      auto c = category_index.find(a.category_id);
      if (c == category_index.end()) continue;
      auto& v = classes_of[a.image_id];
      if (v.empty()) v.assign(nc, 0);
      v[c->second] = 1;
    }
  }
  // Per group, a bounded max-heap on (hash, index): keeps the per_group
  // smallest hashes in one pass.
  using Entry = std::pair<uint64_t, size_t>;
  std::vector<std::vector<Entry>> heaps(stats.splits.size() * groups_per_split);
  auto offer = [&](size_t g, Entry e) {
    auto& h = heaps[g];
    if (h.size() < per_group) {
      h.push_back(e);
      std::push_heap(h.begin(), h.end());
    } else if (!h.empty() && e < h.front()) {
      std::pop_heap(h.begin(), h.end());
      h.back() = e;
      std::push_heap(h.begin(), h.end());
    }
  };
  std::unordered_map<std::string, std::vector<size_t>> copies_of;
  for (size_t i = 0; i < ds.images.size(); ++i) {
    const Image& img = ds.images[i];
    if (!img.origin.empty()) {
      copies_of[img.origin.image].push_back(i);
      continue;
    }
    if (per_group == 0) continue;
    const size_t s = split_index.at(img.split.empty() ? kUnsplit : img.split);
    const Entry e{SeededHash(seed, img.file_name), i};
    auto it = classes_of.find(img.id);
    if (it == classes_of.end()) {
      offer(s * groups_per_split + nc, e);
      continue;
    }
    for (size_t c = 0; c < nc; ++c) {
      if (it->second[c]) offer(s * groups_per_split + c, e);
    }
  }
  std::vector<GalleryGroup> out;
  for (size_t s = 0; s < stats.splits.size(); ++s) {
    for (size_t g = 0; g < groups_per_split; ++g) {
      auto& h = heaps[s * groups_per_split + g];
      if (h.empty()) continue;
      std::sort(h.begin(), h.end());
      const std::string name = g < nc ? (stats.image_level ? stats.labels[g] : stats.classes[g])
                                      : (stats.image_level ? "no label" : "negatives");
      GalleryGroup group{stats.splits[s], name, {}, {}};
      for (const auto& [hash, i] : h) {
        group.images.push_back(i);
        std::vector<size_t> copies;
        if (auto it = copies_of.find(ds.images[i].file_name); it != copies_of.end()) copies = it->second;
        std::sort(copies.begin(), copies.end(),
                  [&](size_t a, size_t b) { return ds.images[a].file_name < ds.images[b].file_name; });
        if (copies.size() > max_copies) copies.resize(max_copies);
        group.copies.push_back(std::move(copies));
      }
      out.push_back(std::move(group));
    }
  }
  return out;
}

}  // namespace medpipe::report
