// Multi-label stratified assignment of patient groups to folds or holdout
// splits, its balance report and per-split class weights. Plain data in,
// plain data out: no datasets, no pipelines (stages/folds.cc adapts).
//
// Algorithm: Sechidis, Tsoumakas and Vlahavas (2011), "On the stratification
// of multi-label data", iterative stratification, applied to groups (every
// scan and reconstruction of a patient) instead of single examples.
// Each bin b wants share_b of every label's positives and of the items.
// Repeatedly, the label with the fewest positives still unassigned is
// taken; its groups (most positives of it first, then largest, ties by a
// seeded hash of the group key) each go to the bin that still wants the most
// of that label, ties to the bin that wants the most items, then by the
// seeded hash. A group's assignment lowers every bin want of all its labels.
// Groups with no positives at all go last, largest first, to the bin that
// wants the most items. Last, a (bin, label) pair left without positives
// where the label has a positive group per bin gets one moved in from a bin
// with two or more (see the .cc). Hand-written because no C++ library packaged for
// Debian implements it (scikit-multilearn and iterstrat are Python and work
// on examples, not groups).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace medpipe {

// An item's label is 0, 1 or kUnknown (a blank or unreadable cell). An
// unknown is neither a positive nor a negative: it is left out of that
// label's counts everywhere below (stratification places positives only;
// balance shares and class weights count the items whose label is known).
struct MultiLabelItems {
  static constexpr uint8_t kUnknown = 2;
  size_t labels = 0;
  std::vector<std::string> group_keys;  // one per group
  std::vector<uint32_t> group;          // per item: index into group_keys
  std::vector<uint8_t> y;               // items x labels, row-major, 0/1/kUnknown
  size_t items() const { return group.size(); }
  bool positive(size_t item, size_t label) const { return y[item * labels + label] == 1; }
  bool known(size_t item, size_t label) const { return y[item * labels + label] != kUnknown; }
};

// Returns the bin of every group. `shares` are positive and sum to 1.
// Stable: the result depends on the seed, the group keys and the labels,
// never on the order of the groups or the items.
std::vector<int> StratifyGroups(const MultiLabelItems& items, const std::vector<double>& shares, uint64_t seed);

// How well the bins' held-out parts follow the whole: per bin and label,
// the positives in the bin and the relative deviation of the label's share
// of positives in the bin from its share in all items,
// |pos_b / n_b - pos / n| / (pos / n), where n counts the items whose label
// is known. Labels without positives are left out of the mean and the worst.
struct FoldBalance {
  std::vector<std::vector<int64_t>> positives;    // [bin][label]
  std::vector<std::vector<int64_t>> unknown;      // [bin][label]
  std::vector<std::vector<double>> deviation;     // [bin][label]
  std::vector<int64_t> items;                     // [bin]
  double mean_deviation = 0, worst_deviation = 0;
  int64_t zero_positive_pairs = 0;  // (bin, label) with no positives where the label has some
  // The unavoidable ones: sum over labels of max(0, bins - positive groups).
  int64_t unavoidable_zero_pairs = 0;
};
FoldBalance EvaluateBins(const MultiLabelItems& items, const std::vector<int>& bin_of_item, int bins);

// Class weights of one training part (the items with `in_train` set), per
// label over the N items whose label is known (unknowns count neither as
// positives nor as negatives; a training loss should mask them):
//  pos_weight = N_neg / N_pos (BCEWithLogitsLoss's pos_weight);
//  inverse_frequency = (N / N_pos) / mean over labels with positives of (N / N_pos),
//    so the weights of labels with positives average 1;
//  focal_alpha = N_neg / N (the weight of the positive class, rare labels near 1).
// A label with no positives gets `zero_value` as pos_weight and
// inverse_frequency (never a division by zero) and is listed in `zero`.
struct ClassWeights {
  int64_t n = 0;  // training items
  std::vector<int64_t> positives, known, unknown;  // per label
  std::vector<double> pos_weight, inverse_frequency, focal_alpha;
  std::vector<size_t> zero;
};
ClassWeights ComputeClassWeights(const MultiLabelItems& items, const std::vector<bool>& in_train, double zero_value);

}  // namespace medpipe
