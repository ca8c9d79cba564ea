#include "stages/command_spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "graph/expand.h"
#include "util/csv.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {

namespace {

// The variables of medpipe's own environment a command sees without naming
// them: what finding programs and decoding text need. Not fingerprinted.
const char* const kBaseEnv[] = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"};

// Thread pools of the libraries a script is likely to use, bounded to the
// command's share of the run's threads.
const char* const kThreadEnv[] = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"};

// One `${...}` of a command: where it is and what it names.
struct Placeholder {
  size_t begin = 0, end = 0;  // [begin, end) in the text, braces included
  std::string body;
};

std::vector<Placeholder> FindPlaceholders(const std::string& text) {
  std::vector<Placeholder> out;
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] != '$' || text[i + 1] != '{') continue;
    size_t close = text.find('}', i + 2);
    if (close == std::string::npos) break;
    out.push_back({i, close + 1, text.substr(i + 2, close - i - 2)});
    i = close;
  }
  return out;
}

// The environment variable a placeholder is passed as, or "" when it names
// nothing this command has.
std::string VariableOf(const std::string& body, const CommandSpec& spec) {
  static const std::map<std::string, std::string> kFixed = {
      {"out", "MEDPIPE_OUT"},         {"pipeline_dir", "MEDPIPE_PIPELINE_DIR"}, {"seed", "MEDPIPE_SEED"},
      {"threads", "MEDPIPE_THREADS"}, {"params", "MEDPIPE_PARAMS"},             {"script", "MEDPIPE_SCRIPT"},
      {"item", "MEDPIPE_ITEM"},       {"item_key", "MEDPIPE_ITEM_KEY"},         {"item_out", "MEDPIPE_ITEM_OUT"}};
  if (auto it = kFixed.find(body); it != kFixed.end()) return it->second;
  if (body.rfind("inputs.", 0) == 0) {
    std::string id = body.substr(7);
    if (std::find(spec.input_ids.begin(), spec.input_ids.end(), id) == spec.input_ids.end()) return "";
    return "MEDPIPE_INPUT_" + EnvName(id);
  }
  if (body.rfind("item.", 0) == 0 && body.size() > 5) return "MEDPIPE_COL_" + EnvName(body.substr(5));
  return "";
}

// Checks every placeholder of `text` names something this command has.
Status CheckPlaceholders(const std::string& text, const CommandSpec& spec, const Params& params) {
  for (const auto& p : FindPlaceholders(text)) {
    std::string var = VariableOf(p.body, spec);
    if (var.empty() && p.body.rfind("inputs.", 0) == 0) {
      return params.Error("run", fmt::format("${{{}}}: '{}' is not an input of this stage (inputs: {})", p.body,
                                             p.body.substr(7), Join(spec.input_ids, ", ")));
    }
    // Anything else the file's expansion left is the shell's own `$${var}`
    // (a typo like ${otu} was already refused there as an unset variable).
    if (var.empty()) continue;
    bool per_item = p.body == "item" || p.body == "item_key" || p.body == "item_out" || p.body.rfind("item.", 0) == 0;
    if (per_item && spec.foreach.kind == Foreach::kNone) {
      return params.Error("run", fmt::format("${{{}}} is an item's: it needs `foreach`", p.body));
    }
    if (p.body.rfind("item.", 0) == 0 && spec.foreach.kind != Foreach::kRows) {
      return params.Error("run", fmt::format("${{{}}} is a CSV row's column: it needs `foreach: {{rows: ...}}`", p.body));
    }
    if (p.body == "script" && spec.script.empty()) return params.Error("run", "${script} needs the `script` param");
  }
  return Status::OK();
}

std::string Scalar(const YAML::Node& node) { return node.IsScalar() ? node.Scalar() : CanonicalJson(node); }

Status ParseForeach(const YAML::Node& node, const Params& params, CommandSpec* spec) {
  if (!node || node.IsNull()) return Status::OK();
  auto bad = [&](const std::string& why) {
    return params.Error("foreach", why + " (write {files: GLOB} or {rows: FILE.csv, key: COLUMN}, with "
                                         "`input: ID` when the stage has several inputs)");
  };
  if (!node.IsMap()) return bad("expected a mapping");
  Foreach& f = spec->foreach;
  for (const auto& kv : node) {
    const std::string k = kv.first.Scalar();
    if (!kv.second.IsScalar()) return bad(fmt::format("'{}' must be a string", k));
    const std::string v = kv.second.Scalar();
    if (k == "files") {
      f.kind = Foreach::kFiles, f.glob = v;
    } else if (k == "rows") {
      f.kind = Foreach::kRows, f.csv = v;
    } else if (k == "key") {
      f.key = v;
    } else if (k == "input") {
      auto it = std::find(spec->input_ids.begin(), spec->input_ids.end(), v);
      if (it == spec->input_ids.end()) return bad(fmt::format("'{}' is not an input of this stage", v));
      f.input = static_cast<size_t>(it - spec->input_ids.begin());
    } else {
      return bad(fmt::format("unknown key '{}'", k));
    }
  }
  if (node["files"] && node["rows"]) return bad("either files or rows, not both");
  if (f.kind == Foreach::kNone) return bad("no files or rows");
  if (f.kind == Foreach::kFiles && f.glob.empty()) return bad("an empty glob");
  if (f.kind == Foreach::kRows && !IsContainedRelativePath(f.csv)) {
    return bad(fmt::format("'{}' must be a path inside the input's folder", f.csv));
  }
  if (f.kind == Foreach::kFiles && !f.key.empty()) return bad("'key' is for rows");
  if (spec->input_ids.empty()) return bad("it reads an input stage's folder, and this stage has no inputs");
  if (!node["input"] && spec->input_ids.size() > 1) return bad("name the input it reads");
  spec->foreach_json = CanonicalJson(node);
  return Status::OK();
}

void Put(std::vector<std::string>* env, const std::string& name, const std::string& value) {
  env->push_back(name + "=" + value);
}

}  // namespace

std::string EnvName(std::string_view name) {
  std::string out;
  for (char c : name) {
    out.push_back(std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::toupper(c)) : '_');
  }
  return out;
}

Result<CommandSpec> ParseCommandSpec(const StageDecl& decl) {
  const Params& p = decl.params;
  CommandSpec spec;
  spec.stage_id = decl.id;
  spec.input_ids = decl.inputs;
  spec.pipeline_dir = fs::absolute(fs::path(decl.loc.file)).parent_path().lexically_normal();
  std::set<std::string> input_vars;
  for (const auto& id : decl.inputs) {
    if (!input_vars.insert(EnvName(id)).second) {
      return p.Error("run", fmt::format("inputs '{}' and another differ only in punctuation or case, so their "
                                        "variables (MEDPIPE_INPUT_{}) would be one; rename one",
                                        id, EnvName(id)));
    }
  }
  YAML::Node run = p.GetObject("run");
  spec.run_json = CanonicalJson(run);
  if (run.IsScalar()) {
    spec.shell = true;
    spec.run_text = run.Scalar();
    if (spec.run_text.find_first_not_of(" \t\r\n") == std::string::npos) return p.Error("run", "an empty command");
  } else if (run.IsSequence() && run.size() > 0) {
    spec.shell = false;
    for (const auto& a : run) {
      if (!a.IsScalar()) return p.Error("run", "an argv list holds strings only");
      spec.argv.push_back(a.Scalar());
    }
  } else {
    return p.Error("run", "expected a command line (run with /bin/sh -c) or a non-empty argv list");
  }
  if (p.Has("script")) {
    spec.script = p.GetString("script");
    if (!StatPath(spec.script).exists) return p.Error("script", spec.script.string() + ": no such file");
  }
  YAML::Node params = p.GetObject("params");
  if (params && !params.IsNull()) {
    if (!params.IsMap()) return p.Error("params", "expected a mapping of names to values");
    std::set<std::string> vars;
    for (const auto& kv : params) {
      const std::string name = kv.first.Scalar();
      if (!vars.insert(EnvName(name)).second) {
        return p.Error("params", fmt::format("'{}' and another name give one variable MEDPIPE_PARAM_{}", name,
                                             EnvName(name)));
      }
      spec.params.emplace_back(name, Scalar(kv.second));
    }
    spec.params_json = CanonicalJson(params);
  } else {
    spec.params_json = "{}";
  }
  for (const auto& name : p.GetStringList("env")) {
    if (IsCredentialVariable(name)) {
      return p.Error("env", fmt::format("{} holds a credential: a command may not be handed one through the "
                                        "pipeline (its value would be fingerprinted); read it from your own "
                                        "credentials file",
                                        name));
    }
    if (name.empty() || EnvName(name) != name) {
      return p.Error("env", fmt::format("'{}' is not an environment variable name (A-Z, 0-9, _)", name));
    }
    spec.env_names.push_back(name);
  }
  spec.timeout_s = p.GetFloat("timeout");
  if (spec.timeout_s < 0) return p.Error("timeout", "seconds, 0 for no limit");
  spec.threads_per_item = static_cast<int>(p.GetInt("threads_per_item"));
  if (spec.threads_per_item < 1) return p.Error("threads_per_item", "at least 1");
  MEDPIPE_RETURN_IF_ERROR(ParseForeach(p.GetObject("foreach"), p, &spec));
  if (spec.shell) {
    MEDPIPE_RETURN_IF_ERROR(CheckPlaceholders(spec.run_text, spec, p));
  } else {
    for (const auto& a : spec.argv) MEDPIPE_RETURN_IF_ERROR(CheckPlaceholders(a, spec, p));
  }
  return spec;
}

Result<std::string> CommandSpec::External() const {
  std::vector<std::string> parts;
  if (!script.empty()) {
    Result<std::string> bytes = ReadFile(script);
    if (!bytes.ok()) return Status::Failed(fmt::format("script {}: {}", script.string(), bytes.status().message()));
    parts.push_back("script=" + HashBytes(*bytes));
  }
  if (!env_names.empty()) {
    Hasher h;
    for (const auto& name : env_names) {
      const char* v = std::getenv(name.c_str());
      h.Field(name).Field(v ? std::string("=") + v : std::string("unset"));
    }
    parts.push_back("env=" + h.HexDigest());
  }
  return Join(parts, ";");
}

std::string CommandSpec::Fingerprint() const {
  return Hasher().Field(run_json).Field(params_json).Field(foreach_json).HexDigest();
}

std::vector<std::string> CommandSpec::Argv(const CommandEnv& env) const {
  if (shell) {
    // The shell reads the placeholders as its variables, so quoting works as
    // the user wrote it ("${out}/a b.txt") and no path is re-parsed as code.
    std::string text;
    size_t at = 0;
    for (const auto& p : FindPlaceholders(run_text)) {
      std::string var = VariableOf(p.body, *this);
      if (var.empty()) continue;  // the shell's own variable: kept as written
      text += run_text.substr(at, p.begin - at) + "${" + var + "}";
      at = p.end;
    }
    text += run_text.substr(at);
    return {"/bin/sh", "-c", text};
  }
  std::map<std::string, std::string> values;
  for (const auto& kv : Environment(env)) {
    size_t eq = kv.find('=');
    values[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  std::vector<std::string> out;
  for (const auto& a : argv) {
    std::string arg;
    size_t at = 0;
    for (const auto& p : FindPlaceholders(a)) {
      auto it = values.find(VariableOf(p.body, *this));
      if (it == values.end()) continue;  // not a placeholder: kept as written
      arg += a.substr(at, p.begin - at) + it->second;
      at = p.end;
    }
    out.push_back(arg + a.substr(at));
  }
  return out;
}

std::vector<std::string> CommandSpec::Environment(const CommandEnv& env) const {
  std::vector<std::string> out;
  for (const char* name : kBaseEnv) {
    if (const char* v = std::getenv(name)) Put(&out, name, v);
  }
  for (const auto& name : env_names) {
    if (const char* v = std::getenv(name.c_str())) Put(&out, name, v);
  }
  for (const char* name : kThreadEnv) Put(&out, name, std::to_string(env.threads));
  // A script's bytecode cache would be written beside it, outside ${out}.
  Put(&out, "PYTHONDONTWRITEBYTECODE", "1");
  Put(&out, "PYTHONHASHSEED", "0");
  Put(&out, "MEDPIPE_STAGE", stage_id);
  Put(&out, "MEDPIPE_OUT", env.out.string());
  for (const auto& [id, dir] : env.inputs) Put(&out, "MEDPIPE_INPUT_" + EnvName(id), dir.string());
  Put(&out, "MEDPIPE_PIPELINE_DIR", pipeline_dir.string());
  Put(&out, "MEDPIPE_SEED", std::to_string(env.seed));
  Put(&out, "MEDPIPE_THREADS", std::to_string(env.threads));
  Put(&out, "MEDPIPE_PARAMS", env.params_json.string());
  if (!script.empty()) Put(&out, "MEDPIPE_SCRIPT", script.string());
  for (const auto& [name, value] : params) Put(&out, "MEDPIPE_PARAM_" + EnvName(name), value);
  if (env.item) {
    Put(&out, "MEDPIPE_ITEM", env.item->value);
    Put(&out, "MEDPIPE_ITEM_KEY", env.item->key);
    Put(&out, "MEDPIPE_ITEM_OUT", env.item_out.string());
    for (const auto& [col, value] : env.item->columns) Put(&out, "MEDPIPE_COL_" + EnvName(col), value);
  }
  return out;
}

Result<std::vector<CommandItem>> ListItems(const Foreach& f, StageContext& ctx) {
  const InputArtifact& input = ctx.inputs().at(f.input);
  std::vector<CommandItem> items;
  if (f.kind == Foreach::kFiles) {
    // The input's manifest lists exactly its outputs, with their hashes: an
    // item's fingerprint without reading a byte.
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<FileRecord> files, ReadManifest(input.dir));
    for (const auto& file : files) {
      if (!GlobMatch(f.glob, file.path)) continue;
      CommandItem item;
      item.key = file.path;
      item.folder = fs::path(file.path).replace_extension().string();
      item.value = (input.dir / file.path).string();
      item.content = file.hash;
      items.push_back(std::move(item));
    }
  } else {
    const fs::path csv = input.dir / f.csv;
    MEDPIPE_ASSIGN_OR_RETURN(CsvTable table, ReadCsv(csv.string()));
    for (const auto& e : table.errors) ctx.Problem(e.message, e.reason, "unreadable row");
    int key = f.key.empty() ? 0 : table.Column(f.key);
    if (key < 0 || table.header.empty()) {
      return Status::Failed(fmt::format("{}: no column '{}' (columns: {})", csv.string(), f.key,
                                        Join(table.header, ", ")));
    }
    for (const auto& row : table.rows) {
      CommandItem item;
      item.key = row.fields[static_cast<size_t>(key)];
      item.value = item.key;
      item.folder = item.key;
      Hasher h;
      for (size_t c = 0; c < row.fields.size(); ++c) {
        h.Field(table.header[c]).Field(row.fields[c]);
        item.columns.emplace_back(table.header[c], row.fields[c]);
      }
      item.content = h.HexDigest();
      if (!IsContainedRelativePath(item.key) || item.key.rfind(kMetaDir, 0) == 0) {
        item.problem = fmt::format("{}:{}: key '{}' cannot name an item's folder", csv.string(), row.line, item.key);
        item.key = fmt::format("{}#line{}", item.key, row.line);
      }
      items.push_back(std::move(item));
    }
  }
  std::sort(items.begin(), items.end(), [](const CommandItem& a, const CommandItem& b) { return a.key < b.key; });
  // Each item owns its folder, which it empties before it runs: a folder
  // used twice, or nested in another item's, would lose files.
  std::map<std::string, std::string> owner;
  for (auto& item : items) {
    if (!item.problem.empty()) continue;
    if (auto [it, fresh] = owner.emplace(item.folder, item.key); !fresh) {
      item.problem = fmt::format("its output folder {} is also item {}'s", item.folder, it->second);
      item.key += "#2";
      continue;
    }
  }
  for (auto& item : items) {
    if (!item.problem.empty()) continue;
    for (fs::path up = fs::path(item.folder).parent_path(); !up.empty(); up = up.parent_path()) {
      if (auto it = owner.find(up.string()); it != owner.end()) {
        item.problem = fmt::format("its output folder {} is inside item {}'s", item.folder, it->second);
        break;
      }
    }
  }
  return items;
}

KindSpec CommandKindSpec() {
  KindSpec spec;
  spec.name = "command";
  spec.version = 1;
  spec.cluster_items = true;  // per-item mode: a cluster run sends its items to array tasks
  spec.help =
      "your own step: a shell command line or argv (and a script), run once or per item (`foreach`), "
      "fingerprinted by its text, script bytes, params and named env vars. Placeholders in `run`: ${out} (its "
      "folder, the command's working folder), ${inputs.ID}, ${pipeline_dir}, ${seed}, ${threads}, ${params} "
      "(a JSON file of `params`), ${script}; per item ${item}, ${item_key}, ${item_out} (the item's own "
      "folder, its working folder), ${item.COLUMN} for CSV rows. Each is also an env var (MEDPIPE_OUT, "
      "MEDPIPE_INPUT_<ID>, MEDPIPE_ITEM_OUT, MEDPIPE_COL_<COLUMN>, ...), and each of `params` is "
      "MEDPIPE_PARAM_<NAME>. Only PATH, HOME, USER, LANG, LC_*, TZ, TMPDIR and the `env` names reach it. "
      "Outputs are the files it leaves under ${out}; writing elsewhere in the workdir is a problem";
  spec.params = {
      {"run", ParamType::kObject, "", true,
       "a command line, run with /bin/sh -c, or an argv list (no shell); placeholders as above", {}},
      {"script", ParamType::kPath, "", false, "a script it runs (${script}): its bytes are fingerprinted", {}},
      {"params", ParamType::kObject, "{}", false,
       "values for the command: MEDPIPE_PARAM_<NAME> env vars and the JSON file ${params}", {}},
      {"env", ParamType::kStringList, "[]", false,
       "names of environment variables passed through and fingerprinted (never credentials)", {}},
      {"timeout", ParamType::kFloat, "0", false, "seconds before the command (each item's) is killed; 0: no limit", {}},
      {"foreach", ParamType::kObject, "", false,
       "per-item mode: {files: GLOB} over an input's files ('*' crosses '/'), or {rows: FILE.csv, key: COLUMN} "
       "over a CSV in an input's folder; `input: ID` picks the input",
       {}},
      {"threads_per_item", ParamType::kInt, "1", false,
       "threads one item uses: items run in parallel up to the thread budget divided by this", {}},
  };
  spec.placeholders = {"out",  "pipeline_dir", "seed",     "threads",  "params", "script",
                       "item", "item_key",     "item_out", "inputs.*", "item.*"};
  return spec;
}

}  // namespace medpipe
