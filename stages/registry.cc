#include "stages/registry.h"

#include "util/strings.h"

namespace medpipe {

void Registry::Add(StageKind kind) {
  std::string name = kind.spec.name;
  kinds_[name] = std::move(kind);
}

const StageKind* Registry::Find(const std::string& name) const {
  auto it = kinds_.find(name);
  return it == kinds_.end() ? nullptr : &it->second;
}

std::vector<const StageKind*> Registry::All() const {
  std::vector<const StageKind*> out;
  for (const auto& [name, kind] : kinds_) out.push_back(&kind);
  return out;
}

const KindSpec* Registry::FindKind(const std::string& name) const {
  const StageKind* k = Find(name);
  return k ? &k->spec : nullptr;
}

std::vector<std::string> Registry::KindNames() const {
  std::vector<std::string> out;
  for (const auto& [name, kind] : kinds_) out.push_back(name);
  return out;
}

Result<std::vector<std::unique_ptr<Stage>>> Registry::Instantiate(const Pipeline& pipeline) const {
  std::vector<std::unique_ptr<Stage>> stages;
  std::vector<std::string> errors;
  for (const auto& decl : pipeline.stages) {
    const StageKind* kind = Find(decl.kind);
    if (!kind) {
      errors.push_back(decl.loc.ToString() + ": unknown kind '" + decl.kind + "'");
      stages.emplace_back();
      continue;
    }
    Result<std::unique_ptr<Stage>> stage = kind->factory(decl, pipeline.seed);
    if (!stage.ok()) {
      errors.push_back(stage.status().message());
      stages.emplace_back();
      continue;
    }
    stages.push_back(std::move(stage).value());
  }
  if (!errors.empty()) return Status::Config(Join(errors, "\n"));
  return stages;
}

const Registry& BuiltinRegistry() {
  static const Registry* registry = [] {
    auto* r = new Registry;
    RegisterAnnotate(r);
    RegisterFilter(r);
    RegisterConvert(r);
    RegisterDownload(r);
    RegisterValidate(r);
    RegisterAnalyze(r);
    RegisterExport(r);
    RegisterAugment(r);
    RegisterMerge(r);
    RegisterSplit(r);
    RegisterBalance(r);
    RegisterCtPrep(r);
    RegisterFolds(r);
    RegisterInferenceResults(r);
    RegisterSelect(r);
    RegisterDegrade(r);
    RegisterEchoExport(r);
    RegisterReport(r);
    RegisterClassify(r);
    RegisterCommand(r);
    return r;
  }();
  return *registry;
}

}  // namespace medpipe
