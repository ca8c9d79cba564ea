// Pipeline file parsing: YAML text to Pipeline, with every error located.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "graph/executor.h"
#include "graph/expand.h"
#include "graph/pipeline.h"
#include "util/fs.h"
#include "util/strings.h"

namespace medpipe {

// Implemented in validate.cc: DAG checks and topological ordering.
Status OrderStages(Pipeline* pipeline, std::vector<std::string>* errors);

namespace {

const std::vector<std::string> kTopKeys = {"name", "workdir", "seed", "strict", "executor", "stages"};
const std::vector<std::string> kStageKeys = {"id", "kind", "params", "inputs", "description"};

class Parser {
 public:
  Parser(const std::string& path, const KindCatalog& catalog, const LoadOptions& options)
      : path_(path), catalog_(catalog), options_(options) {}

  Result<Pipeline> Parse(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      return Status::Config(fmt::format("{}:{}:{}: YAML syntax error: {}", path_, e.mark.line + 1,
                                        e.mark.column + 1, e.msg));
    }
    ExpandEnvironment(root, path_, options_.env ? options_.env : ProcessEnv(), &errors_, &catalog_);
    std::vector<Override> overrides;
    for (const auto& arg : options_.overrides) {
      Result<Override> o = ParseOverride(arg);
      if (o.ok()) {
        overrides.push_back(*o);
      } else {
        errors_.push_back(o.status().message());
      }
    }
    if (root.IsMap()) ApplyOverrides(root, overrides, catalog_, &errors_);
    Pipeline p;
    p.file = path_;
    p.overrides = options_.overrides;
    p.dir = fs::absolute(fs::path(path_)).parent_path().lexically_normal();
    if (!root.IsMap()) {
      Error(root, "a pipeline file is a mapping with 'name', 'workdir', 'seed' and 'stages'");
      return Finish(std::move(p));
    }
    CheckKeys(root, kTopKeys, "top-level key");
    p.name = Scalar(root["name"], "name", fs::path(path_).stem().string());
    std::string workdir = Scalar(root["workdir"], "workdir", "work");
    p.workdir = fs::path(workdir).is_absolute() ? fs::path(workdir) : p.dir / workdir;
    p.workdir = p.workdir.lexically_normal();
    if (YAML::Node seed = root["seed"]; seed) {
      std::optional<uint64_t> s = seed.IsScalar() ? ParseYamlUint(seed.Scalar()) : std::nullopt;
      if (!s) Error(seed, "seed: expected a non-negative integer");
      p.seed = s.value_or(0);
    }
    if (YAML::Node strict = root["strict"]; strict) {
      bool b = false;
      if (!strict.IsScalar() || !YAML::convert<bool>::decode(strict, b)) Error(strict, "strict: expected true or false");
      p.strict = b;
    }
    ParseExecutor(root["executor"], &p);
    YAML::Node stages = root["stages"];
    if (!stages) {
      Error(root, "no 'stages' list");
    } else if (!stages.IsSequence()) {
      Error(stages, "'stages' must be a list of stage entries");
    } else {
      for (const auto& node : stages) ParseStage(node, &p);
    }
    return Finish(std::move(p));
  }

 private:
  Result<Pipeline> Finish(Pipeline p) {
    // Graph checks run even after other errors, so one validation reports
    // everything; OrderStages stops before ordering when anything is wrong.
    if (!p.stages.empty() || errors_.empty()) OrderStages(&p, &errors_);
    if (!errors_.empty()) return Status::Config(Join(errors_, "\n"));
    return p;
  }

  void Error(const YAML::Node& node, const std::string& message) {
    errors_.push_back(fmt::format("{}: {}", LocOf(path_, node).ToString(), message));
  }

  std::string Scalar(const YAML::Node& node, const char* what, std::string fallback) {
    if (!node) return fallback;
    if (!node.IsScalar()) {
      Error(node, fmt::format("{}: expected a string", what));
      return fallback;
    }
    return node.Scalar();
  }

  // Reports keys written twice in one mapping: yaml-cpp keeps both and
  // lookups return the first, so the second would be silently ignored.
  void CheckDuplicateKeys(const YAML::Node& map) {
    std::set<std::string> seen;
    for (const auto& kv : map) {
      if (!seen.insert(kv.first.Scalar()).second) Error(kv.first, fmt::format("duplicate key '{}'", kv.first.Scalar()));
    }
  }

  void CheckKeys(const YAML::Node& map, const std::vector<std::string>& known, const char* what) {
    CheckDuplicateKeys(map);
    for (const auto& kv : map) {
      const std::string key = kv.first.Scalar();
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      std::string hint = ClosestName(key, known);
      Error(kv.first, fmt::format("unknown {} '{}'{}", what, key,
                                  hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
    }
  }

  void ParseStage(const YAML::Node& node, Pipeline* p) {
    if (!node.IsMap()) {
      Error(node, "a stage entry is a mapping with 'id', 'kind', 'params' and 'inputs'");
      return;
    }
    CheckKeys(node, kStageKeys, "stage key");
    StageDecl d;
    d.loc = LocOf(path_, node);
    d.pipeline_name = p->name;
    YAML::Node id = node["id"];
    if (!id || !id.IsScalar() || id.Scalar().empty()) {
      Error(node, "stage has no 'id'");
    } else {
      d.id = id.Scalar();
      if (!IsContainedRelativePath(d.id) || d.id.find('/') != std::string::npos || d.id[0] == '.') {
        Error(id, fmt::format("stage id '{}' must be a plain name (it names a folder in the workdir)", d.id));
      } else if (!seen_ids_.insert(d.id).second) {
        Error(id, fmt::format("duplicate stage id '{}'", d.id));
      }
    }
    std::string label = d.id.empty() ? std::string("stage") : "stage '" + d.id + "'";
    YAML::Node kind = node["kind"];
    if (!kind || !kind.IsScalar()) {
      Error(kind ? kind : node, fmt::format("{} has no 'kind'", label));
    } else {
      d.kind = kind.Scalar();
      d.spec = catalog_.FindKind(d.kind);
      if (!d.spec) {
        std::string hint = ClosestName(d.kind, catalog_.KindNames());
        Error(kind, fmt::format("{}: unknown kind '{}'{}", label, d.kind,
                                hint.empty() ? " (see 'medpipe stages')" : fmt::format(" (did you mean '{}'?)", hint)));
      }
    }
    if (YAML::Node inputs = node["inputs"]; inputs) {
      if (inputs.IsScalar()) {
        d.inputs.push_back(inputs.Scalar());
        d.input_locs.push_back(LocOf(path_, inputs));
      } else if (inputs.IsSequence()) {
        for (const auto& in : inputs) {
          if (!in.IsScalar()) {
            Error(in, fmt::format("{}: an input is a stage id", label));
            continue;
          }
          d.inputs.push_back(in.Scalar());
          d.input_locs.push_back(LocOf(path_, in));
        }
      } else if (!inputs.IsNull()) {
        Error(inputs, fmt::format("{}: 'inputs' must be a list of stage ids", label));
        d.inputs_malformed = true;
      }
    }
    YAML::Node params = node["params"];
    if (params && !params.IsMap() && !params.IsNull()) {
      Error(params, fmt::format("{}: 'params' must be a mapping", label));
      params = YAML::Node();
    }
    d.params = Params(d.id, LocOf(path_, params ? params : node));
    if (d.spec) {
      ParseParamBlock(params, d.spec->params, label, fmt::format("for kind '{}'", d.kind), d.loc, &d.params);
    }
    p->stages.push_back(std::move(d));
  }

  // Checks and types the `params` mapping against `specs` into `out`:
  // unknown keys (with the closest known one), missing required ones, wrong
  // types, defaults applied. `owner` ends the unknown-key message ("for kind
  // 'split'"); `fallback` locates a missing mapping.
  void ParseParamBlock(const YAML::Node& params, const std::vector<ParamSpec>& specs, const std::string& label,
                       const std::string& owner, const SourceLoc& fallback, Params* out) {
    std::vector<std::string> names;
    for (const auto& s : specs) names.push_back(s.name);
    if (params && params.IsMap()) {
      CheckDuplicateKeys(params);
      for (const auto& kv : params) {
        std::string key = kv.first.Scalar();
        if (std::find(names.begin(), names.end(), key) != names.end()) continue;
        std::string hint = ClosestName(key, names);
        Error(kv.first, fmt::format("{}: unknown param '{}' {}{}", label, key, owner,
                                    hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
      }
    }
    const std::string base = fs::absolute(fs::path(path_)).parent_path().string();
    for (const auto& spec : specs) {
      YAML::Node value = params && params.IsMap() ? params[spec.name] : YAML::Node();
      if (!value || value.IsNull()) {
        if (spec.required) {
          SourceLoc at = params && params.IsMap() ? LocOf(path_, params) : fallback;
          errors_.push_back(fmt::format("{}: {}: missing required param '{}' ({})", at.ToString(), label, spec.name,
                                        spec.help));
          continue;
        }
        if (spec.default_yaml.empty()) {
          out->Set(spec.name, std::monostate{}, SourceLoc{path_, 0, 0});
          continue;
        }
        Result<ParamValue> v = ConvertParam(spec, YAML::Load(spec.default_yaml), base);
        if (!v.ok()) {
          Error(params, fmt::format("{}: bad default for '{}': {}", label, spec.name, v.status().message()));
          continue;
        }
        out->Set(spec.name, std::move(v).value(), SourceLoc{path_, 0, 0});
        continue;
      }
      Result<ParamValue> v = ConvertParam(spec, value, base);
      if (!v.ok()) {
        Error(value, fmt::format("{}: param '{}' ({}): {}", label, spec.name, ParamTypeName(spec.type),
                                 v.status().message()));
        continue;
      }
      out->Set(spec.name, std::move(v).value(), LocOf(path_, value));
    }
  }

  void ParseExecutor(const YAML::Node& node, Pipeline* p) {
    if (!node || node.IsNull()) return;
    if (!node.IsMap()) {
      Error(node, "'executor' must be a mapping such as {type: slurm, partition: cpu}");
      return;
    }
    Params params("executor", LocOf(path_, node));
    ParseParamBlock(node, ExecutorParamSpecs(), "executor", "of the executor", LocOf(path_, node), &params);
    Result<ExecutorDecl> e = ExecutorFromParams(params);
    if (!e.ok()) {
      errors_.push_back(e.status().message());
      return;
    }
    p->executor = std::move(e).value();
  }

  const std::string path_;
  const KindCatalog& catalog_;
  const LoadOptions& options_;
  std::vector<std::string> errors_;
  std::set<std::string> seen_ids_;
};

}  // namespace

Result<Pipeline> ParsePipeline(const std::string& text, const std::string& path, const KindCatalog& catalog,
                               const LoadOptions& options) {
  return Parser(path, catalog, options).Parse(text);
}

Result<Pipeline> LoadPipeline(const std::string& path, const KindCatalog& catalog, const LoadOptions& options) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) return Status::Config(path + ": cannot read pipeline file: " + text.status().message());
  return ParsePipeline(*text, path, catalog, options);
}

}  // namespace medpipe
