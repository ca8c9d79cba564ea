#include "tests/servers/server_process.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace medpipe::testing {

namespace {

size_t Append(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

HttpResponse Perform(CURL* e, const std::string& url) {
  HttpResponse r;
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r.status);
  curl_easy_cleanup(e);
  return r;
}

}  // namespace

fs::path ServersDir() { return fs::path(MEDPIPE_SOURCE_DIR) / "tests" / "servers"; }

Result<pid_t> ServerProcess::Spawn(const std::vector<std::string>& argv, const fs::path& log) {
  pid_t pid = ::fork();
  if (pid < 0) return Status::IOError("fork failed");
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::setpgid(0, 0);  // its own group, so Stop reaches its children too
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

Result<std::unique_ptr<ServerProcess>> ServerProcess::StartWithPortLine(const std::vector<std::string>& argv,
                                                                        const fs::path& log, double timeout_s) {
  std::unique_ptr<ServerProcess> p(new ServerProcess);
  MEDPIPE_ASSIGN_OR_RETURN(p->pid_, Spawn(argv, log));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(log);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("PORT ", 0) == 0) {
        p->port_ = std::atoi(line.c_str() + 5);
        return p;
      }
    }
    int status = 0;
    if (::waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
      p->pid_ = -1;
      std::ifstream all(log);
      std::stringstream ss;
      ss << all.rdbuf();
      return Status::IOError("server " + argv[0] + " exited before it was ready: " + ss.str());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status::IOError("server " + argv[0] + " did not report its port in time");
}

Result<std::unique_ptr<ServerProcess>> ServerProcess::StartAndPoll(const std::vector<std::string>& argv,
                                                                   const std::string& ready_url,
                                                                   const fs::path& log, double timeout_s) {
  std::unique_ptr<ServerProcess> p(new ServerProcess);
  MEDPIPE_ASSIGN_OR_RETURN(p->pid_, Spawn(argv, log));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (HttpGet(ready_url).status == 200) return p;
    int status = 0;
    if (::waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
      p->pid_ = -1;
      std::ifstream all(log);
      std::stringstream ss;
      ss << all.rdbuf();
      return Status::IOError("server " + argv[0] + " exited before it was ready: " + ss.str());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Status::IOError("server " + argv[0] + " did not answer " + ready_url + " in time");
}

ServerProcess::~ServerProcess() { Stop(); }

void ServerProcess::Stop() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGTERM);
  ::kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      ::kill(-pid_, SIGKILL);  // leftovers of its group, if any
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

Result<std::unique_ptr<ServerProcess>> StartFaultServer(const fs::path& root, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {kPython, (ServersDir() / "fault_server.py").string(), "--root", root.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  fs::path log = root.parent_path() / (root.filename().string() + ".server.log");
  return ServerProcess::StartWithPortLine(argv, log);
}

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

HttpResponse HttpGet(const std::string& url) { return Perform(curl_easy_init(), url); }

HttpResponse HttpPost(const std::string& url, const std::string& body, const std::string& content_type) {
  CURL* e = curl_easy_init();
  curl_slist* headers = curl_slist_append(nullptr, ("Content-Type: " + content_type).c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  HttpResponse r = Perform(e, url);
  curl_slist_free_all(headers);
  return r;
}

std::map<std::string, int> FetchStatsCounts(const std::string& base_url) {
  std::map<std::string, int> out;
  HttpResponse r = HttpGet(base_url + "/_stats");
  rapidjson::Document d;
  if (r.status != 200 || d.Parse(r.body.c_str()).HasParseError() || !d.IsObject()) return out;
  for (auto it = d.MemberBegin(); it != d.MemberEnd(); ++it) out[it->name.GetString()] = it->value.GetInt();
  return out;
}

int RunCommand(const std::string& command) {
  int rc = std::system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace medpipe::testing
