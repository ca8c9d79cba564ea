// Test helpers: loopback servers the test suite starts itself and always
// stops (the destructor kills and reaps), plus small blocking HTTP calls.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "util/fs.h"
#include "util/status.h"
#include "tests/test_util.h"

namespace medpipe::testing {

// Debian's python, which has botocore and pydicom (the default python3 on
// this machine is a pyenv without Debian packages).
inline constexpr const char* kPython = "/usr/bin/python3";

// The folder of the server scripts.
fs::path ServersDir();

class ServerProcess {
 public:
  // Runs `argv` (stdout and stderr to `log`), waits until the log has a line
  // "PORT <n>" and reads the port from it.
  static Result<std::unique_ptr<ServerProcess>> StartWithPortLine(const std::vector<std::string>& argv,
                                                                  const fs::path& log, double timeout_s = 30);
  // Runs `argv` and polls `ready_url` until it answers 200.
  static Result<std::unique_ptr<ServerProcess>> StartAndPoll(const std::vector<std::string>& argv,
                                                             const std::string& ready_url, const fs::path& log,
                                                             double timeout_s = 60);
  ~ServerProcess();

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // SIGTERM, then SIGKILL after 5 s; reaps. Safe to call twice.
  void Stop();

 private:
  static Result<pid_t> Spawn(const std::vector<std::string>& argv, const fs::path& log);
  pid_t pid_ = -1;
  int port_ = 0;
};

// tests/servers/fault_server.py serving `root` (see its docstring for the
// fault paths), with extra arguments such as {"--delay-ms", "50"}.
Result<std::unique_ptr<ServerProcess>> StartFaultServer(const fs::path& root,
                                                        const std::vector<std::string>& extra = {});

// A port that was free on 127.0.0.1 a moment ago (bind to 0, read, close).
int FreeLoopbackPort();

struct HttpResponse {
  long status = 0;  // 0 when the request failed at the transport level
  std::string body;
};
HttpResponse HttpGet(const std::string& url);
HttpResponse HttpPost(const std::string& url, const std::string& body, const std::string& content_type);

// The fault server's /_stats: path -> requests so far.
std::map<std::string, int> FetchStatsCounts(const std::string& base_url);

// Runs a command line (sh -c) and returns its exit code.
int RunCommand(const std::string& command);

}  // namespace medpipe::testing
