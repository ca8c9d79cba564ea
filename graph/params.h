// Stage parameters: their declared specs, and the typed values parsed from a
// pipeline file. Plain data; nothing here knows about execution.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "util/status.h"

namespace medpipe {

// A place in a pipeline file. Lines and columns are 1-based.
struct SourceLoc {
  std::string file;
  int line = 0;
  int column = 0;
  // "file:line:col", or "file" when the position is unknown.
  std::string ToString() const;
};

SourceLoc LocOf(const std::string& file, const YAML::Node& node);

enum class ParamType { kBool, kInt, kFloat, kString, kPath, kStringList, kStringMap, kObject };
const char* ParamTypeName(ParamType type);

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::kString;
  // YAML text of the default; empty means "no default": the param is then
  // required when `required` is set and absent otherwise.
  std::string default_yaml;
  bool required = false;
  std::string help;
  std::vector<std::string> choices;  // for kString: the allowed values
};

using StringPairs = std::vector<std::pair<std::string, std::string>>;
using ParamValue =
    std::variant<std::monostate, bool, int64_t, double, std::string, std::vector<std::string>, StringPairs,
                 YAML::Node>;

// The parsed, typed params of one stage instance, defaults applied.
class Params {
 public:
  Params() = default;
  Params(std::string stage_id, SourceLoc block_loc) : stage_id_(std::move(stage_id)), block_loc_(std::move(block_loc)) {}

  void Set(const std::string& name, ParamValue value, SourceLoc loc);

  bool Has(const std::string& name) const;
  // REQUIRES: the param is declared with the matching type. Absent optional
  // params give the type's empty value.
  bool GetBool(const std::string& name) const;
  int64_t GetInt(const std::string& name) const;
  double GetFloat(const std::string& name) const;
  const std::string& GetString(const std::string& name) const;  // kString and kPath
  std::vector<std::string> GetStringList(const std::string& name) const;
  StringPairs GetStringMap(const std::string& name) const;
  YAML::Node GetObject(const std::string& name) const;

  // A config error located at the param (or the params block when the param
  // was not written), for stage factories that reject a value.
  Status Error(const std::string& name, const std::string& message) const;

  // One canonical JSON text per param, keyed by name: the fingerprint input
  // and what commit records keep to explain "params.ratio changed".
  std::map<std::string, std::string> Canonical() const;

  const std::string& stage_id() const { return stage_id_; }
  // Where the param is written (the params block when it was not).
  const SourceLoc& Loc(const std::string& name) const;

 private:
  struct Entry {
    ParamValue value;
    SourceLoc loc;
  };
  const Entry* Find(const std::string& name) const;

  std::string stage_id_;
  SourceLoc block_loc_;
  std::map<std::string, Entry> values_;
};

// A YAML integer scalar as the pipeline format reads it: decimal (leading
// zeros are decimal: "010" is 10, never octal 8), or 0x hex, or 0o octal
// (YAML 1.2), with an optional sign; nullopt for anything else or overflow.
std::optional<int64_t> ParseYamlInt(const std::string& text);
std::optional<uint64_t> ParseYamlUint(const std::string& text);  // the same, 0 to 2^64-1

// Converts `node` to `spec`'s type. Paths are resolved against `base_dir`.
// On a type mismatch returns a message such as "expected an integer, got
// 'abc'".
Result<ParamValue> ConvertParam(const ParamSpec& spec, const YAML::Node& node, const std::string& base_dir);

// Canonical JSON of any YAML node: mappings with sorted keys.
std::string CanonicalJson(const YAML::Node& node);
std::string JsonQuote(std::string_view s);

}  // namespace medpipe
