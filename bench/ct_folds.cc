// folds benchmark (issue 10): multi-label stratified 5-fold assignment of a
// CT-RATE-shaped dataset (default 50,000 volumes of 20,000 patients, 18
// labels with CT-RATE-like prevalences, labels shared within a patient with
// 10% flips per volume). Prints the wall time of StratifyGroups (best of 3)
// and the mean and worst relative deviation of each label's positive share
// per fold, and writes the items as CSV (group, 18 labels) so that
// bench/ct_folds_peer.py measures scikit-learn on exactly the same data.
//
//   build/bench_ct_folds [--volumes N] [--patients N] [--csv PATH]
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "stages/multilabel_folds.h"

using namespace medpipe;

int main(int argc, char** argv) {
  int volumes = 50000, patients = 20000;
  std::string csv;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--volumes") volumes = std::atoi(argv[i + 1]);
    else if (a == "--patients") patients = std::atoi(argv[i + 1]);
    else if (a == "--csv") csv = argv[i + 1];
  }
  if (patients < 1 || volumes < patients) {
    std::fprintf(stderr, "usage: bench_ct_folds [--volumes N >= patients] [--patients N] [--csv PATH]\n");
    return 2;
  }
  const double prevalence[18] = {0.10, 0.28, 0.11, 0.07, 0.25, 0.14, 0.25, 0.20, 0.26,
                                 0.45, 0.37, 0.27, 0.12, 0.08, 0.10, 0.17, 0.10, 0.07};
  std::mt19937_64 rng(20240101);
  auto uniform = [&] { return static_cast<double>(rng() >> 11) / 9007199254740992.0; };
  MultiLabelItems m;
  m.labels = 18;
  // Every patient gets one volume, the rest are spread at random.
  std::vector<int> count(static_cast<size_t>(patients), 1);
  for (int v = patients; v < volumes; ++v) ++count[static_cast<size_t>(rng() % static_cast<uint64_t>(patients))];
  for (int p = 0; p < patients; ++p) {
    m.group_keys.push_back(fmt::format("train_{}", p + 1));
    uint8_t base[18];
    for (int l = 0; l < 18; ++l) base[l] = uniform() < prevalence[l];
    for (int v = 0; v < count[static_cast<size_t>(p)]; ++v) {
      m.group.push_back(static_cast<uint32_t>(p));
      for (int l = 0; l < 18; ++l) m.y.push_back(uniform() < 0.1 ? !base[l] : base[l]);
    }
  }
  double best = 1e9;
  std::vector<int> groups;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    groups = StratifyGroups(m, std::vector<double>(5, 0.2), 42);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::vector<int> bins(m.items());
  for (size_t i = 0; i < m.items(); ++i) bins[i] = groups[m.group[i]];
  FoldBalance f = EvaluateBins(m, bins, 5);
  std::printf("medpipe folds: %zu volumes, %zu patients: %.3f s; mean relative deviation %.4f, worst %.4f, "
              "zero-positive fold-label pairs %lld\n",
              m.items(), m.group_keys.size(), best, f.mean_deviation, f.worst_deviation,
              static_cast<long long>(f.zero_positive_pairs));
  if (!csv.empty()) {
    FILE* out = std::fopen(csv.c_str(), "wb");
    if (!out) return 1;
    for (size_t i = 0; i < m.items(); ++i) {
      std::fprintf(out, "%u", m.group[i]);
      for (size_t l = 0; l < 18; ++l) std::fprintf(out, ",%d", m.positive(i, l) ? 1 : 0);
      std::fputc('\n', out);
    }
    std::fclose(out);
  }
  return 0;
}
