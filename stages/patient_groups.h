// What split and balance share about keeping patients together: a seeded
// order that does not depend on the standard library, union-find over
// patient and group keys, and the leakage check both run on their output.
#pragma once

#include <cstdint>
#include <regex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dataset/dataset.h"

namespace medpipe {

// Seeded order without std:: distributions (whose output differs between
// standard libraries): FNV-1a of the key, mixed with the seed by splitmix64.
uint64_t Mix64(uint64_t x);
uint64_t SeededHash(uint64_t seed, std::string_view key);

// Union-find over string keys; the root of a set is its first-seen key, so
// results depend only on the input order, never on hashing.
class UnionFind {
 public:
  uint32_t Node(const std::string& key);
  uint32_t Find(uint32_t x);
  void Union(uint32_t a, uint32_t b);
  const std::string& Key(uint32_t x) const { return keys_[x]; }

 private:
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<uint32_t> parent_;
  std::vector<std::string> keys_;
};

// Group 1 of `pattern` on the base name of `file_name` (the name a user sees
// and writes an anchored pattern for), else on the path as given; "" when
// neither matches or the group is empty.
std::string PatientFromName(const std::string& file_name, const std::regex& pattern);

// Every patient id and group value that appears in more than one bin, as
// "patient P1 in train, valid", sorted. `bins[i]` is image i's split or fold.
std::vector<std::string> FindPatientLeaks(const Dataset& dataset, const std::vector<std::string>& bins,
                                          const std::string& group_attribute);

}  // namespace medpipe
