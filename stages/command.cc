// command: the user's own step (a shell command line, an argv, a script) as a
// stage of the DAG, fingerprinted, checkpointed and resumable like the
// built-in ones. The full contract is in docs/pipeline-format.md ("command").
//
// Whole-stage mode (no `foreach`): the command runs once, in the stage's
// folder (${out}), which starts empty; every file it leaves there is an
// output, hashed and recorded for the commit. A non-zero exit, a signal or
// the `timeout` fails the stage with the last lines of its stderr; the full
// output is in <out>/.medpipe/command.log.
//
// Per-item mode (`foreach`): the command runs once per file of an input
// folder matching a glob, or per row of a CSV, each in its own empty
// ${item_out} folder, through ctx.RunItems: journaled, resumed after a kill,
// sent to Slurm array tasks by the Slurm executor. A failing item is a
// per-item problem.
//
// After the command, the outputs are vetted: a symlink leading out of ${out}
// is refused (a problem, the link is not recorded), and a file the command
// wrote into its inputs' folders or the workdir's top level is a problem.
#include <fmt/format.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cstdlib>
#include <semaphore>

#include "stages/command_spec.h"
#include "stages/registry.h"
#include "util/hash.h"
#include "util/subprocess.h"

namespace medpipe {
namespace {

// Keep this much of each of a child's streams in memory (the rest goes to
// the log): enough for the last lines of a traceback.
constexpr size_t kKeepBytes = 64 * 1024;
constexpr size_t kTailLines = 8;

// Lexically inside `root` (both absolute and normal).
bool Inside(const fs::path& path, const fs::path& root) {
  std::string p = path.lexically_normal().string(), r = root.lexically_normal().string();
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  return p == r || p.rfind(r + "/", 0) == 0;
}

// Every file and symlink under `root` (not following links), relative to it,
// sorted, skipping the top-level checkpoint folder.
Result<std::vector<std::string>> ListTree(const fs::path& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::string rel = it->path().lexically_relative(root).string();
    if (it.depth() == 0 && rel == kMetaDir) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_symlink(ec) || !it->is_directory(ec)) out.push_back(rel);
  }
  if (ec) return Status::IOError("cannot list " + root.string() + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

// Empties `dir` (creating it when missing), keeping its checkpoint folder.
Status EmptyFolder(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create " + dir.string() + ": " + ec.message());
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (it->path().filename() == kMetaDir) continue;
    std::error_code rm;
    fs::remove_all(it->path(), rm);
    if (rm) return Status::IOError("cannot empty " + dir.string() + ": " + rm.message());
  }
  if (ec) return Status::IOError("cannot list " + dir.string() + ": " + ec.message());
  return Status::OK();
}

// Why the symlink <stage>/<rel> may not be an output, or "" when it may: it
// must stay inside the stage's folder.
std::string EscapingLink(const fs::path& stage, const std::string& rel) {
  fs::path link = stage / rel;
  if (!StatPath(link).is_symlink) return "";
  std::error_code ec;
  fs::path target = fs::read_symlink(link, ec);
  if (ec) return "unreadable symlink";
  fs::path reached = target.is_absolute() ? target : link.parent_path() / target;
  if (Inside(reached, stage)) return "";
  return fmt::format("symlink to {} leads out of the stage's folder (an output must be a file or a link inside "
                     "${{out}}; copy what you need)",
                     target.string());
}

// The size and mtime of every file in the folders a command must not write:
// its inputs' folders and the workdir's top level. Inputs are committed and
// finished before this stage starts, so any change is the command's.
using Listing = std::map<std::string, std::pair<uint64_t, int64_t>>;
Listing ForeignListing(const StageContext& ctx) {
  Listing out;
  std::error_code ec;
  auto add = [&](const fs::path& path, const std::string& name) {
    FileStat st = StatPath(path);
    if (st.exists && !st.is_dir) out[name] = {st.size, st.mtime_ns};
  };
  const fs::path workdir = ctx.dir().parent_path();
  for (auto it = fs::directory_iterator(workdir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    add(it->path(), it->path().filename().string());
  }
  for (const auto& in : ctx.inputs()) {
    std::error_code e2;
    for (auto it = fs::recursive_directory_iterator(in.dir, e2); !e2 && it != fs::recursive_directory_iterator();
         it.increment(e2)) {
      std::string rel = it->path().lexically_relative(in.dir).string();
      if (it.depth() == 0 && rel == kMetaDir) {
        it.disable_recursion_pending();
        continue;
      }
      add(it->path(), in.id + "/" + rel);
    }
  }
  return out;
}

void ReportForeignWrites(StageContext& ctx, const Listing& before, const Listing& after) {
  const std::string workdir = ctx.dir().parent_path().string();
  for (const auto& [name, st] : after) {
    auto it = before.find(name);
    if (it == before.end() || it->second != st) {
      ctx.Problem(workdir + "/" + name,
                  fmt::format("the command {} a file outside ${{out}}", it == before.end() ? "created" : "changed"),
                  "wrote outside ${out}");
    }
  }
  for (const auto& [name, st] : before) {
    if (!after.count(name)) {
      ctx.Problem(workdir + "/" + name, "the command removed a file outside ${out}", "wrote outside ${out}");
    }
  }
}

std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// The console's view of a failed command: how it ended and its last lines.
std::string Ending(const ProcessResult& r, double timeout_s) {
  std::string how = r.timed_out ? fmt::format("timed out after {} s", timeout_s)
                    : r.signal ? fmt::format("was killed by signal {}", r.signal)
                               : fmt::format("exited with status {}", r.exit_code);
  std::string tail = LastLines(r.err.empty() ? r.out : r.err, kTailLines);
  return tail.empty() ? how : how + "; it ended with:\n  | " + ReplaceAll(tail, "\n", "\n  | ");
}

class CommandStage : public Stage {
 public:
  explicit CommandStage(CommandSpec spec) : spec_(std::move(spec)) {}

  Result<std::string> ExternalFingerprint() const override { return spec_.External(); }

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(std::string external, spec_.External());
    const fs::path meta = MetaDir(ctx.dir());
    MEDPIPE_RETURN_IF_ERROR(ctx.disk()->CreateDirs(meta));
    const fs::path params_json = meta / "params.json";
    MEDPIPE_RETURN_IF_ERROR(ctx.disk()->WriteAtomic(params_json, spec_.ParamsJson(), /*sync=*/false));
    CommandEnv base;
    base.out = ctx.dir();
    for (const auto& in : ctx.inputs()) base.inputs[in.id] = in.dir;
    base.params_json = params_json;
    base.seed = ctx.seed();
    base.threads = tbb::this_task_arena::max_concurrency();
    base.cancel = ctx.cancel_flag();
    const Listing before = ForeignListing(ctx);
    Status s = spec_.foreach.kind == Foreach::kNone ? RunWhole(ctx, base) : RunPerItem(ctx, base, external);
    if (s.ok() || s.code() == Status::Code::kFailed) ReportForeignWrites(ctx, before, ForeignListing(ctx));
    return s;
  }

 private:
  Status RunWhole(StageContext& ctx, const CommandEnv& base) const {
    // It starts from an empty folder, so its outputs are exactly what this
    // run wrote, whatever an earlier attempt left.
    MEDPIPE_RETURN_IF_ERROR(EmptyFolder(ctx.dir()));
    const fs::path log = MetaDir(ctx.dir()) / "command.log";
    MEDPIPE_RETURN_IF_ERROR(ctx.disk()->WriteAtomic(log, "", /*sync=*/false));
    ProcessOptions options;
    std::vector<std::string> env = spec_.Environment(base);
    options.env = &env;
    options.cwd = ctx.dir();
    options.timeout_s = spec_.timeout_s;
    options.log = log;
    options.keep_bytes = kKeepBytes;
    options.cancel = base.cancel;
    MEDPIPE_ASSIGN_OR_RETURN(ProcessResult r, RunProcess(spec_.Argv(base), options));
    if (r.timed_out || r.exit_code != 0) {
      return Status::Failed(fmt::format("the command {} (full output: {})", Ending(r, spec_.timeout_s), log.string()));
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<std::string> files, ListTree(ctx.dir()));
    int64_t adopted = 0;
    for (const auto& rel : files) {
      if (rel == "report.json") {
        ctx.Problem(rel, "report.json is medpipe's record of the stage's problems: name your file otherwise",
                    "reserved name");
        continue;
      }
      if (std::string why = EscapingLink(ctx.dir(), rel); !why.empty()) {
        ctx.Problem(rel, why, "unsafe output");
        continue;
      }
      MEDPIPE_RETURN_IF_ERROR(ctx.AdoptOutput(rel));
      ++adopted;
    }
    ctx.Count("output_files", adopted);
    return Status::OK();
  }

  Status RunPerItem(StageContext& ctx, const CommandEnv& base, const std::string& external) const {
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<CommandItem> items, ListItems(spec_.foreach, ctx));
    const std::string command_fp = Hasher()
                                       .Field("command-item-v1")
                                       .Field(spec_.Fingerprint())
                                       .Field(external)
                                       .Field(std::to_string(ctx.seed()))
                                       .HexDigest();
    std::vector<ItemTask> tasks;
    for (const auto& item : items) {
      tasks.push_back(ItemTask{item.key, Hasher().Field(command_fp).Field(item.key).Field(item.content).HexDigest()});
    }
    // Items run in parallel on the run's threads; each holds
    // `threads_per_item` of them, so the budget bounds processes too.
    const int slots = std::max<int>(1, base.threads / std::max<int>(1, spec_.threads_per_item));
    std::counting_semaphore<1 << 20> slot(slots);
    const fs::path logs = MetaDir(ctx.dir()) / "logs";
    auto work = [&](size_t i, ItemOutput& out) -> Result<std::string> {
      const CommandItem& item = items[i];
      if (!item.problem.empty()) return Status::Invalid(item.problem);
      const fs::path item_out = ctx.dir() / item.folder;
      // A killed attempt may have left part of this item's files.
      MEDPIPE_RETURN_IF_ERROR(EmptyFolder(item_out));
      CommandEnv env_in = base;
      env_in.threads = spec_.threads_per_item;
      env_in.item = &item;
      env_in.item_out = item_out;
      std::vector<std::string> env = spec_.Environment(env_in);
      ProcessOptions options;
      options.env = &env;
      options.cwd = item_out;
      options.timeout_s = spec_.timeout_s;
      options.keep_bytes = kKeepBytes;
      options.cancel = base.cancel;
      slot.acquire();
      Result<ProcessResult> run = RunProcess(spec_.Argv(env_in), options);
      slot.release();
      if (!run.ok()) {
        // A missing program is the item's failure; the run goes on.
        if (run.status().code() == Status::Code::kNotFound) return Status::Invalid(run.status().message());
        return run.status();
      }
      const ProcessResult& r = *run;
      if (!r.out.empty() || !r.err.empty()) {
        std::string name = ReplaceAll(item.key, "/", "__") + ".log";
        MEDPIPE_RETURN_IF_ERROR(ctx.disk()->CreateDirs(logs));
        MEDPIPE_RETURN_IF_ERROR(ctx.disk()->WriteAtomic(
            logs / name, "--- stdout\n" + r.out + "--- stderr\n" + r.err, /*sync=*/false));
      }
      if (r.timed_out || r.exit_code != 0) return Status::Failed("the command " + Ending(r, spec_.timeout_s));
      MEDPIPE_ASSIGN_OR_RETURN(std::vector<std::string> files, ListTree(item_out));
      for (const auto& f : files) {
        std::string rel = item.folder + "/" + f;
        if (std::string why = EscapingLink(ctx.dir(), rel); !why.empty()) return Status::Invalid(rel + ": " + why);
        MEDPIPE_RETURN_IF_ERROR(out.Adopt(rel));
      }
      return std::to_string(files.size());
    };
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ItemResult> results, ctx.RunItems(tasks, work));
    int64_t files = 0;
    for (const auto& r : results) {
      if (r.ok) files += std::atoll(r.payload.c_str());
    }
    ctx.Count("output_files", files);
    return Status::OK();
  }

  const CommandSpec spec_;
};

Result<std::unique_ptr<Stage>> MakeCommand(const StageDecl& decl, uint64_t /*seed*/) {
  MEDPIPE_ASSIGN_OR_RETURN(CommandSpec spec, ParseCommandSpec(decl));
  return std::unique_ptr<Stage>(new CommandStage(std::move(spec)));
}

}  // namespace

void RegisterCommand(Registry* registry) {
  KindSpec spec = CommandKindSpec();
  registry->Add(StageKind{std::move(spec), MakeCommand});
}

}  // namespace medpipe
