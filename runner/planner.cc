#include "runner/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "runner/item_journal.h"
#include "runner/runner.h"
#include "runner/slurm_dispatch.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {

std::map<std::string, std::string> PortableParams(const StageDecl& decl, const fs::path& base) {
  std::map<std::string, std::string> out = decl.params.Canonical();
  if (!decl.spec) return out;
  for (const auto& spec : decl.spec->params) {
    if (spec.type != ParamType::kPath || !decl.params.Has(spec.name)) continue;
    const std::string& value = decl.params.GetString(spec.name);
    if (value.empty() || !fs::path(value).is_absolute()) continue;
    out[spec.name] = CanonicalJson(YAML::Node(fs::path(value).lexically_relative(base).string()));
  }
  return out;
}

std::string StageFingerprint(const StageDecl& decl, const fs::path& base, uint64_t seed, const std::string& external,
                             const std::vector<std::string>& input_output_fps) {
  Hasher h;
  h.Field("medpipe-stage-v1").Field(decl.kind).Field(std::to_string(decl.spec ? decl.spec->version : 0));
  h.Field(std::to_string(seed)).Field(external);
  for (const auto& [name, json] : PortableParams(decl, base)) h.Field(name).Field(json);
  h.Field(std::to_string(input_output_fps.size()));
  for (const auto& fp : input_output_fps) h.Field(fp);
  return h.HexDigest();
}

namespace {

// An external fingerprint of named parts ("script=<hash>;env=<hash>", or ""
// for none), or nullopt for a plain one.
std::optional<std::map<std::string, std::string>> ExternalParts(const std::string& fp) {
  std::map<std::string, std::string> parts;
  for (const auto& part : Split(fp, ';')) {
    size_t eq = part.find('=');
    if (eq == std::string::npos || eq == 0) return std::nullopt;
    parts[part.substr(0, eq)] = part.substr(eq + 1);
  }
  return parts;
}

// "script changed" when a stage names the parts of its external
// fingerprint; "source files changed" otherwise.
std::string ExternalChange(const std::string& before, const std::string& now) {
  auto a = ExternalParts(before), b = ExternalParts(now);
  if (!a || !b) return "source files changed";
  std::set<std::string> names;
  for (const auto& [k, v] : *a) names.insert(k);
  for (const auto& [k, v] : *b) names.insert(k);
  std::vector<std::string> why;
  for (const auto& k : names) {
    auto x = a->find(k), y = b->find(k);
    if (x == a->end() || y == b->end() || x->second != y->second) why.push_back(k + " changed");
  }
  return why.empty() ? "source files changed" : Join(why, ", ");
}

}  // namespace

Verdict Judge(const StageDecl& decl, const fs::path& base, const fs::path& stage_dir, uint64_t seed,
              const std::string& external,
              const std::map<std::string, std::string>& input_output_fps, const std::string& fingerprint) {
  Result<CommitRecord> prev = ReadCommit(stage_dir);
  if (!prev.ok()) {
    if (prev.status().code() != Status::Code::kNotFound) return {false, prev.status().message()};
    if (ReadFailure(stage_dir).ok()) return {false, "last attempt failed"};
    if (StatPath(ItemJournal::PathFor(stage_dir)).exists) return {false, "resuming an interrupted attempt"};
    return {false, "never run"};
  }
  if (prev->fingerprint == fingerprint) {
    if (prev->items.transient > 0) {
      return {false, fmt::format("retrying {} items that failed transiently", prev->items.transient)};
    }
    Result<std::vector<FileRecord>> files = ReadManifest(stage_dir);
    if (!files.ok()) return {false, "manifest unreadable: " + files.status().message()};
    std::string changed = CheckOutputs(stage_dir, *files);
    if (!changed.empty()) return {false, changed};
    return {true, "up to date"};
  }
  std::vector<std::string> why;
  int version = decl.spec ? decl.spec->version : 0;
  if (prev->kind != decl.kind) why.push_back("kind changed");
  else if (prev->kind_version != version) why.push_back(fmt::format("kind {} changed version", decl.kind));
  std::map<std::string, std::string> params = PortableParams(decl, base);
  for (const auto& [name, json] : params) {
    auto it = prev->params.find(name);
    if (it == prev->params.end()) {
      why.push_back("params." + name + " added: " + json);
    } else if (it->second != json) {
      auto set = prev->overrides.find(name);
      why.push_back(fmt::format("params.{} changed: {} -> {}{}", name, it->second, json,
                                set != prev->overrides.end() ? " (the last run overrode it with --set)" : ""));
    }
  }
  for (const auto& [name, json] : prev->params) {
    if (!params.count(name)) why.push_back("params." + name + " removed");
  }
  if (prev->seed != seed) why.push_back("seed changed");
  for (const auto& in : decl.inputs) {
    auto it = prev->inputs.find(in);
    auto now = input_output_fps.find(in);
    if (it == prev->inputs.end()) why.push_back("input " + in + " added");
    else if (now != input_output_fps.end() && it->second != now->second) why.push_back("input " + in + " changed");
  }
  for (const auto& [in, fp] : prev->inputs) {
    if (!input_output_fps.count(in)) why.push_back("input " + in + " removed");
  }
  if (prev->external != external) why.push_back(ExternalChange(prev->external, external));
  if (why.empty()) why.push_back("fingerprint changed");
  return {false, Join(why, ", ")};
}

std::vector<StageReport> InspectPipeline(const Pipeline& p, const std::vector<std::unique_ptr<Stage>>& stages) {
  std::vector<StageReport> out(p.stages.size());
  std::vector<std::string> output_fp(p.stages.size());
  const LockHolder lock = ProbeWorkdirLock(p.workdir);
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const StageDecl& d = p.stages[i];
    fs::path dir = p.workdir / d.id;
    StageReport& r = out[i];
    Result<CommitRecord> commit = ReadCommit(dir);
    if (commit.ok()) r.commit = *commit;
    if (auto j = ItemJournal::Open(DefaultDisk(), dir, /*repair=*/false); j.ok()) r.journaled_items = (*j)->loaded();

    std::vector<std::string> not_done;
    std::map<std::string, std::string> input_fps;
    std::vector<std::string> fps;
    for (const auto& in : d.inputs) {
      size_t j = static_cast<size_t>(p.Find(in));
      if (out[j].state == "stale") {
        not_done.push_back("input " + in + " changed (it is stale)");
      } else if (out[j].state != "done") {
        not_done.push_back("input " + in + " not done (" + out[j].state + ")");
      }
      input_fps[in] = output_fp[j];
      fps.push_back(output_fp[j]);
    }
    Result<FailureRecord> failure = ReadFailure(dir);
    if (!commit.ok()) {
      if (lock.held && StatPath(MetaDir(dir)).exists && !failure.ok()) {
        r.state = "running";
        r.reason = fmt::format("pid {}, started {}{}", lock.pid, lock.started,
                               r.journaled_items > 0 ? fmt::format(", {} items done so far", r.journaled_items) : "");
        r.slurm_jobs = RecordedSlurmJobs(dir);
        if (!r.slurm_jobs.empty()) r.reason += ", Slurm jobs " + Join(r.slurm_jobs, ", ");
      } else if (failure.ok()) {
        r.state = "failed";
        r.reason = failure->reason;
      } else if (r.journaled_items > 0) {
        r.state = "incomplete";
        r.reason = fmt::format("interrupted with {} items done", r.journaled_items);
      } else {
        r.state = "never run";
      }
      continue;
    }
    if (!not_done.empty()) {
      r.state = "stale";
      r.reason = Join(not_done, ", ");
      continue;
    }
    Result<std::string> external = stages[i]->ExternalFingerprint();
    if (!external.ok()) {
      r.state = "stale";
      r.reason = external.status().message();
      continue;
    }
    std::string fp = StageFingerprint(d, p.dir, p.seed, *external, fps);
    Verdict v = Judge(d, p.dir, dir, p.seed, *external, input_fps, fp);
    r.state = v.up_to_date ? "done" : "stale";
    r.reason = v.up_to_date ? "" : v.reason;
    if (v.up_to_date) output_fp[i] = commit->output_fingerprint;
  }
  return out;
}

std::vector<std::string> OrphanFolders(const Pipeline& p) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(p.workdir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.' || !it->is_directory(ec) || it->is_symlink(ec)) continue;
    if (p.Find(name) < 0) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<size_t> StagesLinkingInto(const Pipeline& p, size_t i) {
  const fs::path target_dir = (p.workdir / p.stages[i].id).lexically_normal();
  const std::string prefix = target_dir.string() + "/";
  std::vector<size_t> out;
  for (size_t j = 0; j < p.stages.size(); ++j) {
    if (j == i) continue;
    const fs::path dir = p.workdir / p.stages[j].id;
    Result<std::vector<FileRecord>> files = ReadManifest(dir);
    if (!files.ok()) continue;
    for (const auto& f : *files) {
      fs::path link = dir / f.path;
      if (!StatPath(link).is_symlink) continue;
      std::error_code ec;
      fs::path target = fs::read_symlink(link, ec);
      if (ec) continue;
      if (target.is_relative()) target = link.parent_path() / target;
      if (target.lexically_normal().string().rfind(prefix, 0) == 0) {
        out.push_back(j);
        break;
      }
    }
  }
  return out;
}

}  // namespace medpipe
