#include "graph/sources.h"

#include "util/fs.h"

namespace medpipe {

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
  }
  return errors;
}

}  // namespace medpipe
