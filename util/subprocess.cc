#include "util/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

extern char** environ;

namespace medpipe {

namespace {

// Closes the descriptors it holds on every path out of RunProcess.
struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
  void Close(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Appends to `buf`, keeping its last `keep` bytes when keep > 0.
void Keep(std::string& buf, const char* data, size_t n, size_t keep) {
  buf.append(data, n);
  if (keep > 0 && buf.size() > 2 * keep) buf.erase(0, buf.size() - keep);
}

Status WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Status::IOError(std::string("write: ") + std::strerror(errno));
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::OK();
}

}  // namespace

Result<ProcessResult> RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options) {
  if (argv.empty()) return Status::Invalid("RunProcess: empty command");
  Fd log;
  if (!options.log.empty()) {
    log.fd = ::open(options.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log.fd < 0) return Status::IOError(options.log.string() + ": cannot open: " + std::strerror(errno));
  }
  Pipe out, err;
  if (::pipe2(out.fd, O_CLOEXEC) != 0 || ::pipe2(err.fd, O_CLOEXEC) != 0) {
    return Status::IOError(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err.fd[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, options.cwd.c_str());
  // Its own process group: a timeout or cancel kills what a shell started
  // too, and the terminal's Ctrl-C reaches medpipe, which decides.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  if (options.env) {
    for (const auto& e : *options.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), &fa, &attr, args.data(), options.env ? envp.data() : environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc == ENOENT) return Status::NotFound(argv[0] + ": command not found");
  if (rc != 0) return Status::IOError(argv[0] + ": cannot start: " + std::strerror(rc));
  out.Close(1);
  err.Close(1);

  ProcessResult r;
  using Clock = std::chrono::steady_clock;
  const bool limited = options.timeout_s > 0;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(limited ? options.timeout_s : 0));
  bool cancelled = false;
  Status log_error;
  while (out.fd[0] >= 0 || err.fd[0] >= 0) {
    int wait_ms = options.cancel ? 200 : -1;
    if (limited) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        r.timed_out = true;
        break;
      }
      wait_ms = wait_ms < 0 ? static_cast<int>(std::min<int64_t>(left, 1 << 30))
                            : static_cast<int>(std::min<int64_t>(left, wait_ms));
    }
    if (options.cancel && options.cancel->load()) {
      cancelled = true;
      break;
    }
    pollfd fds[2] = {{out.fd[0], POLLIN, 0}, {err.fd[0], POLLIN, 0}};
    int n = ::poll(fds, 2, wait_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        Keep(i == 0 ? r.out : r.err, buf, static_cast<size_t>(got), options.keep_bytes);
        if (log.fd >= 0 && log_error.ok()) log_error = WriteAll(log.fd, buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        (i == 0 ? out : err).Close(0);
      }
    }
  }
  if (r.timed_out || cancelled) ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  for (std::string* s : {&r.out, &r.err}) {
    if (options.keep_bytes > 0 && s->size() > options.keep_bytes) s->erase(0, s->size() - options.keep_bytes);
  }
  if (cancelled) return Status::Cancelled(argv[0] + ": interrupted");
  if (!log_error.ok()) return log_error.WithContext(options.log.string());
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else {
    r.signal = WTERMSIG(status);
    r.exit_code = 128 + r.signal;
  }
  return r;
}

Result<ProcessResult> RunProcess(const std::vector<std::string>& argv, double timeout_s) {
  ProcessOptions options;
  options.timeout_s = timeout_s;
  MEDPIPE_ASSIGN_OR_RETURN(ProcessResult r, RunProcess(argv, options));
  if (r.timed_out) {
    return Status::Unavailable(argv[0] + ": no answer within " + std::to_string(static_cast<int>(timeout_s)) + " s");
  }
  return r;
}

std::string FirstLine(const std::string& text, size_t max) {
  size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return "";
  std::string line = text.substr(start, text.find('\n', start) - start);
  if (line.size() > max) line = line.substr(0, max - 3) + "...";
  return line;
}

std::string LastLines(const std::string& text, size_t n) {
  std::vector<std::string> lines;
  size_t end = text.size();
  while (end > 0 && lines.size() < n) {
    size_t nl = text.rfind('\n', end - 1);
    size_t start = nl == std::string::npos ? 0 : nl + 1;
    std::string line = text.substr(start, end - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) lines.push_back(std::move(line));
    if (nl == std::string::npos) break;
    end = nl;
  }
  std::string out;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) out += (out.empty() ? "" : "\n") + *it;
  return out;
}

}  // namespace medpipe
