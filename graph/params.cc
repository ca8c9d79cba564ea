#include "graph/params.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <limits>
#include <string_view>

namespace medpipe {

std::string SourceLoc::ToString() const {
  if (line <= 0) return file;
  return fmt::format("{}:{}:{}", file, line, column);
}

SourceLoc LocOf(const std::string& file, const YAML::Node& node) {
  SourceLoc loc{file, 0, 0};
  if (node.IsDefined() && node.Mark().line >= 0) {
    loc.line = node.Mark().line + 1;
    loc.column = node.Mark().column + 1;
  }
  return loc;
}

const char* ParamTypeName(ParamType type) {
  switch (type) {
    case ParamType::kBool: return "bool";
    case ParamType::kInt: return "int";
    case ParamType::kFloat: return "float";
    case ParamType::kString: return "string";
    case ParamType::kPath: return "path";
    case ParamType::kStringList: return "list of strings";
    case ParamType::kStringMap: return "map of strings";
    case ParamType::kObject: return "object";
  }
  return "?";
}

std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string CanonicalJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return "null";
    case YAML::NodeType::Scalar: return JsonQuote(node.Scalar());
    case YAML::NodeType::Sequence: {
      std::string out = "[";
      for (size_t i = 0; i < node.size(); ++i) {
        if (i) out += ",";
        out += CanonicalJson(node[i]);
      }
      return out + "]";
    }
    case YAML::NodeType::Map: {
      std::vector<std::pair<std::string, std::string>> items;
      for (const auto& kv : node) items.emplace_back(kv.first.Scalar(), CanonicalJson(kv.second));
      std::sort(items.begin(), items.end());
      std::string out = "{";
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ",";
        out += JsonQuote(items[i].first) + ":" + items[i].second;
      }
      return out + "}";
    }
  }
  return "null";
}

namespace {

std::string Describe(const YAML::Node& node) {
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "nothing";
}

std::string ValueJson(const ParamValue& v) {
  struct Visitor {
    std::string operator()(std::monostate) const { return "null"; }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return fmt::format("{}", d); }
    std::string operator()(const std::string& s) const { return JsonQuote(s); }
    std::string operator()(const std::vector<std::string>& l) const {
      std::string out = "[";
      for (size_t i = 0; i < l.size(); ++i) out += (i ? "," : "") + JsonQuote(l[i]);
      return out + "]";
    }
    std::string operator()(const StringPairs& m) const {
      // Order is kept: a map of patterns is tried in the order written.
      std::string out = "[";
      for (size_t i = 0; i < m.size(); ++i) {
        out += (i ? "," : "") + std::string("[") + JsonQuote(m[i].first) + "," + JsonQuote(m[i].second) + "]";
      }
      return out + "]";
    }
    std::string operator()(const YAML::Node& n) const { return CanonicalJson(n); }
  };
  return std::visit(Visitor{}, v);
}

}  // namespace

namespace {

// Sign and magnitude of a YAML integer scalar (see ParseYamlInt).
bool ParseYamlMagnitude(std::string_view s, bool* negative, uint64_t* magnitude) {
  *negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) *negative = s[0] == '-', s.remove_prefix(1);
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) base = 16, s.remove_prefix(2);
  else if (s.size() > 2 && s[0] == '0' && s[1] == 'o') base = 8, s.remove_prefix(2);
  if (s.empty()) return false;
  // from_chars takes no sign here (it was taken above) and only digits of `base`.
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *magnitude, base);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::optional<int64_t> ParseYamlInt(const std::string& text) {
  bool negative;
  uint64_t m;
  if (!ParseYamlMagnitude(text, &negative, &m)) return std::nullopt;
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (!negative) return m <= kMax ? std::optional<int64_t>(static_cast<int64_t>(m)) : std::nullopt;
  if (m == kMax + 1) return std::numeric_limits<int64_t>::min();
  return m <= kMax ? std::optional<int64_t>(-static_cast<int64_t>(m)) : std::nullopt;
}

std::optional<uint64_t> ParseYamlUint(const std::string& text) {
  bool negative;
  uint64_t m;
  if (!ParseYamlMagnitude(text, &negative, &m) || (negative && m != 0)) return std::nullopt;
  return m;
}

Result<ParamValue> ConvertParam(const ParamSpec& spec, const YAML::Node& node, const std::string& base_dir) {
  auto mismatch = [&](const char* want) {
    return Status::Config(fmt::format("expected {}, got {}", want, Describe(node)));
  };
  switch (spec.type) {
    case ParamType::kBool: {
      bool b;
      if (!node.IsScalar() || !YAML::convert<bool>::decode(node, b)) return mismatch("true or false");
      return ParamValue(b);
    }
    case ParamType::kInt: {
      // Not YAML::convert, which reads a leading 0 as octal ("010" -> 8).
      std::optional<int64_t> i = node.IsScalar() ? ParseYamlInt(node.Scalar()) : std::nullopt;
      if (!i) return mismatch("an integer");
      return ParamValue(*i);
    }
    case ParamType::kFloat: {
      double d;
      if (!node.IsScalar() || !YAML::convert<double>::decode(node, d)) return mismatch("a number");
      return ParamValue(d);
    }
    case ParamType::kString:
    case ParamType::kPath: {
      if (!node.IsScalar()) return mismatch("a string");
      std::string s = node.Scalar();
      if (!spec.choices.empty() && std::find(spec.choices.begin(), spec.choices.end(), s) == spec.choices.end()) {
        std::string all;
        for (const auto& c : spec.choices) all += (all.empty() ? "" : ", ") + c;
        return Status::Config(fmt::format("'{}' is not one of: {}", s, all));
      }
      if (spec.type == ParamType::kPath && !s.empty()) {
        std::filesystem::path p(s);
        if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
        s = p.lexically_normal().string();
      }
      return ParamValue(std::move(s));
    }
    case ParamType::kStringList: {
      if (!node.IsSequence()) return mismatch("a list of strings");
      std::vector<std::string> out;
      for (const auto& item : node) {
        if (!item.IsScalar()) {
          return Status::Config(fmt::format("expected a list of strings, item {} is {}", out.size() + 1, Describe(item)));
        }
        out.push_back(item.Scalar());
      }
      return ParamValue(std::move(out));
    }
    case ParamType::kStringMap: {
      if (!node.IsMap()) return mismatch("a mapping of strings");
      StringPairs out;
      for (const auto& kv : node) {
        if (!kv.second.IsScalar()) {
          return Status::Config(fmt::format("expected a string for key '{}', got {}", kv.first.Scalar(), Describe(kv.second)));
        }
        out.emplace_back(kv.first.Scalar(), kv.second.Scalar());
      }
      return ParamValue(std::move(out));
    }
    case ParamType::kObject:
      return ParamValue(YAML::Clone(node));
  }
  return mismatch("a value");
}

void Params::Set(const std::string& name, ParamValue value, SourceLoc loc) {
  values_[name] = Entry{std::move(value), std::move(loc)};
}

const Params::Entry* Params::Find(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : &it->second;
}

bool Params::Has(const std::string& name) const {
  const Entry* e = Find(name);
  return e && !std::holds_alternative<std::monostate>(e->value);
}


bool Params::GetBool(const std::string& name) const {
  const Entry* e = Find(name);
  return e && std::holds_alternative<bool>(e->value) ? std::get<bool>(e->value) : false;
}
int64_t Params::GetInt(const std::string& name) const {
  const Entry* e = Find(name);
  return e && std::holds_alternative<int64_t>(e->value) ? std::get<int64_t>(e->value) : 0;
}
double Params::GetFloat(const std::string& name) const {
  const Entry* e = Find(name);
  return e && std::holds_alternative<double>(e->value) ? std::get<double>(e->value) : 0.0;
}
const std::string& Params::GetString(const std::string& name) const {
  static const std::string kEmpty;
  const Entry* e = Find(name);
  return e && std::holds_alternative<std::string>(e->value) ? std::get<std::string>(e->value) : kEmpty;
}
std::vector<std::string> Params::GetStringList(const std::string& name) const {
  const Entry* e = Find(name);
  return e && std::holds_alternative<std::vector<std::string>>(e->value) ? std::get<std::vector<std::string>>(e->value)
                                                                          : std::vector<std::string>{};
}
StringPairs Params::GetStringMap(const std::string& name) const {
  const Entry* e = Find(name);
  return e && std::holds_alternative<StringPairs>(e->value) ? std::get<StringPairs>(e->value) : StringPairs{};
}
YAML::Node Params::GetObject(const std::string& name) const {
  const Entry* e = Find(name);
  return e && std::holds_alternative<YAML::Node>(e->value) ? std::get<YAML::Node>(e->value) : YAML::Node();
}

const SourceLoc& Params::Loc(const std::string& name) const {
  const Entry* e = Find(name);
  return e && e->loc.line > 0 ? e->loc : block_loc_;
}

Status Params::Error(const std::string& name, const std::string& message) const {
  const SourceLoc& loc = Loc(name);
  return Status::Config(fmt::format("{}: stage '{}': params.{}: {}", loc.ToString(), stage_id_, name, message));
}

std::map<std::string, std::string> Params::Canonical() const {
  std::map<std::string, std::string> out;
  for (const auto& [name, entry] : values_) out[name] = ValueJson(entry.value);
  return out;
}

}  // namespace medpipe
