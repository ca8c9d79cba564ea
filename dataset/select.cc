#include "dataset/select.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "util/hash.h"

namespace medpipe {

namespace {

std::string Trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

std::optional<double> ParseNumber(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (*end != '\0' || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

Result<Predicate> ParsePredicate(std::string_view text) {
  static const std::pair<const char*, Predicate::Op> kOps[] = {
      {">=", Predicate::Op::kGe}, {"<=", Predicate::Op::kLe}, {"==", Predicate::Op::kEq},
      {"!=", Predicate::Op::kNe}, {">", Predicate::Op::kGt},  {"<", Predicate::Op::kLt},
      {" contains ", Predicate::Op::kContains}};
  // The leftmost operator wins; at one position the two-character ones come
  // first in the table, so ">=" is not read as ">".
  size_t best = std::string_view::npos, best_len = 0;
  Predicate p;
  for (const auto& [token, op] : kOps) {
    size_t at = text.find(token);
    if (at != std::string_view::npos && at < best) best = at, best_len = std::string_view(token).size(), p.op = op;
  }
  p.text = std::string(text);
  if (best == std::string_view::npos) {
    return Status::Invalid(fmt::format("'{}' is not '<field> <op> <value>' with op one of >=, <=, >, <, ==, !=, "
                                       "contains", text));
  }
  p.field = Trim(text.substr(0, best));
  p.value = Trim(text.substr(best + best_len));
  if (p.value.size() >= 2 && (p.value.front() == '\'' || p.value.front() == '"') && p.value.back() == p.value.front()) {
    p.value = p.value.substr(1, p.value.size() - 2);
  }
  if (p.field.empty() || p.field.find(' ') != std::string::npos) {
    return Status::Invalid(fmt::format("'{}': the field before the operator must be one name", text));
  }
  p.number = ParseNumber(p.value);
  bool ordered = p.op == Predicate::Op::kGe || p.op == Predicate::Op::kLe || p.op == Predicate::Op::kGt ||
                 p.op == Predicate::Op::kLt;
  if (ordered && !p.number) return Status::Invalid(fmt::format("'{}': the value must be a number", text));
  return p;
}

std::optional<std::string> ImageField(const Image& image, const std::string& field) {
  auto it = image.attributes.find(field);
  if (it != image.attributes.end()) return AttrToString(it->second);
  if (field == "file_name") return image.file_name;
  if (field == "patient_id") return image.patient_id.empty() ? std::nullopt : std::optional(image.patient_id);
  if (field == "source") return image.source.empty() ? std::nullopt : std::optional(image.source);
  if (field == "split") return image.split.empty() ? std::nullopt : std::optional(image.split);
  return std::nullopt;
}

bool Matches(const Predicate& p, const Image& image) {
  std::optional<std::string> v = ImageField(image, p.field);
  if (!v) return p.op == Predicate::Op::kNe;
  if (p.op == Predicate::Op::kContains) return v->find(p.value) != std::string::npos;
  std::optional<double> x = ParseNumber(*v);
  switch (p.op) {
    case Predicate::Op::kGe: return x && *x >= *p.number;
    case Predicate::Op::kLe: return x && *x <= *p.number;
    case Predicate::Op::kGt: return x && *x > *p.number;
    case Predicate::Op::kLt: return x && *x < *p.number;
    case Predicate::Op::kEq: return x && p.number ? *x == *p.number : *v == p.value;
    case Predicate::Op::kNe: return x && p.number ? *x != *p.number : *v != p.value;
    case Predicate::Op::kContains: break;
  }
  return false;
}

bool MatchesAll(const std::vector<Predicate>& predicates, const Image& image) {
  for (const Predicate& p : predicates) {
    if (!Matches(p, image)) return false;
  }
  return true;
}

AttrValue ParseAttrValue(const std::string& s) {
  char* end = nullptr;
  long long i = std::strtoll(s.c_str(), &end, 10);
  if (!s.empty() && *end == '\0') return int64_t{i};
  double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && *end == '\0') return d;
  if (s == "true" || s == "false") return s == "true";
  return s;
}

std::string SeededOrderKey(uint64_t seed, std::string_view key) {
  return HashBytes(fmt::format("{}\x1f{}", seed, key));
}

std::vector<size_t> SelectEvenly(const std::vector<std::string>& keys, const std::vector<std::string>& groups,
                                 size_t cap, uint64_t seed) {
  std::map<std::string, std::vector<size_t>> members;
  for (size_t i = 0; i < keys.size(); ++i) members[groups[i]].push_back(i);
  std::vector<std::string> order_key(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) order_key[i] = SeededOrderKey(seed, keys[i]);
  struct Queue {
    std::string order;
    std::vector<size_t> items;
    size_t next = 0;
  };
  std::vector<Queue> queues;
  for (auto& [name, items] : members) {
    std::sort(items.begin(), items.end(), [&](size_t a, size_t b) {
      return order_key[a] != order_key[b] ? order_key[a] < order_key[b] : keys[a] < keys[b];
    });
    queues.push_back(Queue{SeededOrderKey(seed, "group\x1f" + name), std::move(items)});
  }
  std::sort(queues.begin(), queues.end(), [](const Queue& a, const Queue& b) { return a.order < b.order; });
  if (cap == 0) cap = keys.size();
  std::vector<size_t> chosen;
  bool any = true;
  while (chosen.size() < cap && any) {
    any = false;
    for (Queue& q : queues) {
      if (chosen.size() >= cap) break;
      if (q.next < q.items.size()) chosen.push_back(q.items[q.next++]), any = true;
    }
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

}  // namespace medpipe
