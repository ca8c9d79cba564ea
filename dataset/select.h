// Choosing images of a dataset: predicates on their attributes, and caps
// filled evenly across groups. Used by the `select` and `degrade` stages;
// knows nothing of pipelines.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataset/dataset.h"
#include "util/status.h"

namespace medpipe {

// "<field> <op> <value>", e.g. "score >= 0.95", "status == PASS",
// "assessment contains Excellent". Ops: >=, <=, >, <, ==, !=, contains.
// The value may be quoted ('...' or "..."). A field is an attribute, or one
// of the image's own fields: file_name, patient_id, source, split.
//
// Semantics: >=, <=, > and < compare numbers (the value must be one, and an
// image whose field is absent or not a number does not match); == and !=
// compare numerically when both sides are numbers (so 1 == 1.0), else as
// text (bool attributes read as "true"/"false"); contains is a
// case-sensitive substring test. An absent field matches only !=.
struct Predicate {
  enum class Op { kGe, kLe, kGt, kLt, kEq, kNe, kContains };
  std::string field;
  Op op = Op::kEq;
  std::string value;
  std::optional<double> number;  // `value` as a number, when it is one
  std::string text;              // as written, for messages
};

Result<Predicate> ParsePredicate(std::string_view text);
bool Matches(const Predicate& p, const Image& image);
bool MatchesAll(const std::vector<Predicate>& predicates, const Image& image);

// An image's field as text (attributes through AttrToString), or nullopt.
std::optional<std::string> ImageField(const Image& image, const std::string& field);

// Picks up to `cap` of `keys` (0: no cap), spread evenly across `groups`
// (groups[i] is keys[i]'s group): round-robin over the groups, one each per
// round, so per-group counts differ by at most one unless a group runs out.
// Within a group, and among the groups served in the last, partial round,
// the order is a seeded hash of the key (then the key), so the choice is
// deterministic for a seed and favours no group by name. Returns indices
// into `keys`, ascending.
// REQUIRES: keys.size() == groups.size(); keys unique.
std::vector<size_t> SelectEvenly(const std::vector<std::string>& keys, const std::vector<std::string>& groups,
                                 size_t cap, uint64_t seed);

// A value written in a pipeline (`set: {quality_score: 1}`) as the
// attribute it stands for: an integer, a number, true/false, else the text.
AttrValue ParseAttrValue(const std::string& text);

// The seeded order SelectEvenly uses: a hex SHA-256 of the seed and the key.
std::string SeededOrderKey(uint64_t seed, std::string_view key);

}  // namespace medpipe
