#include <csignal>
#include <cstring>

#include "cli/cli.h"

namespace {

std::atomic<bool> g_cancel{false};

// First Ctrl-C: finish the items in flight, keep them, stop. Second: the
// default action (the journal still makes the next run resume).
void OnSignal(int sig) {
  if (g_cancel.exchange(true)) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  return medpipe::RunCli(argc, argv, &g_cancel);
}
