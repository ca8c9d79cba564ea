// What happens to a pipeline file's YAML before validation: environment
// variables are expanded in every scalar, and `--set` overrides from the
// command line are applied, so both are validated (types, names, file:line:col)
// exactly like what was written in the file.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "graph/pipeline.h"

namespace medpipe {

// Looks a variable up; std::nullopt when unset. Tests pass their own.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup ProcessEnv();

// Whether a variable holds a secret (AWS_SECRET_ACCESS_KEY, *_TOKEN,
// *_PASSWORD, *_SECRET...): those are read by the stages that need them, and
// are never expanded into a pipeline file, where they would be fingerprinted,
// shown by `status` and written to commit records.
bool IsCredentialVariable(const std::string& name);

// Expands `${VAR}` and `${VAR:-default}` (default used when VAR is unset or
// empty, as in the shell) in every scalar of `root`, in place; `$$` is a
// literal `$`. Appends one "file:line:col: message" per problem to `errors`:
// an unset variable without a default, an unterminated `${`, a bad name, a
// credential variable. With a `catalog`, the params of a stage whose kind
// declares placeholders (KindSpec::placeholders) keep those as written.
void ExpandEnvironment(YAML::Node root, const std::string& path, const EnvLookup& env,
                       std::vector<std::string>* errors, const KindCatalog* catalog = nullptr);

// One `--set STAGE.params.NAME=VALUE` (or `seed=N`, `workdir=PATH`,
// `name=TEXT`, `strict=BOOL`) from the command line.
struct Override {
  std::string path;   // "split.params.seed"
  std::string value;  // as given; parsed as YAML, so lists work: [IPH, SDH]
};
// Parses "PATH=VALUE". kConfig when there is no '=' or no path.
Result<Override> ParseOverride(const std::string& arg);

// Applies `overrides` to the parsed file before validation. An unknown stage
// id or param name is an error with the closest known name; a value of the
// wrong type is reported by validation like any other, naming the override.
void ApplyOverrides(YAML::Node root, const std::vector<Override>& overrides, const KindCatalog& catalog,
                    std::vector<std::string>* errors);

}  // namespace medpipe
