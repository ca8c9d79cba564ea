// Running a command and collecting what it prints: for the external tools
// medpipe drives (Slurm's sbatch, squeue, scontrol, scancel) and for the
// user's own commands (the `command` stage). The command runs from an argv,
// never through a shell of ours, so no argument is ever reinterpreted (a
// caller that wants a shell passes {"/bin/sh", "-c", text}).
#pragma once

#include <atomic>
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "util/status.h"

namespace medpipe {

struct ProcessResult {
  int exit_code = -1;  // the exit status; 128 + N when killed by signal N
  int signal = 0;      // N when killed by signal N, else 0
  bool timed_out = false;  // killed at ProcessOptions::timeout_s
  std::string out;     // standard output (its tail, see ProcessOptions::keep_bytes)
  std::string err;     // standard error (likewise)
};

struct ProcessOptions {
  // The child's whole environment, "NAME=VALUE" each; null: this process's.
  const std::vector<std::string>* env = nullptr;
  // The child's working folder; empty: this process's.
  std::filesystem::path cwd;
  // Seconds before the child's whole process group is killed (SIGKILL) and
  // timed_out set; 0: no limit.
  double timeout_s = 0;
  // When set, every byte the child writes to stdout and stderr is also
  // appended to this file, in the order read (created when missing).
  std::filesystem::path log;
  // Keep at most the last `keep_bytes` of each stream in the result, so a
  // chatty child costs bounded memory; 0: keep everything.
  size_t keep_bytes = 0;
  // Polled a few times a second: when set, the child's process group is
  // killed and the call returns kCancelled.
  const std::atomic<bool>* cancel = nullptr;
};

// Runs argv[0] (looked up in the PATH of this process) with `argv` and waits
// for it. The child reads /dev/null and leads its own process group, so a
// timeout or cancel also ends what it started (a shell's children). A
// non-zero exit, a signal or a timeout is in the result, not an error.
// kNotFound when the program does not exist; kIOError when it cannot be
// started or its log not written; kCancelled as above.
Result<ProcessResult> RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options);

// Runs argv[0] with this process's environment at most `timeout_s` seconds
// (then SIGKILL and kUnavailable): for tools that must answer.
Result<ProcessResult> RunProcess(const std::vector<std::string>& argv, double timeout_s = 60);

// The first line of `text` without its newline, cut to `max` characters:
// for quoting a tool's error in one console line.
std::string FirstLine(const std::string& text, size_t max = 200);

// The last `n` non-empty lines of `text`, joined by newlines, the first cut
// at a line start when `text` was itself a tail: for quoting a failed
// command's stderr.
std::string LastLines(const std::string& text, size_t n);

}  // namespace medpipe
