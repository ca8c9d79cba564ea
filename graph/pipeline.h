// A pipeline as parsed from its YAML file: plain structs describing the DAG
// of stage instances. Execution (TBB, checkpoints) lives in runner/; this is
// the description, as Acero keeps Declarations apart from ExecPlans.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "graph/executor.h"
#include "graph/params.h"
#include "util/status.h"

namespace medpipe {

// What a stage kind declares about itself: enough to validate a pipeline file
// and to list the kinds, without constructing anything.
struct KindSpec {
  std::string name;
  int version = 1;  // bump when the kind's output for the same inputs changes
  std::string help;
  std::vector<ParamSpec> params;
  int min_inputs = 0;
  int max_inputs = -1;  // -1: no limit
  // Its per-item work is heavy enough for a cluster: with the Slurm executor
  // its RunItems passes become job arrays. Whole-dataset kinds (merge,
  // split, validate, ...) always run in the controller.
  bool cluster_items = false;
  // Its items are extras beside its product (the report's thumbnails): all
  // of them failing is counted as problems but does not fail the stage.
  bool items_are_extras = false;
  // Paths inside object params, for the checks a run makes before any work:
  // {param, key} says every mapping key `key`, at any depth of the object
  // param `param`, holds a path relative to the pipeline file (merge's
  // sources: [{path: ...}] is {"sources", "path"}).
  std::vector<std::pair<std::string, std::string>> nested_paths = {};
  // `${NAME}` placeholders the kind fills in its params at run time (its
  // output folder, an input's folder, the current item): the file's
  // environment expansion leaves them as written. A trailing '*' matches any
  // rest ("inputs.*"). Every other `${VAR}` is expanded as anywhere.
  std::vector<std::string> placeholders = {};
};

class KindCatalog {
 public:
  virtual ~KindCatalog() = default;
  virtual const KindSpec* FindKind(const std::string& name) const = 0;
  virtual std::vector<std::string> KindNames() const = 0;
};

struct StageDecl {
  std::string id;
  std::string kind;
  std::vector<std::string> inputs;  // ids of the stages whose outputs it reads
  std::vector<SourceLoc> input_locs;  // where each input is written
  bool inputs_malformed = false;      // 'inputs' was not a list: skip count checks
  Params params;                    // typed, defaults applied
  SourceLoc loc;                    // of the stage's entry in the file
  std::string pipeline_name;        // the pipeline's name (overrides applied), for titles
  const KindSpec* spec = nullptr;
};

struct Pipeline {
  std::string name;
  std::string file;                   // the YAML file, as given
  std::filesystem::path dir;          // its directory: relative paths start here
  std::filesystem::path workdir;      // absolute
  uint64_t seed = 0;
  bool strict = false;                // any per-item problem fails its stage
  ExecutorDecl executor;              // where per-item work runs; in no fingerprint
  std::vector<StageDecl> stages;      // in topological order, ties in file order
  // "split.params.seed=3" for each --set applied, in the order given.
  std::vector<std::string> overrides;      // in topological order, ties in file order

  // Index of the stage with `id`, or -1.
  int Find(const std::string& id) const;
  // Indices of the stages that read stage `i`'s output directly.
  std::vector<size_t> Dependants(size_t i) const;
  // `i` and every stage downstream of it, or upstream of it.
  std::vector<bool> Downstream(size_t i) const;
  std::vector<bool> Upstream(size_t i) const;
};

// Parses and validates a pipeline file. Every problem found is reported, one
// per line as "file:line:col: message", in one kConfig status: unknown kind or
// param (with the closest known name), a value of the wrong type, missing or
// duplicate ids, inputs that do not exist, a cycle.
//
// Before validation, `${VAR}` and `${VAR:-default}` are expanded in every
// scalar from `options.env` (the process environment when unset), and the
// `--set` overrides are applied (see graph/expand.h).
struct LoadOptions {
  std::function<std::optional<std::string>(const std::string&)> env;  // null: the process environment
  std::vector<std::string> overrides;                                  // "PATH=VALUE", as given to --set
};
Result<Pipeline> LoadPipeline(const std::string& path, const KindCatalog& catalog, const LoadOptions& options = {});
Result<Pipeline> ParsePipeline(const std::string& text, const std::string& path, const KindCatalog& catalog,
                               const LoadOptions& options = {});

}  // namespace medpipe
