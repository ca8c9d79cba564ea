// The table of stage kinds: each kind's spec (for validation and `medpipe
// stages`) and its factory. Built-in kinds register in one block in
// registry.cc; tests may build their own table.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/pipeline.h"
#include "stages/stage.h"

namespace medpipe {

struct StageKind {
  KindSpec spec;
  StageFactory factory;
};

class Registry : public KindCatalog {
 public:
  void Add(StageKind kind);
  const StageKind* Find(const std::string& name) const;
  std::vector<const StageKind*> All() const;

  const KindSpec* FindKind(const std::string& name) const override;
  std::vector<std::string> KindNames() const override;

  // Builds every stage of `pipeline` through its factory: typed options are
  // checked here, before anything runs. All factory errors are reported.
  Result<std::vector<std::unique_ptr<Stage>>> Instantiate(const Pipeline& pipeline) const;

 private:
  std::map<std::string, StageKind> kinds_;
};

// The registry of every built-in stage kind.
const Registry& BuiltinRegistry();

// One registration function per kind, each defined in its stage's file.
void RegisterAnnotate(Registry* registry);
void RegisterFilter(Registry* registry);
void RegisterConvert(Registry* registry);
void RegisterDownload(Registry* registry);
void RegisterValidate(Registry* registry);
void RegisterAnalyze(Registry* registry);
void RegisterExport(Registry* registry);
void RegisterAugment(Registry* registry);
void RegisterMerge(Registry* registry);
void RegisterSplit(Registry* registry);
void RegisterBalance(Registry* registry);
void RegisterCtPrep(Registry* registry);
void RegisterFolds(Registry* registry);
void RegisterInferenceResults(Registry* registry);
void RegisterSelect(Registry* registry);
void RegisterDegrade(Registry* registry);
void RegisterEchoExport(Registry* registry);
void RegisterReport(Registry* registry);
void RegisterClassify(Registry* registry);
void RegisterCommand(Registry* registry);

}  // namespace medpipe
