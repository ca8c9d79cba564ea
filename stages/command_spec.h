// The `command` stage's options, typed and checked when the pipeline is
// loaded, and what they make at run time: the child's argv and environment
// (placeholders filled in) and its items. The stage itself is command.cc.
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "graph/pipeline.h"
#include "runner/stage_context.h"
#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

// What `foreach` runs the command over.
struct Foreach {
  enum Kind { kNone, kFiles, kRows };
  Kind kind = kNone;
  size_t input = 0;  // index of the input stage whose folder holds the files or the CSV
  std::string glob;  // kFiles: matched against paths relative to that folder ('*' crosses '/')
  std::string csv;   // kRows: the CSV, relative to that folder
  std::string key;   // kRows: the column naming each row's item ("" : the first column)
};

// One item of a per-item run.
struct CommandItem {
  std::string key;      // the journal key: the file's path in its folder, or the row's key
  std::string folder;   // ${item_out}, relative to the stage folder
  std::string value;    // ${item}: the file's absolute path, or the row's key
  std::string content;  // what the item's result depends on: the file's hash, the row's fields
  std::vector<std::pair<std::string, std::string>> columns;  // kRows: ${item.<column>}
  std::string problem;  // not "": the item cannot run (an unsafe key, a key listed twice)
};

// The run-time values the placeholders stand for.
struct CommandEnv {
  fs::path out;
  std::map<std::string, fs::path> inputs;  // input id -> its folder
  fs::path params_json;
  uint64_t seed = 0;
  int threads = 1;
  const std::atomic<bool>* cancel = nullptr;
  const CommandItem* item = nullptr;  // per-item mode
  fs::path item_out;
};

struct CommandSpec {
  std::string stage_id;
  bool shell = true;              // `run` was a string: /bin/sh -c
  std::string run_text;           // the string form
  std::vector<std::string> argv;  // the list form
  std::string run_json;           // canonical, for the item fingerprint
  fs::path script;                // "" when none
  fs::path pipeline_dir;
  std::vector<std::pair<std::string, std::string>> params;  // name -> value text (JSON for non-scalars)
  std::string params_json;                                   // canonical JSON of `params`
  std::vector<std::string> env_names;
  double timeout_s = 0;
  Foreach foreach;
  std::string foreach_json;
  int threads_per_item = 1;
  std::vector<std::string> input_ids;  // in decl order

  // "script=<hash of its bytes>;env=<hash of the named variables' values>",
  // the parts present: what the stage reads from outside the workdir, so
  // `status` can say "script changed". Reads the script (a small file).
  Result<std::string> External() const;
  // The command as configured: run, params and foreach (not the timeout or
  // thread count, which do not change what it writes).
  std::string Fingerprint() const;
  std::string ParamsJson() const { return params_json + "\n"; }
  // The child's argv and whole environment for `env`.
  std::vector<std::string> Argv(const CommandEnv& env) const;
  std::vector<std::string> Environment(const CommandEnv& env) const;
};

// Checks and types a `command` stage's params. Config errors name the param.
Result<CommandSpec> ParseCommandSpec(const StageDecl& decl);

// The items of a per-item run, sorted by key. CSV rows that cannot be read
// are reported as problems through `ctx`.
Result<std::vector<CommandItem>> ListItems(const Foreach& foreach, StageContext& ctx);

KindSpec CommandKindSpec();

// "A-b.c" -> "A_B_C": a name made into part of an environment variable's.
std::string EnvName(std::string_view name);

}  // namespace medpipe
