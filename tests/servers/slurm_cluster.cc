#include "tests/servers/slurm_cluster.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/servers/server_process.h"

namespace medpipe::testing {

namespace {

using Clock = std::chrono::steady_clock;

// The absolute path of a Slurm or munge program: PATH first, then the sbin
// folders a non-login root shell may lack. Empty when not installed.
std::string FindTool(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    std::string d;
    while (std::getline(ss, d, ':')) {
      if (!d.empty()) dirs.push_back(d);
    }
  }
  for (const char* d : {"/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin", "/usr/local/bin"}) dirs.push_back(d);
  for (const auto& d : dirs) {
    std::string candidate = d + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string ShortHostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  std::string name = buf;
  return name.substr(0, name.find('.'));
}

// The last `n` lines of a file, or a note that it does not exist.
std::string Tail(const fs::path& path, size_t n) {
  std::ifstream in(path);
  if (!in) return "(no " + path.string() + ")\n";
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (lines.size() > n) lines.pop_front();
  }
  std::string out;
  for (const auto& l : lines) out += "  " + l + "\n";
  return out;
}

// A fresh munge key (random bytes, as `mungekey` makes), so this cluster
// shares no secret with a system munged and needs no access to
// /etc/munge/munge.key. munged insists on mode 0600 and the caller's owner.
Status WriteMungeKey(const fs::path& path) {
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  std::string key(128, '\0');
  if (!urandom.read(key.data(), static_cast<std::streamsize>(key.size()))) {
    return Status::IOError("cannot read /dev/urandom");
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IOError("cannot write " + path.string());
  bool ok = ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size());
  ::close(fd);
  return ok ? Status::OK() : Status::IOError("cannot write " + path.string());
}

// Pids of processes (other than this one) whose environment has `entry`
// ("SLURM_CONF=/path"): the slurmstepd and job processes of one cluster, which
// leave slurmd's process tree and so cannot be found from its pid.
std::vector<pid_t> PidsWithEnvEntry(const std::string& entry) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (!proc) return out;
  while (dirent* e = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0' || pid == ::getpid()) continue;
    std::ifstream in("/proc/" + std::string(e->d_name) + "/environ", std::ios::binary);
    std::string kv;
    while (std::getline(in, kv, '\0')) {
      if (kv == entry) {
        out.push_back(static_cast<pid_t>(pid));
        break;
      }
    }
  }
  ::closedir(proc);
  return out;
}

// The shell script of the watchdog. It blocks on its stdin, a pipe whose only
// writer is the test process, so it wakes when that process exits without
// Stop() (a crash, a ctest timeout's SIGKILL) and SIGKILLs every process whose
// environment holds this cluster's SLURM_CONF: the daemons, slurmstepd and the
// jobs. Three rounds, for a slurmd that was starting a step as the first ran.
constexpr const char* kWatchdogScript = R"(conf="$1"
read -r _ || true
for round in 1 2 3; do
  for e in /proc/[0-9]*/environ; do
    if tr '\0' '\n' < "$e" 2>/dev/null | grep -qxF "SLURM_CONF=$conf"; then
      p=${e#/proc/}; kill -9 "${p%/environ}" 2>/dev/null
    fi
  done
  sleep 0.5
done
)";

// Starts the watchdog with an environment of its own (without SLURM_CONF, so
// it and its tr/grep are not among what it kills). Returns its pid and the
// write end of its pipe (close-on-exec, so no other child holds it open).
Status SpawnWatchdog(const fs::path& conf, const fs::path& out, pid_t* pid, int* write_fd) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Status::IOError("pipe2 failed");
  std::vector<std::string> argv = {"/bin/sh", "-c", kWatchdogScript, "slurm-watchdog", conf.string()};
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  char path_env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char* envp[] = {path_env, nullptr};
  pid_t child = ::fork();
  if (child < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return Status::IOError("fork failed");
  }
  if (child == 0) {
    ::dup2(fds[0], 0);  // dup2 clears close-on-exec on the copy
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execve(args[0], args.data(), envp);
    ::_exit(127);
  }
  ::close(fds[0]);
  *pid = child;
  *write_fd = fds[1];
  return Status::OK();
}

}  // namespace

// One daemon run in the foreground as a child of this process, so its pid is
// known without pid files and it is reaped here. If this process dies first,
// the watchdog stops it (PR_SET_PDEATHSIG would not: it fires when the
// starting thread ends, and slurmctld drops it when it changes credentials).
struct SlurmCluster::Daemon {
  std::string name;
  fs::path out;  // its stdout and stderr
  pid_t pid = -1;

  static Result<std::unique_ptr<Daemon>> Spawn(const std::string& name, const std::vector<std::string>& argv,
                                               const fs::path& out) {
    auto d = std::make_unique<Daemon>();
    d->name = name;
    d->out = out;
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return Status::IOError("fork failed");
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec.
      int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (devnull >= 0) ::dup2(devnull, 0);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    d->pid = pid;
    return d;
  }

  bool Alive() {
    if (pid <= 0) return false;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      return false;
    }
    return true;
  }

  // SIGTERM, then SIGKILL after 10 s; reaps. Safe to call twice.
  void Stop() {
    if (!Alive()) return;
    ::kill(pid, SIGTERM);
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      if (!Alive()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
  }

  ~Daemon() { Stop(); }
};

Result<std::unique_ptr<SlurmCluster>> SlurmCluster::Start(const fs::path& dir, int cpus) {
  if (::geteuid() != 0) {
    return Status::NotFound("the Slurm test cluster needs root (slurmd starts jobs as their submitting user)");
  }
  std::string missing;
  for (const char* tool : {"munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel"}) {
    if (FindTool(tool).empty()) missing += std::string(missing.empty() ? "" : ", ") + tool;
  }
  if (!missing.empty()) {
    return Status::NotFound("the Slurm test cluster needs Debian's slurm-wlm and munge (scripts/install-deps.sh); "
                            "not found: " + missing);
  }

  std::unique_ptr<SlurmCluster> c(new SlurmCluster);
  c->dir_ = fs::absolute(dir);
  c->conf_ = c->dir_ / "slurm.conf";
  c->node_ = ShortHostName();
  c->cpus_ = cpus;
  std::error_code ec;
  for (const char* sub : {"munge", "state", "spool", "log", "run"}) {
    fs::create_directories(c->dir_ / sub, ec);
    if (ec) return Status::IOError("cannot create " + (c->dir_ / sub).string() + ": " + ec.message());
  }
  MEDPIPE_RETURN_IF_ERROR(WriteMungeKey(c->dir_ / "munge" / "munge.key"));

  int ctld_port = FreeLoopbackPort(), slurmd_port = FreeLoopbackPort();
  while (slurmd_port == ctld_port) slurmd_port = FreeLoopbackPort();
  long mem_mb = ::sysconf(_SC_PHYS_PAGES) / 1024 * ::sysconf(_SC_PAGE_SIZE) / 1024;
  const std::string d = c->dir_.string();
  // SlurmctldHost must be this machine's host name (slurmctld refuses to run
  // otherwise); the address makes every client and slurmd use loopback.
  // Accounting is off as on many small clusters: state comes from squeue and
  // scontrol only, and scontrol forgets an ended job after MinJobAge.
  std::ostringstream conf;
  conf << "ClusterName=medpipetest\n"
       << "SlurmctldHost=" << c->node_ << "(127.0.0.1)\n"
       << "SlurmctldPort=" << ctld_port << "\n"
       << "SlurmdPort=" << slurmd_port << "\n"
       << "AuthType=auth/munge\nCredType=cred/munge\n"
       << "AuthInfo=socket=" << d << "/munge/munge.sock\n"
       << "StateSaveLocation=" << d << "/state\n"
       << "SlurmdSpoolDir=" << d << "/spool\n"
       << "SlurmctldPidFile=" << d << "/run/slurmctld.pid\n"
       << "SlurmdPidFile=" << d << "/run/slurmd.pid\n"
       << "SlurmctldLogFile=" << d << "/log/slurmctld.log\n"
       << "SlurmdLogFile=" << d << "/log/slurmd.log\n"
       << "SlurmUser=root\nSlurmdUser=root\n"
       << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\n"
       << "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n"
       << "AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\n"
       << "JobAcctGatherType=jobacct_gather/none\n"
       // Without these, scheduling waits seconds between passes (42 s instead
       // of 9 s for an 8-task array plus a dependent job, KNOWN.md).
       << "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1\n"
       // The default, written out: the executor must cope with scontrol
       // forgetting a job this long after it ended.
       << "MinJobAge=300\n"
       // A cancelled task gets SIGKILL 5 s after SIGTERM (default 30 s).
       << "KillWait=5\n"
       << "ReturnToService=2\n"
       << "SlurmdParameters=config_overrides\n"
       << "NodeName=" << c->node_ << " NodeAddr=127.0.0.1 CPUs=" << cpus << " RealMemory=" << mem_mb
       << " State=UNKNOWN\n"
       << "PartitionName=" << c->partition() << " Nodes=" << c->node_ << " Default=YES State=UP MaxTime=INFINITE\n";
  WriteText(c->conf_, conf.str());
  ::setenv("SLURM_CONF", c->conf_.c_str(), 1);

  Status st = c->StartDaemons();
  if (st.ok()) st = c->WaitNodeIdle(60);
  if (!st.ok()) {
    Status failed = Status::IOError(st.message() + "\n" + c->LogTails());
    c->Stop();
    return failed;
  }
  return c;
}

Status SlurmCluster::StartDaemons() {
  MEDPIPE_RETURN_IF_ERROR(SpawnWatchdog(conf_, dir_ / "log" / "watchdog.out", &watchdog_pid_, &watchdog_fd_));
  const std::string d = dir_.string();
  const fs::path socket = dir_ / "munge" / "munge.sock";
  // --force: munged otherwise refuses a socket whose parent folders are not
  // world-executable (a mkdtemp folder is 0700); only root uses it here.
  MEDPIPE_ASSIGN_OR_RETURN(auto munged,
                           Daemon::Spawn("munged",
                                         {FindTool("munged"), "--foreground", "--force", "--socket=" + socket.string(),
                                          "--key-file=" + d + "/munge/munge.key", "--log-file=" + d + "/log/munged.log",
                                          "--pid-file=" + d + "/run/munged.pid", "--seed-file=" + d + "/munge/seed"},
                                         dir_ / "log" / "munged.out"));
  daemons_.push_back(std::move(munged));
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!fs::exists(socket)) {
    if (!daemons_.back()->Alive()) return Status::IOError("munged exited at start");
    if (Clock::now() > deadline) return Status::IOError("munged did not create its socket in 10 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  MEDPIPE_ASSIGN_OR_RETURN(auto ctld, Daemon::Spawn("slurmctld", {FindTool("slurmctld"), "-D", "-f", conf_.string()},
                                                    dir_ / "log" / "slurmctld.out"));
  daemons_.push_back(std::move(ctld));
  MEDPIPE_ASSIGN_OR_RETURN(auto slurmd, Daemon::Spawn("slurmd", {FindTool("slurmd"), "-D", "-f", conf_.string()},
                                                      dir_ / "log" / "slurmd.out"));
  daemons_.push_back(std::move(slurmd));
  return Status::OK();
}

Status SlurmCluster::WaitNodeIdle(double timeout_s) {
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  std::string last;
  while (Clock::now() < deadline) {
    for (auto& daemon : daemons_) {
      if (!daemon->Alive()) return Status::IOError(daemon->name + " exited at start");
    }
    ProcessResult r = Run({"sinfo", "-h", "-N", "-n", node_, "-o", "%t"});
    last = Trim(r.out) + Trim(r.err);
    if (r.exit_code == 0 && Trim(r.out) == "idle") return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return Status::IOError("the Slurm node did not become idle in time (sinfo: " + last + ")");
}

std::string SlurmCluster::LogTails() const {
  std::string out;
  for (const char* name : {"munged.log", "munged.out", "slurmctld.log", "slurmctld.out", "slurmd.log", "slurmd.out"}) {
    out += std::string(name) + ":\n" + Tail(dir_ / "log" / name, 15);
  }
  return out;
}

SlurmCluster::~SlurmCluster() { Stop(); }

void SlurmCluster::Stop() {
  if (daemons_.empty() && watchdog_pid_ <= 0) return;
  // Cancel what is left so slurmd's job steps end with their jobs.
  if (daemons_.size() == 3 && daemons_[1]->Alive() && daemons_[2]->Alive()) {
    Run({"scancel", "--user=root"});
    WaitQueueEmpty(15);
  }
  // slurmd, then slurmctld; munged (daemons_[0]) last, as they need it.
  for (size_t i = daemons_.size(); i-- > 1;) daemons_[i]->Stop();
  // slurmstepd and job processes that outlived a cancel: they carry this
  // cluster's SLURM_CONF in their environment (slurmd passes its own to
  // slurmstepd, sbatch passes the submitter's to the job). munged has it too.
  for (pid_t pid : PidsWithEnvEntry("SLURM_CONF=" + conf_.string())) {
    if (pid != daemons_[0]->pid) ::kill(pid, SIGKILL);
  }
  daemons_.clear();
  // Everything is stopped: the watchdog has nothing left to do.
  if (watchdog_pid_ > 0) {
    ::kill(watchdog_pid_, SIGKILL);
    ::waitpid(watchdog_pid_, nullptr, 0);
    watchdog_pid_ = -1;
  }
  if (watchdog_fd_ >= 0) ::close(watchdog_fd_);
  watchdog_fd_ = -1;
  const char* current = std::getenv("SLURM_CONF");
  if (current && conf_ == current) ::unsetenv("SLURM_CONF");
}

bool SlurmCluster::WaitQueueEmpty(double timeout_s) const {
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (true) {
    ProcessResult r = Run({"squeue", "-h", "-o", "%i"});
    if (r.exit_code == 0 && Trim(r.out).empty()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

ProcessResult SlurmCluster::Run(std::vector<std::string> args) const {
  if (!args.empty() && args[0].find('/') == std::string::npos) {
    std::string path = FindTool(args[0]);
    if (path.empty()) return ProcessResult{127, "", args[0] + ": not installed"};
    args[0] = path;
  }
  return RunProcess(args, {"SLURM_CONF=" + conf_.string()});
}

}  // namespace medpipe::testing
