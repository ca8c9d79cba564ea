#include "graph/expand.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "util/strings.h"

namespace medpipe {

namespace {

bool IsNameChar(char c, bool first) {
  return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (!first && c >= '0' && c <= '9');
}

using Placeholders = std::vector<std::string>;

bool IsPlaceholder(const std::string& body, const Placeholders& keep) {
  for (const auto& p : keep) {
    if (!p.empty() && p.back() == '*' ? body.rfind(p.substr(0, p.size() - 1), 0) == 0 : body == p) return true;
  }
  return false;
}

// Expands one scalar. Returns false (with `error` set) on the first problem.
bool ExpandScalar(const std::string& in, const EnvLookup& env, const Placeholders& keep, std::string* out,
                  std::string* error) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '$') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 1 < in.size() && in[i + 1] == '$') {
      out->push_back('$');
      ++i;
      continue;
    }
    if (i + 1 >= in.size() || in[i + 1] != '{') {
      out->push_back('$');
      continue;
    }
    size_t close = in.find('}', i + 2);
    if (close == std::string::npos) {
      *error = "unterminated '${' (write '$$' for a literal '$')";
      return false;
    }
    std::string body = in.substr(i + 2, close - i - 2);
    if (IsPlaceholder(body, keep)) {
      *out += in.substr(i, close - i + 1);
      i = close;
      continue;
    }
    std::string name = body, fallback;
    bool has_default = false;
    if (size_t d = body.find(":-"); d != std::string::npos) {
      name = body.substr(0, d);
      fallback = body.substr(d + 2);
      has_default = true;
    }
    bool valid = !name.empty();
    for (size_t k = 0; k < name.size() && valid; ++k) valid = IsNameChar(name[k], k == 0);
    if (!valid) {
      *error = fmt::format("'${{{}}}': not a variable name (letters, digits and '_'; ${{VAR}} or ${{VAR:-default}})",
                           body);
      return false;
    }
    if (IsCredentialVariable(name)) {
      *error = fmt::format("${{{}}} holds a credential: it is read by the stage that needs it, never written into "
                           "the pipeline (where it would be fingerprinted and shown)",
                           name);
      return false;
    }
    std::optional<std::string> value = env(name);
    if (value && !value->empty()) {
      *out += *value;
    } else if (has_default) {
      *out += fallback;
    } else {
      *error = fmt::format("environment variable {} is not set (give a default: ${{{}:-value}})", name, name);
      return false;
    }
    i = close;
  }
  return true;
}

void Walk(YAML::Node node, const std::string& path, const EnvLookup& env, std::vector<std::string>* errors,
          const Placeholders& keep = {}) {
  if (node.IsScalar()) {
    const std::string& text = node.Scalar();
    if (text.find('$') == std::string::npos) return;
    std::string out, error;
    if (!ExpandScalar(text, env, keep, &out, &error)) {
      errors->push_back(fmt::format("{}: {}", LocOf(path, node).ToString(), error));
    } else if (out != text) {
      node = out;
    }
    return;
  }
  if (node.IsSequence()) {
    for (auto child : node) Walk(child, path, env, errors, keep);
  } else if (node.IsMap()) {
    for (auto kv : node) Walk(kv.second, path, env, errors, keep);
  }
}

// The placeholders a stage entry's kind keeps in its params, if any.
const Placeholders* StagePlaceholders(const YAML::Node& stage, const KindCatalog* catalog) {
  if (!catalog || !stage.IsMap()) return nullptr;
  YAML::Node kind = stage["kind"];
  if (!kind || !kind.IsScalar()) return nullptr;
  const KindSpec* spec = catalog->FindKind(kind.Scalar());
  return spec && !spec->placeholders.empty() ? &spec->placeholders : nullptr;
}

}  // namespace

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

bool IsCredentialVariable(const std::string& name) {
  std::string upper = name;
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
  for (const char* part : {"SECRET", "TOKEN", "PASSWORD", "PASSWD", "ACCESS_KEY", "CREDENTIAL", "API_KEY"}) {
    if (upper.find(part) != std::string::npos) return true;
  }
  return false;
}

void ExpandEnvironment(YAML::Node root, const std::string& path, const EnvLookup& env,
                       std::vector<std::string>* errors, const KindCatalog* catalog) {
  YAML::Node stages = root.IsMap() ? root["stages"] : YAML::Node();
  if (!stages || !stages.IsSequence()) return Walk(root, path, env, errors);
  for (auto kv : root) {
    if (!(kv.first.IsScalar() && kv.first.Scalar() == "stages")) Walk(kv.second, path, env, errors);
  }
  for (auto stage : stages) {
    const Placeholders* keep = StagePlaceholders(stage, catalog);
    if (!keep || !stage.IsMap()) {
      Walk(stage, path, env, errors);
      continue;
    }
    for (auto kv : stage) {
      bool params = kv.first.IsScalar() && kv.first.Scalar() == "params";
      Walk(kv.second, path, env, errors, params ? *keep : Placeholders{});
    }
  }
}

Result<Override> ParseOverride(const std::string& arg) {
  size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::Config(fmt::format("--set {}: expected PATH=VALUE, e.g. split.params.seed=3", arg));
  }
  return Override{arg.substr(0, eq), arg.substr(eq + 1)};
}

void ApplyOverrides(YAML::Node root, const std::vector<Override>& overrides, const KindCatalog& catalog,
                    std::vector<std::string>* errors) {
  static const std::vector<std::string> kTop = {"name", "workdir", "seed", "strict"};
  for (const Override& o : overrides) {
    const std::string where = fmt::format("--set {}={}", o.path, o.value);
    YAML::Node value;
    try {
      value = YAML::Load(o.value);
    } catch (const YAML::Exception& e) {
      errors->push_back(fmt::format("{}: not a YAML value: {}", where, e.msg));
      continue;
    }
    if (value.IsNull()) value = YAML::Node(o.value);  // an empty value is the empty string
    std::vector<std::string> parts;
    for (size_t start = 0;;) {
      size_t dot = o.path.find('.', start);
      parts.push_back(o.path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    if (parts.size() == 1) {
      if (std::find(kTop.begin(), kTop.end(), parts[0]) == kTop.end()) {
        std::string hint = ClosestName(parts[0], kTop);
        errors->push_back(fmt::format("{}: no top-level key '{}'{}; a stage param is STAGE.params.NAME", where,
                                      parts[0], hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
        continue;
      }
      root[parts[0]] = value;
      continue;
    }
    if (parts.size() != 3 || parts[1] != "params") {
      errors->push_back(fmt::format("{}: expected STAGE.params.NAME (or seed, workdir, name, strict)", where));
      continue;
    }
    YAML::Node stages = root["stages"];
    YAML::Node stage;
    bool found = false;
    std::vector<std::string> ids;
    if (stages && stages.IsSequence()) {
      for (auto s : stages) {
        if (!s.IsMap() || !s["id"] || !s["id"].IsScalar()) continue;
        ids.push_back(s["id"].Scalar());
        if (ids.back() == parts[0] && !found) {
          stage.reset(s);  // rebinds; assignment would overwrite the node
          found = true;
        }
      }
    }
    if (!found) {
      std::string hint = ClosestName(parts[0], ids);
      errors->push_back(fmt::format("{}: no stage '{}'{}", where, parts[0],
                                    hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
      continue;
    }
    const KindSpec* spec = stage["kind"] && stage["kind"].IsScalar() ? catalog.FindKind(stage["kind"].Scalar()) : nullptr;
    if (spec) {
      std::vector<std::string> names;
      const ParamSpec* param = nullptr;
      for (const auto& p : spec->params) {
        names.push_back(p.name);
        if (p.name == parts[2]) param = &p;
      }
      if (!param) {
        std::string hint = ClosestName(parts[2], names);
        errors->push_back(fmt::format("{}: unknown param '{}' for kind '{}'{}", where, parts[2], spec->name,
                                      hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
        continue;
      }
      // Typed here so the message names the override, not a line of the file.
      Result<ParamValue> typed = ConvertParam(*param, value, ".");
      if (!typed.ok() && param->type != ParamType::kPath) {
        errors->push_back(fmt::format("{}: param '{}' ({}): {}", where, param->name, ParamTypeName(param->type),
                                      typed.status().message()));
        continue;
      }
    }
    if (!stage["params"] || !stage["params"].IsMap()) stage["params"] = YAML::Node(YAML::NodeType::Map);
    stage["params"][parts[2]] = value;
  }
}

}  // namespace medpipe
