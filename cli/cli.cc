#include "cli/cli.h"

#include <unistd.h>

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "graph/render.h"
#include "runner/planner.h"
#include "runner/runner.h"
#include "serve/server.h"
#include "stages/registry.h"
#include "util/strings.h"

namespace medpipe {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;

const char* kUsage = R"(usage: medpipe <command> [options]

commands:
  run FILE [--from ID] [--until ID] [--only ID] [--force ID]... [--dry-run] [--threads N]
                     run the pipeline, skipping what is done
  status FILE        each stage: done, stale (and why), never run, incomplete, failed
  graph FILE [--format dot|mermaid]
                     print the stage DAG
  validate FILE      check the pipeline file and exit
  clean FILE [ID...] remove the checkpoints and outputs of the stages (all by default)
  stages             list every stage kind with its params
  serve FILE --stage ID [--host H] [--port P] [--max-upload-mb N] [--max-files N] [--output DIR]
                     serve classify stage ID over HTTP (POST /predict_batch, a web page at /)

exit codes: 0 done, 1 a stage failed, 2 usage or config error, 130 interrupted
)";

int Usage(const std::string& message) {
  if (!message.empty()) std::fprintf(stderr, "medpipe: %s\n", message.c_str());
  std::fputs(kUsage, stderr);
  return kExitUsage;
}

struct Args {
  std::string command;
  std::vector<std::string> positional;
  RunOptions run;
  std::string format = "dot";
};

Result<Args> ParseArgs(int argc, char** argv) {
  Args a;
  if (argc < 2) return Status::Config("no command");
  a.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> Result<std::string> {
      if (i + 1 >= argc) return Status::Config(std::string(flag) + " needs a value");
      return std::string(argv[++i]);
    };
    if (arg == "--from") {
      MEDPIPE_ASSIGN_OR_RETURN(a.run.from, value("--from"));
    } else if (arg == "--until") {
      MEDPIPE_ASSIGN_OR_RETURN(a.run.until, value("--until"));
    } else if (arg == "--only") {
      MEDPIPE_ASSIGN_OR_RETURN(a.run.only, value("--only"));
    } else if (arg == "--force") {
      MEDPIPE_ASSIGN_OR_RETURN(std::string id, value("--force"));
      a.run.force.push_back(id);
    } else if (arg == "--dry-run" || arg == "-n") {
      a.run.dry_run = true;
    } else if (arg == "--threads" || arg == "-j") {
      MEDPIPE_ASSIGN_OR_RETURN(std::string n, value("--threads"));
      char* end = nullptr;
      long v = std::strtol(n.c_str(), &end, 10);
      if (*end != '\0' || v < 1 || v > 1024) return Status::Config("--threads: expected a number from 1 to 1024");
      a.run.threads = static_cast<int>(v);
    } else if (arg == "--format") {
      MEDPIPE_ASSIGN_OR_RETURN(a.format, value("--format"));
      if (a.format != "dot" && a.format != "mermaid") return Status::Config("--format: dot or mermaid");
    } else if (arg.size() > 1 && arg[0] == '-') {
      return Status::Config("unknown option " + arg);
    } else {
      a.positional.push_back(arg);
    }
  }
  if (!a.run.only.empty() && (!a.run.from.empty() || !a.run.until.empty())) {
    return Status::Config("--only runs one stage; it cannot be combined with --from or --until");
  }
  return a;
}

int PrintStages() {
  for (const StageKind* k : BuiltinRegistry().All()) {
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

Result<Loaded> Load(const Args& a) {
  if (a.positional.empty()) return Status::Config("which pipeline file?");
  Loaded l;
  MEDPIPE_ASSIGN_OR_RETURN(l.pipeline, LoadPipeline(a.positional[0], BuiltinRegistry()));
  MEDPIPE_ASSIGN_OR_RETURN(l.stages, BuiltinRegistry().Instantiate(l.pipeline));
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

int Run(const Args& args, const std::atomic<bool>* cancel) {
  Result<Loaded> l = Load(args);
  if (!l.ok()) {
    std::fprintf(stderr, "%s\n", l.status().message().c_str());
    return kExitUsage;
  }
  RunOptions o = args.run;
  o.cancel = cancel;
  o.live_progress = ::isatty(STDERR_FILENO);
  Result<RunSummary> s = RunPipeline(l->pipeline, l->stages, o);
  if (!s.ok()) {
    std::fprintf(stderr, "medpipe: %s\n", s.status().message().c_str());
    return kExitUsage;
  }
  if (!o.dry_run) {
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

int Status_(const Args& args) {
  Result<Loaded> l = Load(args);
  if (!l.ok()) {
    std::fprintf(stderr, "%s\n", l.status().message().c_str());
    return kExitUsage;
  }
  std::vector<StageReport> reports = InspectPipeline(l->pipeline, l->stages);
  std::printf("pipeline %s, workdir %s\n", l->pipeline.name.c_str(), l->pipeline.workdir.c_str());
  std::printf("%-20s %-10s %-11s %-22s %-10s %s\n", "STAGE", "KIND", "STATE", "ITEMS", "TIME", "WHY");
  for (size_t i = 0; i < reports.size(); ++i) {
    const StageReport& r = reports[i];
    std::string items = "-", time = "-";
    if (r.commit) {
      if (r.commit->items.total > 0) {
        items = fmt::format("{} ({} failed)", r.commit->items.total, r.commit->items.failed);
      }
      time = HumanDuration(r.commit->seconds);
    } else if (r.journaled_items > 0) {
      items = fmt::format("{} journaled", r.journaled_items);
    }
    std::printf("%-20s %-10s %-11s %-22s %-10s %s\n", l->pipeline.stages[i].id.c_str(),
                l->pipeline.stages[i].kind.c_str(), r.state.c_str(), items.c_str(), time.c_str(), r.reason.c_str());
  }
  return kExitOk;
}

int Clean(const Args& args) {
  Result<Loaded> l = Load(args);
  if (!l.ok()) {
    std::fprintf(stderr, "%s\n", l.status().message().c_str());
    return kExitUsage;
  }
  std::vector<std::string> ids(args.positional.begin() + 1, args.positional.end());
  if (ids.empty()) {
    for (const auto& s : l->pipeline.stages) ids.push_back(s.id);
  }
  Status s = CleanStages(l->pipeline, ids);
  if (!s.ok()) {
    std::fprintf(stderr, "medpipe: %s\n", s.message().c_str());
    return s.code() == Status::Code::kConfig ? kExitUsage : 1;
  }
  for (const auto& id : ids) std::printf("removed %s\n", (l->pipeline.workdir / id).c_str());
  return kExitOk;
}

}  // namespace

int RunCli(int argc, char** argv, const std::atomic<bool>* cancel) {
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
                    std::strcmp(argv[1], "help") == 0)) {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  if (argc >= 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("medpipe 0.1.0\n");
    return kExitOk;
  }
  if (argc >= 2 && std::strcmp(argv[1], "serve") == 0) return RunServe(argc - 2, argv + 2, cancel);
  Result<Args> args = ParseArgs(argc, argv);
  if (!args.ok()) return Usage(args.status().message());
  const std::string& cmd = args->command;
  if (cmd == "stages") return PrintStages();
  if (cmd == "run") return Run(*args, cancel);
  if (cmd == "status") return Status_(*args);
  if (cmd == "clean") return Clean(*args);
  if (cmd == "validate" || cmd == "graph") {
    Result<Loaded> l = Load(*args);
    if (!l.ok()) {
      std::fprintf(stderr, "%s\n", l.status().message().c_str());
      return kExitUsage;
    }
    if (cmd == "validate") {
      std::printf("%s: ok (%zu stages)\n", l->pipeline.file.c_str(), l->pipeline.stages.size());
    } else {
      std::fputs((args->format == "mermaid" ? RenderMermaid(l->pipeline) : RenderDot(l->pipeline)).c_str(), stdout);
    }
    return kExitOk;
  }
  return Usage("unknown command '" + cmd + "'");
}

}  // namespace medpipe
