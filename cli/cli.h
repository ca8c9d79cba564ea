// The medpipe command line. Exit codes: 0 done, 1 a stage failed, 2 usage or
// config error, 130 interrupted.
#pragma once

#include <atomic>

namespace medpipe {

// Runs one command. `cancel` is set by the signal handler on Ctrl-C.
int RunCli(int argc, char** argv, const std::atomic<bool>* cancel);

}  // namespace medpipe
