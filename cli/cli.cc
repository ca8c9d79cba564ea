#include "cli/cli.h"

#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include "cli/args.h"
#include "cli/templates.h"
#include "cli/version.h"
#include "graph/render.h"
#include "graph/sources.h"
#include "runner/planner.h"
#include "runner/runner.h"
#include "runner/worker.h"
#include "serve/server.h"
#include "stages/registry.h"
#include "util/strings.h"

namespace medpipe {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;

int Usage(const std::string& message, const std::string& command = "") {
  if (!message.empty()) std::fprintf(stderr, "medpipe: %s\n", message.c_str());
  std::fputs(CommandUsage(command).c_str(), stderr);
  return kExitUsage;
}

int PrintStages(const Args& args) {
  if (args.names) {
    for (const auto& name : BuiltinRegistry().KindNames()) std::printf("%s\n", name.c_str());
    return kExitOk;
  }
  std::vector<const StageKind*> kinds = BuiltinRegistry().All();
  if (!args.positional.empty()) {
    const StageKind* one = BuiltinRegistry().Find(args.positional[0]);
    if (!one) {
      std::string hint = ClosestName(args.positional[0], BuiltinRegistry().KindNames());
      return Usage(fmt::format("no stage kind '{}'{}", args.positional[0],
                               hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)),
                   "stages");
    }
    kinds = {one};
  }
  for (const StageKind* k : kinds) {
    std::printf("%s (v%d): %s\n", k->spec.name.c_str(), k->spec.version, k->spec.help.c_str());
    std::string inputs = k->spec.max_inputs == 0 ? "none"
                         : k->spec.max_inputs < 0 ? fmt::format("{} or more", k->spec.min_inputs)
                         : k->spec.min_inputs == k->spec.max_inputs ? std::to_string(k->spec.min_inputs)
                                                                    : fmt::format("{} to {}", k->spec.min_inputs,
                                                                                  k->spec.max_inputs);
    std::printf("  inputs: %s\n", inputs.c_str());
    for (const auto& p : k->spec.params) {
      std::string dflt = p.required ? "required" : p.default_yaml.empty() ? "optional" : "default " + p.default_yaml;
      std::string choices = p.choices.empty() ? "" : " {" + Join(p.choices, ", ") + "}";
      std::printf("  %-22s %-16s %-24s %s%s\n", p.name.c_str(), ParamTypeName(p.type), dflt.c_str(), p.help.c_str(),
                  choices.c_str());
    }
    std::printf("\n");
  }
  return kExitOk;
}

struct Loaded {
  Pipeline pipeline;
  std::vector<std::unique_ptr<Stage>> stages;
};

// Loads FILE with the --set overrides and builds its stages; on a config
// error prints every message and returns nullopt (the caller exits 2).
std::optional<Loaded> Load(const Args& a) {
  Loaded l;
  LoadOptions options;
  options.overrides = a.overrides;
  Result<Pipeline> p = LoadPipeline(a.positional.at(0), BuiltinRegistry(), options);
  Result<std::vector<std::unique_ptr<Stage>>> stages =
      p.ok() ? BuiltinRegistry().Instantiate(*p) : Result<std::vector<std::unique_ptr<Stage>>>(p.status());
  if (!stages.ok()) {
    std::fprintf(stderr, "%s\n", stages.status().message().c_str());
    return std::nullopt;
  }
  l.pipeline = std::move(p).value();
  l.stages = std::move(stages).value();
  return l;
}

const char* StateName(StageOutcome::State s) {
  switch (s) {
    case StageOutcome::State::kNotSelected: return "not selected";
    case StageOutcome::State::kSkipped: return "up to date";
    case StageOutcome::State::kWouldRun: return "would run";
    case StageOutcome::State::kRan: return "ran";
    case StageOutcome::State::kFailed: return "FAILED";
    case StageOutcome::State::kBlocked: return "blocked";
    case StageOutcome::State::kCancelled: return "interrupted";
  }
  return "?";
}

// Prints every missing source of `p`; false when there was any.
bool ReportMissingSources(const Pipeline& p) {
  std::vector<std::string> missing = MissingSources(p);
  for (const auto& m : missing) std::fprintf(stderr, "%s\n", m.c_str());
  return missing.empty();
}

int Run(const Args& args, const std::atomic<bool>* cancel) {
  std::optional<Loaded> l = Load(args);
  if (!l) return kExitUsage;
  // Sources are checked before any stage runs (--only debugs one stage on
  // checkpointed inputs, whatever the state of the others' sources).
  if (args.run.only.empty() && !ReportMissingSources(l->pipeline)) return kExitUsage;
  RunOptions o = args.run;
  o.cancel = cancel;
  o.live_progress = ::isatty(STDERR_FILENO);
  // Not a terminal (nohup, CI, Slurm): a plain progress line every few
  // seconds instead of silence.
  o.plain_progress_interval = std::chrono::seconds(5);
  if (const char* ms = std::getenv("MEDPIPE_PROGRESS_INTERVAL_MS")) {
    o.plain_progress_interval = std::chrono::milliseconds(std::atol(ms));
  }
  Result<RunSummary> s = RunPipeline(l->pipeline, l->stages, o);
  if (!s.ok()) {
    std::fprintf(stderr, "medpipe: %s\n", s.status().message().c_str());
    return kExitUsage;
  }
  if (o.dry_run) {
    // The plan, on stdout so it can be piped: one line per selected stage.
    for (size_t i = 0; i < s->outcomes.size(); ++i) {
      const StageOutcome& out = s->outcomes[i];
      const std::string& id = l->pipeline.stages[i].id;
      if (out.state == StageOutcome::State::kSkipped) std::printf("skip %s: up to date\n", id.c_str());
      if (out.state == StageOutcome::State::kWouldRun) std::printf("would run %s: %s\n", id.c_str(), out.reason.c_str());
      if (out.state == StageOutcome::State::kFailed) std::printf("cannot plan %s: %s\n", id.c_str(), out.reason.c_str());
    }
  } else {
    for (size_t i = 0; i < s->outcomes.size(); ++i) {
      const StageOutcome& out = s->outcomes[i];
      if (out.state == StageOutcome::State::kFailed || out.state == StageOutcome::State::kBlocked) {
        std::fprintf(stderr, "medpipe: stage %s %s: %s\n", l->pipeline.stages[i].id.c_str(), StateName(out.state),
                     out.reason.c_str());
      }
    }
    if (s->exit_code == 0) {
      std::fprintf(stderr, "medpipe: pipeline %s done; outputs in %s\n", l->pipeline.name.c_str(),
                   l->pipeline.workdir.c_str());
    }
  }
  return s->exit_code;
}

// One array task of a cluster run. Its messages go to the task's log; the
// exit code is what Slurm reports to the controller.
int Worker(const Args& args, const std::atomic<bool>* cancel) {
  std::optional<Loaded> l = Load(args);
  if (!l) return kExitUsage;
  WorkerOptions o;
  o.stage = args.stage;
  o.call = args.call;
  o.shard = static_cast<size_t>(args.shard);
  o.threads = args.run.threads;
  o.cancel = cancel;
  Status s = RunWorker(l->pipeline, l->stages, o);
  if (!s.ok()) {
    std::fprintf(stderr, "medpipe worker: %s\n", s.message().c_str());
    return s.code() == Status::Code::kConfig ? kExitUsage : s.code() == Status::Code::kCancelled ? 130 : 1;
  }
  return kExitOk;
}

// `status --json`: what the table shows, for scripts and dashboards.
std::string StatusJson(const Pipeline& p, const std::vector<StageReport>& reports) {
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.SetIndent(' ', 2);
  w.StartObject();
  w.Key("pipeline"), w.String(p.name.c_str());
  w.Key("file"), w.String(p.file.c_str());
  w.Key("workdir"), w.String(p.workdir.c_str());
  LockHolder h = ProbeWorkdirLock(p.workdir);
  w.Key("running");
  if (h.held) {
    w.StartObject();
    w.Key("pid"), w.Int64(h.pid);
    w.Key("started"), w.String(h.started.c_str());
    w.EndObject();
  } else {
    w.Null();
  }
  w.Key("overrides");
  w.StartArray();
  for (const auto& o : p.overrides) w.String(o.c_str());
  w.EndArray();
  w.Key("stages");
  w.StartArray();
  for (size_t i = 0; i < reports.size(); ++i) {
    const StageReport& r = reports[i];
    w.StartObject();
    w.Key("id"), w.String(p.stages[i].id.c_str());
    w.Key("kind"), w.String(p.stages[i].kind.c_str());
    w.Key("state"), w.String(r.state.c_str());
    w.Key("why"), w.String(r.reason.c_str());
    w.Key("outputs"), w.String((p.workdir / p.stages[i].id).c_str());
    w.Key("slurm_jobs");
    w.StartArray();
    for (const auto& j : r.slurm_jobs) w.String(j.c_str());
    w.EndArray();
    w.Key("items");
    w.StartObject();
    w.Key("total"), w.Int64(r.commit ? r.commit->items.total : 0);
    w.Key("done"), w.Int64(r.commit ? r.commit->items.total - r.commit->items.failed
                                    : static_cast<int64_t>(r.journaled_items));
    w.Key("failed"), w.Int64(r.commit ? r.commit->items.failed : 0);
    w.EndObject();
    w.Key("problems");
    w.StartObject();
    if (r.commit) {
      for (const auto& [kind, n] : r.commit->problems) {
        w.Key(kind.c_str());
        w.Int64(n);
      }
    }
    w.EndObject();
    w.Key("seconds");
    if (r.commit) {
      w.Double(r.commit->seconds);
    } else {
      w.Null();
    }
    w.Key("finished_at");
    if (r.commit) {
      w.String(r.commit->finished_at.c_str());
    } else {
      w.Null();
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("orphans");
  w.StartArray();
  for (const auto& name : OrphanFolders(p)) w.String((p.workdir / name).c_str());
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

// False, having said why, when another pipeline owns the workdir: its
// stages are not this pipeline's to show or clean.
bool OwnsWorkdir(const Pipeline& p) {
  Status s = CheckWorkdirOwner(p);
  if (!s.ok()) std::fprintf(stderr, "medpipe: %s\n", s.message().c_str());
  return s.ok();
}

int Status_(const Args& args) {
  std::optional<Loaded> l = Load(args);
  if (!l) return kExitUsage;
  const Pipeline& p = l->pipeline;
  if (!OwnsWorkdir(p)) return kExitUsage;
  std::vector<StageReport> reports = InspectPipeline(p, l->stages);
  if (args.json) {
    std::fputs(StatusJson(p, reports).c_str(), stdout);
    return kExitOk;
  }
  std::printf("pipeline %s, workdir %s\n", p.name.c_str(), p.workdir.c_str());
  if (!p.overrides.empty()) std::printf("overridden: %s\n", Join(p.overrides, ", ").c_str());
  if (LockHolder h = ProbeWorkdirLock(p.workdir); h.held) {
    std::printf("running: pid %ld, started %s\n", h.pid, h.started.c_str());
  }
  std::printf("%-20s %-10s %-11s %-22s %-9s %-10s %s\n", "STAGE", "KIND", "STATE", "ITEMS", "PROBLEMS", "TIME", "WHY");
  for (size_t i = 0; i < reports.size(); ++i) {
    const StageReport& r = reports[i];
    std::string items = "-", time = "-", problems = "-";
    if (r.commit) {
      if (r.commit->items.total > 0) {
        items = fmt::format("{} ({} failed)", r.commit->items.total, r.commit->items.failed);
      }
      time = HumanDuration(r.commit->seconds);
      int64_t n = 0;
      for (const auto& [kind, count] : r.commit->problems) n += count;
      problems = std::to_string(n);
    } else if (r.journaled_items > 0) {
      items = fmt::format("{} journaled", r.journaled_items);
    }
    std::printf("%-20s %-10s %-11s %-22s %-9s %-10s %s\n", p.stages[i].id.c_str(), p.stages[i].kind.c_str(),
                r.state.c_str(), items.c_str(), problems.c_str(), time.c_str(), r.reason.c_str());
  }
  // Problems by kind, for the stages that had any: what report.json lists.
  for (size_t i = 0; i < reports.size(); ++i) {
    if (!reports[i].commit || reports[i].commit->problems.empty()) continue;
    std::vector<std::string> kinds;
    for (const auto& [kind, count] : reports[i].commit->problems) kinds.push_back(fmt::format("{} {}", count, kind));
    std::printf("problems %s: %s (see %s)\n", p.stages[i].id.c_str(), Join(kinds, ", ").c_str(),
                (p.workdir / p.stages[i].id / "report.json").c_str());
  }
  for (const auto& name : OrphanFolders(p)) {
    std::printf("orphan %s (%s): no stage of %s owns it; `medpipe clean %s --orphans` removes it\n",
                (p.workdir / name).c_str(), HumanBytes(DiskUsage(p.workdir / name)).c_str(), p.file.c_str(),
                p.file.c_str());
  }
  return kExitOk;
}

int Clean(const Args& args) {
  std::optional<Loaded> l = Load(args);
  if (!l) return kExitUsage;
  const Pipeline& p = l->pipeline;
  if (!OwnsWorkdir(p)) return kExitUsage;
  std::vector<std::string> all_ids;
  for (const auto& s : p.stages) all_ids.push_back(s.id);
  std::vector<std::string> ids(args.positional.begin() + 1, args.positional.end());
  for (const auto& id : ids) {
    if (p.Find(id) < 0) {
      std::string hint = ClosestName(id, all_ids);
      std::fprintf(stderr, "medpipe: clean: no stage '%s' in %s%s\n", id.c_str(), p.file.c_str(),
                   hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint).c_str());
      return kExitUsage;
    }
  }
  if (ids.empty() && !args.orphans) ids = all_ids;

  // Stages whose outputs link into a stage being cleaned would be left with
  // dangling links: refuse, or clean them too (transitively) with --cascade.
  std::set<std::string> chosen(ids.begin(), ids.end());
  for (size_t k = 0; k < ids.size(); ++k) {
    std::vector<std::string> linking;
    for (size_t j : StagesLinkingInto(p, static_cast<size_t>(p.Find(ids[k])))) {
      if (!chosen.count(p.stages[j].id)) linking.push_back(p.stages[j].id);
    }
    if (linking.empty()) continue;
    if (args.cascade) {
      for (const auto& id : linking) {
        chosen.insert(id);
        ids.push_back(id);
      }
    } else if (!args.force_clean) {
      std::fprintf(stderr,
                   "medpipe: clean %s: the outputs of %s link into its files and would be left dangling; "
                   "add --cascade to clean them too, or --force to clean %s alone (they are redone on the next run)\n",
                   ids[k].c_str(), Join(linking, ", ").c_str(), ids[k].c_str());
      return 1;
    }
  }
  if (args.orphans) {
    for (const auto& name : OrphanFolders(p)) ids.push_back(name);
  }

  if (args.run.dry_run) {
    size_t n = 0;
    for (const auto& id : ids) {
      fs::path dir = p.workdir / id;
      if (!StatPath(dir).exists) continue;
      std::printf("would remove %s (%s)\n", dir.c_str(), HumanBytes(DiskUsage(dir)).c_str());
      ++n;
    }
    if (n == 0) std::printf("nothing to remove\n");
    return kExitOk;
  }
  std::vector<std::pair<fs::path, uint64_t>> sizes;
  for (const auto& id : ids) sizes.emplace_back(p.workdir / id, DiskUsage(p.workdir / id));
  Result<std::vector<fs::path>> removed = CleanFolders(p.workdir, ids);
  if (!removed.ok()) {
    std::fprintf(stderr, "medpipe: %s\n", removed.status().message().c_str());
    return removed.status().code() == Status::Code::kConfig ? kExitUsage : 1;
  }
  for (const auto& dir : *removed) {
    uint64_t bytes = 0;
    for (const auto& [d, b] : sizes) {
      if (d == dir) bytes = b;
    }
    std::printf("removed %s (%s)\n", dir.c_str(), HumanBytes(bytes).c_str());
  }
  if (removed->empty()) std::printf("nothing to remove\n");
  return kExitOk;
}

int Init(const Args& args) {
  if (args.positional.size() != 1) return Usage("init: which folder?", "init");
  std::string text = PipelineTemplate(args.template_name);
  if (text.empty()) {
    return Usage(fmt::format("init: no template '{}' (templates: {})", args.template_name,
                             Join(TemplateNames(), ", ")),
                 "init");
  }
  fs::path dir = args.positional[0];
  fs::path file = dir / "pipeline.yaml";
  if (StatPath(file).exists) {
    std::fprintf(stderr, "medpipe: init: %s exists; not overwritten\n", file.c_str());
    return 1;
  }
  Result<std::vector<std::pair<std::string, std::string>>> starters = StarterFiles(args.template_name);
  if (!starters.ok()) {
    std::fprintf(stderr, "medpipe: init: %s\n", starters.status().message().c_str());
    return 1;
  }
  Status s = DefaultDisk()->CreateDirs(dir / "data");
  for (const auto& [rel, content] : *starters) {
    if (!s.ok()) break;
    if (rel.back() == '/') {
      s = DefaultDisk()->CreateDirs(dir / rel);
    } else if (!StatPath(dir / rel).exists) {
      s = DefaultDisk()->CreateDirs((dir / rel).parent_path());
      if (s.ok()) s = DefaultDisk()->WriteAtomic(dir / rel, content, /*sync=*/false);
    }
  }
  if (s.ok()) s = DefaultDisk()->WriteAtomic(file, text, /*sync=*/true);
  if (!s.ok()) {
    std::fprintf(stderr, "medpipe: init: %s\n", s.message().c_str());
    return 1;
  }
  std::printf("wrote %s (template %s); put your data under %s, then: medpipe validate %s\n", file.c_str(),
              args.template_name.c_str(), (dir / "data").c_str(), file.c_str());
  return kExitOk;
}

int LoadAndShow(const Args& args) {
  std::optional<Loaded> l = Load(args);
  if (!l) return kExitUsage;
  if (args.command == "validate") {
    if (!ReportMissingSources(l->pipeline)) return kExitUsage;
    std::printf("%s: ok (%zu stages)\n", l->pipeline.file.c_str(), l->pipeline.stages.size());
  } else {
    std::fputs((args.format == "mermaid" ? RenderMermaid(l->pipeline) : RenderDot(l->pipeline)).c_str(), stdout);
  }
  return kExitOk;
}

}  // namespace

int RunCli(int argc, char** argv, const std::atomic<bool>* cancel) {
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(CommandUsage("").c_str(), stdout);
    return kExitOk;
  }
  if (argc >= 2 && std::strcmp(argv[1], "--version") == 0) {
    std::fputs(VersionText().c_str(), stdout);
    return kExitOk;
  }
  if (argc >= 2 && std::strcmp(argv[1], "serve") == 0) return RunServe(argc - 2, argv + 2, cancel);
  Result<Args> parsed = ParseArgs(argc, argv);
  if (!parsed.ok()) return Usage(parsed.status().message(), argc >= 2 ? argv[1] : "");
  const Args& args = *parsed;
  const std::string& cmd = args.command;
  if (cmd == "help") {
    std::fputs(CommandUsage(args.positional.empty() ? "" : args.positional[0]).c_str(), stdout);
    return kExitOk;
  }
  if (args.help) {
    std::fputs(CommandUsage(cmd).c_str(), stdout);
    return kExitOk;
  }
  if (cmd == "stages") return PrintStages(args);
  if (cmd == "init") return Init(args);
  if (args.positional.empty()) return Usage(cmd + ": which pipeline file?", cmd);
  if (cmd == "run") return Run(args, cancel);
  if (cmd == "worker") return Worker(args, cancel);
  if (cmd == "status") return Status_(args);
  if (cmd == "clean") return Clean(args);
  return LoadAndShow(args);
}

}  // namespace medpipe
