#include "stages/patient_groups.h"

#include <algorithm>
#include <map>
#include <set>

#include "util/strings.h"

namespace medpipe {

uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t SeededHash(uint64_t seed, std::string_view key) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
  return Mix64(h ^ Mix64(seed));
}

uint32_t UnionFind::Node(const std::string& key) {
  auto [it, inserted] = ids_.try_emplace(key, static_cast<uint32_t>(parent_.size()));
  if (inserted) {
    parent_.push_back(it->second);
    keys_.push_back(key);
  }
  return it->second;
}

uint32_t UnionFind::Find(uint32_t x) {
  while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
  return x;
}

void UnionFind::Union(uint32_t a, uint32_t b) {
  a = Find(a), b = Find(b);
  if (a != b) parent_[std::max(a, b)] = std::min(a, b);
}

std::string PatientFromName(const std::string& file_name, const std::regex& pattern) {
  const size_t slash = file_name.rfind('/');
  for (const std::string& subject :
       {slash == std::string::npos ? file_name : file_name.substr(slash + 1), file_name}) {
    std::smatch m;
    if (std::regex_search(subject, m, pattern) && m.size() > 1 && m[1].matched && m[1].length() > 0) {
      return m[1].str();
    }
  }
  return std::string();
}

std::vector<std::string> FindPatientLeaks(const Dataset& dataset, const std::vector<std::string>& bins,
                                          const std::string& group_attribute) {
  std::map<std::string, std::set<std::string>> where;
  for (size_t i = 0; i < dataset.images.size(); ++i) {
    const Image& img = dataset.images[i];
    if (!img.patient_id.empty()) where["patient " + img.patient_id].insert(bins[i]);
    if (!group_attribute.empty()) {
      auto it = img.attributes.find(group_attribute);
      if (it != img.attributes.end()) where["group " + AttrToString(it->second)].insert(bins[i]);
    }
  }
  std::vector<std::string> leaks;
  for (const auto& [key, set] : where) {
    if (set.size() > 1) leaks.push_back(key + " in " + Join(std::vector<std::string>(set.begin(), set.end()), ", "));
  }
  return leaks;
}

}  // namespace medpipe
