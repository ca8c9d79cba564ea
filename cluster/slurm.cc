#include "cluster/slurm.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <regex>

#include "util/strings.h"
#include "util/subprocess.h"

namespace medpipe::slurm {

namespace {

// Slurm's clients answer in well under a second on a healthy cluster; a
// minute means slurmctld is stuck, and the caller retries at its next poll.
constexpr double kClientTimeout = 60;

Result<ProcessResult> Client(const std::vector<std::string>& argv) {
  Result<ProcessResult> r = RunProcess(argv, kClientTimeout);
  if (!r.ok() && r.status().code() == Status::Code::kNotFound) {
    return Status::NotFound(argv[0] + " not found: the Slurm client commands must be on PATH for --executor slurm");
  }
  return r;
}

std::string Field(const std::string& text, const std::string& key) {
  std::smatch m;
  std::regex re("(^|\\s)" + key + "=(\\S*)");
  return std::regex_search(text, m, re) ? m[2].str() : std::string();
}

}  // namespace

std::vector<std::string> SbatchArgv(const ArrayJob& job) {
  std::vector<std::string> argv = {"sbatch", "--parsable", "--job-name=" + job.name,
                                   "--array=" + FormatArray(job.tasks) +
                                       (job.max_running > 0 ? fmt::format("%{}", job.max_running) : ""),
                                   "--output=" + job.output, "--open-mode=append", "--chdir=" + job.chdir.string()};
  if (!job.partition.empty()) argv.push_back("--partition=" + job.partition);
  if (!job.account.empty()) argv.push_back("--account=" + job.account);
  if (!job.time_limit.empty()) argv.push_back("--time=" + job.time_limit);
  if (!job.memory.empty()) argv.push_back("--mem=" + job.memory);
  if (job.cpus_per_task > 0) argv.push_back(fmt::format("--cpus-per-task={}", job.cpus_per_task));
  argv.insert(argv.end(), job.extra_args.begin(), job.extra_args.end());
  argv.push_back(job.script.string());
  return argv;
}

Result<std::string> Submit(const ArrayJob& job) {
  MEDPIPE_ASSIGN_OR_RETURN(ProcessResult r, Client(SbatchArgv(job)));
  if (r.exit_code != 0) {
    return Status::Unavailable(fmt::format("sbatch failed (exit {}): {}", r.exit_code, FirstLine(r.err + r.out)));
  }
  // --parsable prints "jobid" or "jobid;cluster".
  std::string id = FirstLine(r.out);
  id = id.substr(0, id.find(';'));
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos) {
    return Status::Unavailable("sbatch printed no job id: " + FirstLine(r.out + r.err));
  }
  return id;
}

Result<std::map<int, TaskState>> ActiveTasks(const std::string& name) {
  MEDPIPE_ASSIGN_OR_RETURN(ProcessResult r,
                           Client({"squeue", "--me", "--noheader", "--array", "--name=" + name, "--format=%i|%T|%r"}));
  if (r.exit_code != 0) {
    return Status::Unavailable(fmt::format("squeue failed (exit {}): {}", r.exit_code, FirstLine(r.err + r.out)));
  }
  std::map<int, TaskState> out;
  for (const std::string& line : Split(r.out, '\n')) {
    std::vector<std::string> f = Split(line, '|');
    if (f.size() < 3) continue;
    // "123_4", or "123_[5-7%2]" for tasks not yet split off a pending array.
    size_t us = f[0].find('_');
    if (us == std::string::npos) continue;  // not an array job: not ours
    std::string job = f[0].substr(0, us);
    Result<std::vector<int>> ids = ParseArray(f[0].substr(us + 1));
    if (!ids.ok()) return Status::Unavailable("squeue: unexpected job id '" + f[0] + "'");
    for (int t : *ids) out[t] = TaskState{job, f[1], f[2]};
  }
  return out;
}

std::string TaskEnd::Describe() const {
  if (!known) return "ended; Slurm no longer knows how (its record expired and accounting is off)";
  std::string out = state;
  if (state == "FAILED" && !exit_code.empty()) out += " (exit " + exit_code.substr(0, exit_code.find(':')) + ")";
  if (!reason.empty() && reason != "None" && state != "FAILED") out += " (" + reason + ")";
  return out;
}

TaskEnd EndOf(const std::string& job_id, int task) {
  TaskEnd end;
  const std::string id = fmt::format("{}_{}", job_id, task);
  Result<ProcessResult> r = Client({"scontrol", "show", "job", id});
  if (r.ok() && r->exit_code == 0) {
    end.state = Field(r->out, "JobState");
    end.reason = Field(r->out, "Reason");
    end.exit_code = Field(r->out, "ExitCode");
    end.known = !end.state.empty();
    if (end.known) return end;
  }
  r = Client({"sacct", "--noheader", "--parsable2", "--allocations", "--jobs=" + id, "--format=State,ExitCode"});
  if (r.ok() && r->exit_code == 0) {
    std::vector<std::string> f = Split(FirstLine(r->out), '|');
    if (f.size() >= 2 && !f[0].empty()) {
      end.state = f[0].substr(0, f[0].find(' '));  // "CANCELLED by 0"
      end.exit_code = f[1];
      end.known = true;
    }
  }
  return end;
}

Status CancelByName(const std::string& name) {
  MEDPIPE_ASSIGN_OR_RETURN(ProcessResult r, Client({"scancel", "--me", "--name=" + name}));
  if (r.exit_code != 0) {
    return Status::Unavailable(fmt::format("scancel failed (exit {}): {}", r.exit_code, FirstLine(r.err + r.out)));
  }
  return Status::OK();
}

std::string FormatArray(std::vector<int> tasks) {
  std::sort(tasks.begin(), tasks.end());
  tasks.erase(std::unique(tasks.begin(), tasks.end()), tasks.end());
  std::vector<std::string> parts;
  for (size_t i = 0; i < tasks.size();) {
    size_t j = i;
    while (j + 1 < tasks.size() && tasks[j + 1] == tasks[j] + 1) ++j;
    parts.push_back(j == i ? std::to_string(tasks[i]) : fmt::format("{}-{}", tasks[i], tasks[j]));
    i = j + 1;
  }
  return Join(parts, ",");
}

Result<std::vector<int>> ParseArray(std::string_view spec) {
  if (!spec.empty() && spec.front() == '[' && spec.back() == ']') spec = spec.substr(1, spec.size() - 2);
  spec = spec.substr(0, spec.find('%'));  // a throttle: "0-7%2"
  std::vector<int> out;
  auto number = [](std::string_view s, int* v) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
    return ec == std::errc() && p == s.data() + s.size() && *v >= 0;
  };
  for (const std::string& part : Split(std::string(spec), ',')) {
    size_t dash = part.find('-');
    int a = 0, b = 0;
    if (dash == std::string::npos ? !number(part, &a) : !number(std::string_view(part).substr(0, dash), &a) ||
                                                            !number(std::string_view(part).substr(dash + 1), &b)) {
      return Status::Invalid("not a task list: '" + std::string(spec) + "'");
    }
    if (dash == std::string::npos) b = a;
    if (b < a || b - a > 1000000) return Status::Invalid("not a task list: '" + std::string(spec) + "'");
    for (int t = a; t <= b; ++t) out.push_back(t);
  }
  return out;
}

}  // namespace medpipe::slurm
