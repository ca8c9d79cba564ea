// Command-line arguments: each command's flags and usage, parsed GNU-style
// (`-j2`, `-j 2`, `--threads=2`, `--threads 2`, `--` ends the options).
#pragma once

#include <string>
#include <vector>

#include "runner/runner.h"
#include "util/status.h"

namespace medpipe {

struct Args {
  std::string command;
  std::vector<std::string> positional;
  RunOptions run;
  std::vector<std::string> overrides;  // --set PATH=VALUE, in order
  std::string format = "dot";          // graph
  std::string template_name = "minimal";  // init
  bool help = false;                   // --help after a command
  bool json = false;                   // status --json
  bool names = false;                  // stages --names
  bool cascade = false, force_clean = false, orphans = false;  // clean
  std::string stage;                   // worker
  int call = -1, shard = -1;           // worker
};

// The usage of one command ("run", "clean", ...), or of medpipe as a whole
// for "" or an unknown command.
std::string CommandUsage(const std::string& command);

// Every command name, for completion and for suggestions.
std::vector<std::string> CommandNames();

// Parses argv[1..]. A flag the command does not take, a missing value or a
// bad number is kConfig with a message naming it (and the closest flag).
Result<Args> ParseArgs(int argc, char** argv);

}  // namespace medpipe
