// The multi-label group stratification: properties over random datasets,
// balance against scikit-learn's StratifiedGroupKFold (shuffle=False, y = the
// rarest label; python3-sklearn 1.2.1) on the same data, stability, and
// class weights that only the training part decides.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <sstream>

#include "stages/multilabel_folds.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

// CT-RATE-shaped data: patients with 1-4 volumes (scans x reconstructions),
// 18 labels with prevalences 0.02..0.45, correlated within a patient.
MultiLabelItems RandomItems(uint64_t seed, int patients, size_t labels = 18) {
  std::mt19937_64 rng(seed);
  auto uniform = [&] { return static_cast<double>(rng() >> 11) / 9007199254740992.0; };
  MultiLabelItems m;
  m.labels = labels;
  for (int p = 0; p < patients; ++p) {
    m.group_keys.push_back("patient" + std::to_string(p));
    std::vector<uint8_t> base(labels);
    for (size_t l = 0; l < labels; ++l) base[l] = uniform() < 0.02 + 0.43 * static_cast<double>(l) / (labels - 1);
    int volumes = 1 + static_cast<int>(uniform() * 2) + (uniform() < 0.2 ? 2 : 0);
    for (int v = 0; v < volumes; ++v) {
      m.group.push_back(static_cast<uint32_t>(p));
      for (size_t l = 0; l < labels; ++l) m.y.push_back(uniform() < 0.1 ? !base[l] : base[l]);
    }
  }
  return m;
}

std::vector<int> ItemBins(const MultiLabelItems& m, const std::vector<int>& group_bins) {
  std::vector<int> out(m.items());
  for (size_t i = 0; i < m.items(); ++i) out[i] = group_bins[m.group[i]];
  return out;
}

// Empty (fold, label) pairs that moving one group would fill without
// emptying as many others: the repair step leaves none.
int64_t FillableEmptyPairs(const MultiLabelItems& m, const std::vector<int>& group_bins, int k) {
  const size_t G = m.group_keys.size(), L = m.labels;
  std::vector<std::vector<uint8_t>> has(G, std::vector<uint8_t>(L, 0));
  for (size_t i = 0; i < m.items(); ++i)
    for (size_t l = 0; l < L; ++l) has[m.group[i]][l] |= m.positive(i, l);
  std::vector<std::vector<int>> in(k, std::vector<int>(L, 0));
  std::vector<int> groups(L, 0);
  for (size_t g = 0; g < G; ++g)
    for (size_t l = 0; l < L; ++l) in[group_bins[g]][l] += has[g][l], groups[l] += has[g][l];
  int64_t fillable = 0;
  for (size_t l = 0; l < L; ++l) {
    if (groups[l] < k) continue;
    for (int b = 0; b < k; ++b) {
      if (in[b][l]) continue;
      bool any = false;
      for (size_t g = 0; g < G && !any; ++g) {
        if (!has[g][l]) continue;
        int gain = 0;
        for (size_t ll = 0; ll < L; ++ll) {
          if (!has[g][ll] || groups[ll] < k) continue;
          gain += (in[b][ll] == 0) - (in[group_bins[g]][ll] == 1);
        }
        any = gain > 0;
      }
      fillable += any;
    }
  }
  return fillable;
}

TEST(MultilabelFolds, PropertiesOverRandomDatasets) {
  // Seeds 1-20: tiny datasets (8..27 patients, 18 correlated labels), where
  // an empty (fold, label) pair can be forced by the other labels; seeds
  // 21-40: 70..450 patients, where none beyond max(0, k - positive patients)
  // may remain.
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const bool tiny = seed <= 20;
    MultiLabelItems m = RandomItems(seed, tiny ? 7 + static_cast<int>(seed) : 50 + 20 * static_cast<int>(seed - 20));
    const int k = 5;
    std::vector<int> g = StratifyGroups(m, std::vector<double>(k, 1.0 / k), seed);
    ASSERT_EQ(g.size(), m.group_keys.size());
    for (int b : g) ASSERT_TRUE(b >= 0 && b < k);
    // Each item is in exactly one validation part, which is its group's bin:
    // no patient can be in two.
    std::vector<int> items = ItemBins(m, g);
    std::map<uint32_t, std::set<int>> seen;
    for (size_t i = 0; i < items.size(); ++i) seen[m.group[i]].insert(items[i]);
    for (const auto& [group, bins] : seen) EXPECT_EQ(bins.size(), 1u);
    FoldBalance f = EvaluateBins(m, items, k);
    int64_t total = 0;
    for (int64_t n : f.items) total += n;
    EXPECT_EQ(total, static_cast<int64_t>(m.items()));
    EXPECT_EQ(FillableEmptyPairs(m, g, k), 0) << "seed " << seed;
    if (!tiny) {
      EXPECT_EQ(f.zero_positive_pairs, f.unavoidable_zero_pairs) << "seed " << seed;
    }
  }
}

TEST(MultilabelFolds, StableForASeedWhateverTheOrder) {
  MultiLabelItems m = RandomItems(7, 200);
  std::vector<int> a = StratifyGroups(m, {0.2, 0.2, 0.2, 0.2, 0.2}, 11);
  // The same groups listed in reverse order (items too).
  MultiLabelItems r;
  r.labels = m.labels;
  const size_t G = m.group_keys.size();
  for (size_t g = 0; g < G; ++g) r.group_keys.push_back(m.group_keys[G - 1 - g]);
  for (size_t i = m.items(); i-- > 0;) {
    r.group.push_back(static_cast<uint32_t>(G - 1 - m.group[i]));
    r.y.insert(r.y.end(), m.y.begin() + static_cast<long>(i * m.labels), m.y.begin() + static_cast<long>((i + 1) * m.labels));
  }
  std::vector<int> b = StratifyGroups(r, {0.2, 0.2, 0.2, 0.2, 0.2}, 11);
  for (size_t g = 0; g < G; ++g) EXPECT_EQ(a[g], b[G - 1 - g]);
  EXPECT_NE(a, StratifyGroups(m, {0.2, 0.2, 0.2, 0.2, 0.2}, 12)) << "another seed, other folds";
}

// The balance bar: scikit-learn's StratifiedGroupKFold(shuffle=False) on
// y = the rarest label, measured on the same data with the same metric.
TEST(MultilabelFolds, NoWorseThanSklearnStratifiedGroupKFold) {
  testing::TempDir dir;
  for (uint64_t seed : {3, 4, 5}) {
    MultiLabelItems m = RandomItems(seed, 800);
    std::vector<int> items = ItemBins(m, StratifyGroups(m, std::vector<double>(5, 0.2), seed));
    FoldBalance ours = EvaluateBins(m, items, 5);
    std::ostringstream csv;
    for (size_t i = 0; i < m.items(); ++i) {
      csv << m.group[i];
      for (size_t l = 0; l < m.labels; ++l) csv << "," << int(m.positive(i, l));
      csv << "\n";
    }
    testing::WriteText(dir / "items.csv", csv.str());
    testing::WriteText(dir / "ref.py", R"(
import sys, numpy as np
from sklearn.model_selection import StratifiedGroupKFold
d = np.loadtxt(sys.argv[1], delimiter=',', dtype=int)
groups, Y = d[:, 0], d[:, 1:]
rare = int(np.argmin(Y.sum(0)))
fold = np.zeros(len(d), dtype=int)
for k, (_, val) in enumerate(StratifiedGroupKFold(5, shuffle=False).split(Y, Y[:, rare], groups)):
    fold[val] = k
overall = Y.mean(0)
devs = []
for k in range(5):
    share = Y[fold == k].mean(0)
    devs += list(np.abs(share - overall)[overall > 0] / overall[overall > 0])
print(np.mean(devs), np.max(devs))
)");
    auto p = testing::RunProcess({"/usr/bin/python3", (dir / "ref.py").string(), (dir / "items.csv").string()});
    ASSERT_EQ(p.exit_code, 0) << p.err;
    double mean = 0, worst = 0;
    std::istringstream(p.out) >> mean >> worst;
    EXPECT_LE(ours.mean_deviation, mean) << "seed " << seed;
    EXPECT_LE(ours.worst_deviation, worst) << "seed " << seed;
    std::printf("seed %d: mean relative deviation %.4f (sklearn %.4f), worst %.4f (sklearn %.4f)\n",
                static_cast<int>(seed), ours.mean_deviation, mean, ours.worst_deviation, worst);
  }
}

TEST(MultilabelFolds, ClassWeightsComeFromTheTrainingPartOnly) {
  MultiLabelItems m = RandomItems(9, 100);
  std::vector<int> items = ItemBins(m, StratifyGroups(m, std::vector<double>(5, 0.2), 9));
  std::vector<bool> train(m.items());
  for (size_t i = 0; i < m.items(); ++i) train[i] = items[i] != 0;
  ClassWeights a = ComputeClassWeights(m, train, 1.0);
  MultiLabelItems changed = m;
  for (size_t i = 0; i < m.items(); ++i) {
    if (!train[i]) {
      for (size_t l = 0; l < m.labels; ++l) changed.y[i * m.labels + l] ^= 1;
    }
  }
  ClassWeights b = ComputeClassWeights(changed, train, 1.0);
  EXPECT_EQ(a.pos_weight, b.pos_weight);
  EXPECT_EQ(a.inverse_frequency, b.inverse_frequency);
  EXPECT_EQ(a.focal_alpha, b.focal_alpha);
  // By hand on a tiny set: 4 training items, label 0 positive in 1, label 1 in none.
  MultiLabelItems t;
  t.labels = 2;
  t.group_keys = {"a"};
  t.group = {0, 0, 0, 0};
  t.y = {1, 0, 0, 0, 0, 0, 0, 0};
  ClassWeights w = ComputeClassWeights(t, {true, true, true, true}, 7.5);
  EXPECT_DOUBLE_EQ(w.pos_weight[0], 3.0);
  EXPECT_DOUBLE_EQ(w.focal_alpha[0], 0.75);
  EXPECT_DOUBLE_EQ(w.inverse_frequency[0], 1.0);
  EXPECT_DOUBLE_EQ(w.pos_weight[1], 7.5);
  EXPECT_DOUBLE_EQ(w.inverse_frequency[1], 7.5);
  EXPECT_EQ(w.zero, (std::vector<size_t>{1}));
}

TEST(MultilabelFolds, HoldoutSharesFollowTheRatios) {
  MultiLabelItems m = RandomItems(21, 600);
  std::vector<int> items = ItemBins(m, StratifyGroups(m, {0.8, 0.1, 0.1}, 2));
  FoldBalance f = EvaluateBins(m, items, 3);
  EXPECT_NEAR(static_cast<double>(f.items[0]) / m.items(), 0.8, 0.02);
  EXPECT_NEAR(static_cast<double>(f.items[1]) / m.items(), 0.1, 0.02);
  EXPECT_LT(f.mean_deviation, 0.15);
}

}  // namespace
}  // namespace medpipe
