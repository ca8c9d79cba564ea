#include "stages/multilabel_folds.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "stages/patient_groups.h"

namespace medpipe {

std::vector<int> StratifyGroups(const MultiLabelItems& items, const std::vector<double>& shares, uint64_t seed) {
  const size_t G = items.group_keys.size(), L = items.labels, B = shares.size();
  // Per group: its size and its positives per label (sparse).
  std::vector<int64_t> size(G, 0);
  std::vector<std::vector<std::pair<uint32_t, int64_t>>> pos(G);
  {
    std::vector<std::vector<size_t>> members(G);
    for (size_t i = 0; i < items.items(); ++i) members[items.group[i]].push_back(i);
    std::vector<int64_t> count(L, 0);
    for (size_t g = 0; g < G; ++g) {
      size[g] = static_cast<int64_t>(members[g].size());
      for (size_t i : members[g]) {
        for (size_t l = 0; l < L; ++l) count[l] += items.positive(i, l);
      }
      for (size_t l = 0; l < L; ++l) {
        if (count[l]) pos[g].emplace_back(static_cast<uint32_t>(l), count[l]), count[l] = 0;
      }
    }
  }
  std::vector<uint64_t> tie(G);
  for (size_t g = 0; g < G; ++g) tie[g] = SeededHash(seed, items.group_keys[g]);

  std::vector<double> want_items(B);
  std::vector<std::vector<double>> want(B, std::vector<double>(L));
  std::vector<int64_t> remaining(L, 0);
  for (size_t g = 0; g < G; ++g) {
    for (auto [l, n] : pos[g]) remaining[l] += n;
  }
  for (size_t b = 0; b < B; ++b) {
    want_items[b] = shares[b] * static_cast<double>(items.items());
    for (size_t l = 0; l < L; ++l) want[b][l] = shares[b] * static_cast<double>(remaining[l]);
  }
  std::vector<int> bin(G, -1);
  auto assign = [&](size_t g, int b) {
    bin[g] = b;
    want_items[b] -= static_cast<double>(size[g]);
    for (auto [l, n] : pos[g]) want[b][l] -= static_cast<double>(n), remaining[l] -= n;
  };
  // Tie-break between bins for one group: a hash of the group and the bin,
  // so equal bins are not always filled in index order.
  auto bin_tie = [&](size_t g, size_t b) { return Mix64(tie[g] + b); };

  // Groups by label, for the label passes.
  std::vector<std::vector<uint32_t>> groups_of(L);
  for (size_t g = 0; g < G; ++g) {
    for (auto [l, n] : pos[g]) groups_of[l].push_back(static_cast<uint32_t>(g));
  }
  std::vector<bool> done_label(L, false);
  for (;;) {
    int label = -1;
    for (size_t l = 0; l < L; ++l) {
      if (done_label[l] || remaining[l] <= 0) continue;
      if (label < 0 || remaining[l] < remaining[static_cast<size_t>(label)]) label = static_cast<int>(l);
    }
    if (label < 0) break;
    const size_t l = static_cast<size_t>(label);
    done_label[l] = true;
    std::vector<uint32_t> unassigned;
    for (uint32_t g : groups_of[l]) {
      if (bin[g] < 0) unassigned.push_back(g);
    }
    auto count_of = [&](uint32_t g) {
      for (auto [ll, n] : pos[g]) {
        if (ll == l) return n;
      }
      return int64_t{0};
    };
    std::sort(unassigned.begin(), unassigned.end(), [&](uint32_t a, uint32_t b) {
      int64_t ca = count_of(a), cb = count_of(b);
      if (ca != cb) return ca > cb;
      if (size[a] != size[b]) return size[a] > size[b];
      if (tie[a] != tie[b]) return tie[a] < tie[b];
      return items.group_keys[a] < items.group_keys[b];
    });
    for (uint32_t g : unassigned) {
      size_t best = 0;
      for (size_t b = 1; b < B; ++b) {
        if (want[b][l] != want[best][l]) {
          if (want[b][l] > want[best][l]) best = b;
        } else if (want_items[b] != want_items[best]) {
          if (want_items[b] > want_items[best]) best = b;
        } else if (bin_tie(g, b) < bin_tie(g, best)) {
          best = b;
        }
      }
      assign(g, static_cast<int>(best));
    }
  }
  std::vector<uint32_t> rest;
  for (size_t g = 0; g < G; ++g) {
    if (bin[g] < 0) rest.push_back(static_cast<uint32_t>(g));
  }
  std::sort(rest.begin(), rest.end(), [&](uint32_t a, uint32_t b) {
    if (size[a] != size[b]) return size[a] > size[b];
    if (tie[a] != tie[b]) return tie[a] < tie[b];
    return items.group_keys[a] < items.group_keys[b];
  });
  for (uint32_t g : rest) {
    size_t best = 0;
    for (size_t b = 1; b < B; ++b) {
      if (want_items[b] != want_items[best] ? want_items[b] > want_items[best] : bin_tie(g, b) < bin_tie(g, best)) {
        best = b;
      }
    }
    assign(g, static_cast<int>(best));
  }

  // Repair: a (bin, label) pair left without positives although the label
  // has a positive group for every bin happens when the label's groups were
  // all placed in the passes of rarer labels. A held-out part without a
  // single positive of a label is worse for training than a share slightly
  // off, so groups are moved into such bins while a move fills more empty
  // pairs than it empties (the net gain, then the smaller group, then the
  // seeded hash decide between candidates). Each move lowers the number of
  // empty pairs, so this ends.
  std::vector<std::vector<int64_t>> groups_in(B, std::vector<int64_t>(L, 0));
  for (size_t g = 0; g < G; ++g) {
    for (auto [l, n] : pos[g]) ++groups_in[static_cast<size_t>(bin[g])][l];
  }
  auto gain = [&](uint32_t g, size_t to) {
    const size_t from = static_cast<size_t>(bin[g]);
    int64_t filled = 0, emptied = 0;
    for (auto [l, n] : pos[g]) {
      if (groups_of[l].size() < B) continue;  // its empty pairs are unavoidable anyway
      filled += groups_in[to][l] == 0;
      emptied += groups_in[from][l] == 1;
    }
    return filled - emptied;
  };
  for (bool moved = true; moved;) {
    moved = false;
    for (size_t l = 0; l < L; ++l) {
      if (groups_of[l].size() < B) continue;
      for (size_t b = 0; b < B; ++b) {
        if (groups_in[b][l] > 0) continue;
        int64_t best = -1, best_gain = 0;
        for (uint32_t g : groups_of[l]) {
          int64_t gn = gain(g, b);
          if (gn <= 0) continue;
          if (best < 0 || gn > best_gain ||
              (gn == best_gain && (size[g] < size[best] || (size[g] == size[best] && tie[g] < tie[best])))) {
            best = g, best_gain = gn;
          }
        }
        if (best < 0) continue;
        for (auto [ll, n] : pos[best]) --groups_in[static_cast<size_t>(bin[best])][ll], ++groups_in[b][ll];
        bin[best] = static_cast<int>(b);
        moved = true;
      }
    }
  }
  return bin;
}

FoldBalance EvaluateBins(const MultiLabelItems& items, const std::vector<int>& bin_of_item, int bins) {
  const size_t L = items.labels, B = static_cast<size_t>(bins);
  FoldBalance f;
  f.positives.assign(B, std::vector<int64_t>(L, 0));
  f.unknown.assign(B, std::vector<int64_t>(L, 0));
  f.deviation.assign(B, std::vector<double>(L, 0));
  f.items.assign(B, 0);
  std::vector<int64_t> total(L, 0), unknown(L, 0);
  for (size_t i = 0; i < items.items(); ++i) {
    size_t b = static_cast<size_t>(bin_of_item[i]);
    ++f.items[b];
    for (size_t l = 0; l < L; ++l) {
      if (items.positive(i, l)) ++f.positives[b][l], ++total[l];
      if (!items.known(i, l)) ++f.unknown[b][l], ++unknown[l];
    }
  }
  // Positive groups per label, for the unavoidable empty (bin, label) pairs.
  std::vector<std::vector<uint8_t>> group_has(L, std::vector<uint8_t>(items.group_keys.size(), 0));
  for (size_t i = 0; i < items.items(); ++i) {
    for (size_t l = 0; l < L; ++l) {
      if (items.positive(i, l)) group_has[l][items.group[i]] = 1;
    }
  }
  double sum = 0;
  int64_t pairs = 0;
  const double n = static_cast<double>(items.items());
  for (size_t l = 0; l < L; ++l) {
    if (total[l] == 0) continue;
    int64_t groups = std::accumulate(group_has[l].begin(), group_has[l].end(), int64_t{0});
    f.unavoidable_zero_pairs += std::max<int64_t>(0, bins - groups);
    const double overall = static_cast<double>(total[l]) / (n - static_cast<double>(unknown[l]));
    for (size_t b = 0; b < B; ++b) {
      const int64_t known = f.items[b] - f.unknown[b][l];
      double share = known ? static_cast<double>(f.positives[b][l]) / static_cast<double>(known) : 0.0;
      double dev = std::abs(share - overall) / overall;
      f.deviation[b][l] = dev;
      sum += dev;
      ++pairs;
      f.worst_deviation = std::max(f.worst_deviation, dev);
      if (f.positives[b][l] == 0) ++f.zero_positive_pairs;
    }
  }
  f.mean_deviation = pairs ? sum / static_cast<double>(pairs) : 0.0;
  return f;
}

ClassWeights ComputeClassWeights(const MultiLabelItems& items, const std::vector<bool>& in_train, double zero_value) {
  const size_t L = items.labels;
  ClassWeights w;
  w.positives.assign(L, 0);
  w.known.assign(L, 0);
  w.unknown.assign(L, 0);
  for (size_t i = 0; i < items.items(); ++i) {
    if (!in_train[i]) continue;
    ++w.n;
    for (size_t l = 0; l < L; ++l) {
      w.positives[l] += items.positive(i, l);
      (items.known(i, l) ? w.known[l] : w.unknown[l]) += 1;
    }
  }
  w.pos_weight.assign(L, zero_value);
  w.inverse_frequency.assign(L, zero_value);
  w.focal_alpha.assign(L, 1.0);
  double inv_sum = 0;
  size_t with = 0;
  for (size_t l = 0; l < L; ++l) {
    const double p = static_cast<double>(w.positives[l]), n = static_cast<double>(w.known[l]);
    if (w.known[l] > 0) w.focal_alpha[l] = (n - p) / n;
    if (p == 0) {
      w.zero.push_back(l);
      continue;
    }
    w.pos_weight[l] = (n - p) / p;
    inv_sum += n / p;
    ++with;
  }
  for (size_t l = 0; l < L; ++l) {
    if (w.positives[l] > 0) {
      const double n = static_cast<double>(w.known[l]);
      w.inverse_frequency[l] = (n / static_cast<double>(w.positives[l])) / (inv_sum / static_cast<double>(with));
    }
  }
  return w;
}

}  // namespace medpipe
