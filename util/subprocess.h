// Running a command and collecting what it prints: for the few external
// tools medpipe drives (Slurm's sbatch, squeue, scontrol, scancel). The
// command runs from an argv, never through a shell, so no argument is ever
// reinterpreted.
#pragma once

#include <string>
#include <vector>

#include "util/status.h"

namespace medpipe {

struct ProcessResult {
  int exit_code = -1;  // the exit status; 128 + N when killed by signal N
  std::string out;     // standard output
  std::string err;     // standard error
};

// Runs argv[0] (looked up in PATH) with `argv` and waits for it, at most
// `timeout_s` seconds (then SIGKILL and kUnavailable). kNotFound when the
// program does not exist; kIOError when it cannot be started.
Result<ProcessResult> RunProcess(const std::vector<std::string>& argv, double timeout_s = 60);

// The first line of `text` without its newline, cut to `max` characters:
// for quoting a tool's error in one console line.
std::string FirstLine(const std::string& text, size_t max = 200);

}  // namespace medpipe
