#include "graph/executor.h"

namespace medpipe {

const std::vector<ParamSpec>& ExecutorParamSpecs() {
  static const std::vector<ParamSpec> specs = {
      {"type", ParamType::kString, "local", false, "where per-item work runs", {"local", "slurm"}},
      {"partition", ParamType::kString, "", false, "sbatch --partition", {}},
      {"account", ParamType::kString, "", false, "sbatch --account", {}},
      {"time", ParamType::kString, "", false, "sbatch --time: the time limit of one array task, e.g. 2:00:00", {}},
      {"memory", ParamType::kString, "", false, "sbatch --mem: memory of one array task, e.g. 8G", {}},
      {"cpus_per_task", ParamType::kInt, "0", false, "sbatch --cpus-per-task, and the task's thread count", {}},
      {"sbatch_args", ParamType::kStringList, "", false, "more sbatch arguments, e.g. [--qos=long]", {}},
      {"max_tasks", ParamType::kInt, "64", false, "array tasks per stage pass at most", {}},
      {"items_per_task", ParamType::kInt, "1", false, "items per array task at least", {}},
      {"max_running", ParamType::kInt, "0", false, "tasks of one array running at once (0: no limit)", {}},
      {"retries", ParamType::kInt, "2", false, "resubmissions of a failed task before its stage fails", {}},
      {"poll_interval", ParamType::kFloat, "5", false, "seconds between squeue polls", {}},
      {"marker_grace", ParamType::kFloat, "30", false,
       "seconds a finished task's marker file may lag on a shared filesystem", {}},
      {"command", ParamType::kPath, "", false, "the medpipe binary the tasks run (default: this one)", {}},
  };
  return specs;
}

Result<ExecutorDecl> ExecutorFromParams(const Params& p) {
  ExecutorDecl e;
  e.type = p.GetString("type");
  e.partition = p.GetString("partition");
  e.account = p.GetString("account");
  e.time = p.GetString("time");
  e.memory = p.GetString("memory");
  e.sbatch_args = p.GetStringList("sbatch_args");
  e.command = p.GetString("command");
  auto count = [&](const char* name, int64_t lo, int64_t hi, int* out) -> Status {
    int64_t v = p.GetInt(name);
    if (v < lo || v > hi) return p.Error(name, "expected " + std::to_string(lo) + " to " + std::to_string(hi));
    *out = static_cast<int>(v);
    return Status::OK();
  };
  MEDPIPE_RETURN_IF_ERROR(count("cpus_per_task", 0, 4096, &e.cpus_per_task));
  // Slurm's default MaxArraySize is 1001: task ids 0-1000.
  MEDPIPE_RETURN_IF_ERROR(count("max_tasks", 1, 1000, &e.max_tasks));
  MEDPIPE_RETURN_IF_ERROR(count("items_per_task", 1, 100000000, &e.items_per_task));
  MEDPIPE_RETURN_IF_ERROR(count("max_running", 0, 100000, &e.max_running));
  MEDPIPE_RETURN_IF_ERROR(count("retries", 0, 100, &e.retries));
  e.poll_interval = p.GetFloat("poll_interval");
  if (!(e.poll_interval >= 0.05 && e.poll_interval <= 3600)) {
    return p.Error("poll_interval", "expected 0.05 to 3600 seconds");
  }
  e.marker_grace = p.GetFloat("marker_grace");
  if (!(e.marker_grace >= 0 && e.marker_grace <= 3600)) return p.Error("marker_grace", "expected 0 to 3600 seconds");
  for (const auto& a : e.sbatch_args) {
    for (const char* owned : {"--array", "--job-name", "--output", "--open-mode", "--chdir", "--parsable", "-a", "-J",
                              "-o", "-D"}) {
      std::string o = owned;
      if (a == o || a.rfind(o + "=", 0) == 0) {
        return p.Error("sbatch_args", "'" + a + "' is set by medpipe for every array it submits");
      }
    }
  }
  return e;
}

}  // namespace medpipe
