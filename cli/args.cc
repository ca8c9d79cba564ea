#include "cli/args.h"

#include <fmt/format.h>

#include <cstdlib>
#include <map>
#include <set>

#include "util/strings.h"

namespace medpipe {

namespace {

struct CommandSpec {
  std::string synopsis;  // after "medpipe "
  std::string help;      // what it does, then its flags
  std::set<std::string> flags;
  std::set<std::string> valued;  // the flags among `flags` that take a value
};

const std::map<std::string, CommandSpec>& Commands() {
  static const std::map<std::string, CommandSpec> commands = {
      {"run",
       {"run FILE [--from ID] [--until ID] [--only ID] [--force ID]... [-n] [-j N] [--strict] [--executor local|slurm] "
        "[--set P=V]...",
        "run the pipeline, skipping what is done\n"
        "  --from ID        rerun ID and everything downstream\n"
        "  --until ID       run ID and what it needs, no more\n"
        "  --only ID        run exactly ID on its inputs' checkpoints\n"
        "  --force ID       rerun ID even if done (repeatable)\n"
        "  -n, --dry-run    print the plan on stdout; touch nothing\n"
        "  -j, --threads N  bound the whole run to N threads (default: every core)\n"
        "  --strict         any per-item problem fails its stage (also `strict: true`)\n"
        "  --set P=V        override a value of FILE, e.g. split.params.seed=3 (repeatable)\n"
        "  --executor E     local (default), or slurm: per-item stages as Slurm job arrays over the shared\n"
        "                   workdir (also `executor: {type: slurm}`; see docs/scale-out.md)\n",
        {"--from", "--until", "--only", "--force", "--dry-run", "-n", "--threads", "-j", "--strict", "--set",
         "--executor", "--help", "-h"},
        {"--from", "--until", "--only", "--force", "--threads", "-j", "--set", "--executor"}}},
      {"worker",
       {"worker FILE --stage ID --call K --shard I [-j N] [--set P=V]...",
        "run one shard of a stage's items: what every Slurm array task of `run --executor slurm` runs\n"
        "  --stage ID       the stage\n"
        "  --call K         its RunItems pass, counted from 0\n"
        "  --shard I        the shard of that pass's plan (the array task id)\n"
        "  -j, --threads N  threads (default: SLURM_CPUS_PER_TASK, else 1 inside a Slurm job)\n",
        {"--stage", "--call", "--shard", "--threads", "-j", "--set", "--help", "-h"},
        {"--stage", "--call", "--shard", "--threads", "-j", "--set"}}},
      {"status",
       {"status FILE [--json] [--set P=V]...",
        "each stage: done, stale (and why), running, never run, incomplete, failed;\n"
        "its items, problems and time; orphan folders in the workdir\n"
        "  --json           one JSON document on stdout\n",
        {"--json", "--set", "--help", "-h"},
        {"--set"}}},
      {"graph",
       {"graph FILE [--format dot|mermaid] [--set P=V]...", "print the stage DAG\n",
        {"--format", "--set", "--help", "-h"},
        {"--format", "--set"}}},
      {"validate",
       {"validate FILE [--set P=V]...", "check the pipeline file (and its overrides) and exit\n",
        {"--set", "--help", "-h"},
        {"--set"}}},
      {"clean",
       {"clean FILE [ID...] [-n] [--cascade|--force] [--orphans]",
        "remove the checkpoints and outputs of the stages (all by default)\n"
        "  -n, --dry-run    only print what would be removed and its size\n"
        "  --cascade        also clean the stages whose outputs link into them\n"
        "  --force          clean them even though other stages link into them\n"
        "  --orphans        remove the workdir folders no stage of FILE owns\n",
        {"--dry-run", "-n", "--cascade", "--force", "--orphans", "--set", "--help", "-h"},
        {"--set"}}},
      {"stages",
       {"stages [KIND] [--names]", "list every stage kind (or one) with its params\n"
                                   "  --names          only the kind names, one per line\n",
        {"--names", "--help", "-h"},
        {}}},
      {"init",
       {"init [--template NAME] DIR",
        "write a commented pipeline file to start from into DIR/pipeline.yaml\n"
        "  --template NAME  minimal (default), hemorrhage, cxr, ctprep or echo; cxr also writes\n"
        "                   starter radiographs and an UNTRAINED starter model (random weights)\n",
        {"--template", "--help", "-h"},
        {"--template"}}},
      {"serve",
       {"serve FILE --stage ID [--host H] [--port P] [--max-upload-mb N] [--max-files N] [--output DIR] [--threads N]",
        "serve classify stage ID over HTTP (POST /predict_batch, a web page at /)\n"
        "  --stage ID       the classify stage whose model and decision params to serve\n"
        "  --host H         address to listen on (default 127.0.0.1)\n"
        "  --port P         port (default 8080)\n"
        "  --max-upload-mb N, --max-files N   request limits (413 beyond them)\n"
        "  --output DIR     where uploads are saved by risk level\n",
        {}, {}}},
      {"help", {"help [COMMAND]", "print the usage of medpipe or of one command\n", {}, {}}},
  };
  return commands;
}

}  // namespace

std::vector<std::string> CommandNames() {
  std::vector<std::string> out;
  for (const auto& [name, spec] : Commands()) out.push_back(name);
  return out;
}

std::string CommandUsage(const std::string& command) {
  auto it = Commands().find(command);
  if (it != Commands().end()) return "usage: medpipe " + it->second.synopsis + "\n\n" + it->second.help;
  std::string out = "usage: medpipe <command> [options]   (medpipe help COMMAND for one)\n\ncommands:\n";
  for (const auto& [name, spec] : Commands()) {
    std::string first_line = spec.help.substr(0, spec.help.find('\n'));
    out += fmt::format("  {:<10} {}\n", name, first_line);
  }
  out += "\n  --version        medpipe's version and its libraries'\n";
  out += "\nexit codes: 0 done, 1 a stage failed, 2 usage or config error, 130 interrupted\n";
  return out;
}

Result<Args> ParseArgs(int argc, char** argv) {
  Args a;
  if (argc < 2) return Status::Config("no command");
  a.command = argv[1];
  auto spec = Commands().find(a.command);
  if (spec == Commands().end()) {
    std::string hint = ClosestName(a.command, CommandNames());
    return Status::Config(fmt::format("unknown command '{}'{}", a.command,
                                      hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
  }
  // GNU style: "--name=value" and "-jN" become "--name value" and "-j N".
  std::vector<std::string> args;
  bool options_done = false;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (options_done || arg.size() < 2 || arg[0] != '-') {
      args.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      args.push_back(arg);
      continue;
    }
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      args.push_back(arg.substr(0, eq));
      args.push_back(arg.substr(eq + 1));
    } else if (arg[1] != '-' && arg.size() > 2 && spec->second.valued.count(arg.substr(0, 2))) {
      args.push_back(arg.substr(0, 2));
      args.push_back(arg.substr(2));
    } else {
      args.push_back(arg);
    }
  }

  options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_done || arg.size() < 2 || arg[0] != '-') {
      a.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    if (!spec->second.flags.count(arg)) {
      std::vector<std::string> known(spec->second.flags.begin(), spec->second.flags.end());
      std::string hint = ClosestName(arg, known);
      return Status::Config(fmt::format("{} does not take {}{}", a.command, arg,
                                        hint.empty() ? "" : fmt::format(" (did you mean {}?)", hint)));
    }
    std::string value;
    if (spec->second.valued.count(arg)) {
      if (i + 1 >= args.size()) return Status::Config(arg + " needs a value");
      value = args[++i];
    }
    if (arg == "--help" || arg == "-h") {
      a.help = true;
    } else if (arg == "--from") {
      a.run.from = value;
    } else if (arg == "--until") {
      a.run.until = value;
    } else if (arg == "--only") {
      a.run.only = value;
    } else if (arg == "--force") {
      if (a.command == "clean") {
        a.force_clean = true;
      } else {
        a.run.force.push_back(value);
      }
    } else if (arg == "--dry-run" || arg == "-n") {
      a.run.dry_run = true;
    } else if (arg == "--threads" || arg == "-j") {
      char* end = nullptr;
      long v = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || v < 1 || v > 1024) {
        return Status::Config(arg + ": expected a number from 1 to 1024, not '" + value + "'");
      }
      a.run.threads = static_cast<int>(v);
    } else if (arg == "--strict") {
      a.run.strict = true;
    } else if (arg == "--set") {
      a.overrides.push_back(value);
    } else if (arg == "--format") {
      if (value != "dot" && value != "mermaid") return Status::Config("--format: dot or mermaid");
      a.format = value;
    } else if (arg == "--json") {
      a.json = true;
    } else if (arg == "--names") {
      a.names = true;
    } else if (arg == "--cascade") {
      a.cascade = true;
    } else if (arg == "--orphans") {
      a.orphans = true;
    } else if (arg == "--template") {
      a.template_name = value;
    } else if (arg == "--executor") {
      if (value != "local" && value != "slurm") return Status::Config("--executor: local or slurm, not '" + value + "'");
      a.run.executor = value;
    } else if (arg == "--stage") {
      a.stage = value;
    } else if (arg == "--call" || arg == "--shard") {
      char* end = nullptr;
      long v = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || v < 0 || v > 1000000) {
        return Status::Config(arg + ": expected a number from 0, not '" + value + "'");
      }
      (arg == "--call" ? a.call : a.shard) = static_cast<int>(v);
    }
  }
  if (a.command == "worker" && !a.help && (a.stage.empty() || a.call < 0 || a.shard < 0)) {
    return Status::Config("worker needs --stage, --call and --shard");
  }
  if (!a.run.only.empty() && (!a.run.from.empty() || !a.run.until.empty())) {
    return Status::Config("--only runs one stage; it cannot be combined with --from or --until");
  }
  return a;
}

}  // namespace medpipe
