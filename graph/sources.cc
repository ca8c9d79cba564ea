#include "graph/sources.h"

#include <fmt/format.h>

#include "util/fs.h"

namespace medpipe {

namespace {

// Appends an error for every `key: PATH` at any depth of `node` whose path
// names nothing; `at` is the param's dotted place so far ("sources[0]").
void CheckNested(const Pipeline& p, const StageDecl& d, const std::string& file, const std::string& param,
                 const YAML::Node& node, const std::string& key, const std::string& at,
                 std::vector<std::string>* errors) {
  if (node.IsSequence()) {
    for (size_t k = 0; k < node.size(); ++k) CheckNested(p, d, file, param, node[k], key, fmt::format("{}[{}]", at, k), errors);
    return;
  }
  if (!node.IsMap()) return;
  for (const auto& kv : node) {
    const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
    const std::string here = at + "." + name;
    if (name == key && kv.second.IsScalar()) {
      const std::string& value = kv.second.Scalar();
      if (value.empty()) continue;
      fs::path path = fs::path(value).is_absolute() ? fs::path(value) : p.dir / value;
      if (TargetExists(path.lexically_normal().c_str())) continue;
      // Object params are kept as clones, which lose their marks: then the
      // param's own place is the closest one known.
      SourceLoc loc = LocOf(file, kv.second);
      if (kv.second.Mark().line <= 0 && kv.second.Mark().column <= 0) loc = d.params.Loc(param);
      errors->push_back(fmt::format("{}: stage '{}': params.{}: {} does not exist", loc.ToString(), d.id, here,
                                    path.lexically_normal().string()));
    } else {
      CheckNested(p, d, file, param, kv.second, key, here, errors);
    }
  }
}

}  // namespace

std::vector<std::string> MissingSources(const Pipeline& p) {
  std::vector<std::string> errors;
  for (const auto& d : p.stages) {
    if (!d.spec) continue;
    for (const auto& spec : d.spec->params) {
      if (spec.type != ParamType::kPath || !d.params.Has(spec.name)) continue;
      const std::string& path = d.params.GetString(spec.name);
      if (path.empty() || TargetExists(path.c_str())) continue;
      errors.push_back(d.params.Error(spec.name, path + " does not exist").message());
    }
    for (const auto& [param, key] : d.spec->nested_paths) {
      if (!d.params.Has(param)) continue;
      CheckNested(p, d, d.params.Loc(param).file, param, d.params.GetObject(param), key, param, &errors);
    }
  }
  return errors;
}

}  // namespace medpipe
