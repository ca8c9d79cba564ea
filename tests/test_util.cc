#include "tests/test_util.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "dataset/coco_io.h"
#include "stages/link_images.h"
#include "util/hash.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

extern char** environ;

namespace medpipe::testing {

TempDir::TempDir() {
  std::string tmpl = (fs::path(::testing::TempDir()) / "medpipe-test-XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = fs::path(buf.data());
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void WriteText(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> out;
  for (const auto& a : args) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

// The process environment with `extra` ("K=V") replacing same-named entries
// (appending alone would not do: getenv returns the first match).
std::vector<std::string> Environment(const std::vector<std::string>& extra) {
  auto name = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    bool replaced = std::any_of(extra.begin(), extra.end(), [&](const std::string& x) { return name(x) == name(kv); });
    if (!replaced) env.push_back(std::move(kv));
  }
  for (const auto& x : extra) env.push_back(x);
  return env;
}

pid_t Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, const std::string& out_path,
            const std::string& err_path) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> full_env = Environment(env);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0].c_str(), &fa, nullptr, Argv(argv).data(), Argv(full_env).data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + " failed");
  return pid;
}

}  // namespace

int WaitProcess(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

ProcessResult RunProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  TempDir tmp;
  std::string out = (tmp / "out").string(), err = (tmp / "err").string();
  pid_t pid = Spawn(argv, env, out, err);
  ProcessResult r;
  r.exit_code = WaitProcess(pid);
  r.out = ReadText(out);
  r.err = ReadText(err);
  return r;
}

pid_t SpawnProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  return Spawn(argv, env, "/dev/null", "/dev/null");
}

std::string MedpipeBinary() { return MEDPIPE_BINARY; }

ProcessResult RunMedpipe(std::vector<std::string> args, const std::vector<std::string>& env) {
  args.insert(args.begin(), MEDPIPE_BINARY);
  return RunProcess(args, env);
}

void MakeExampleData(const fs::path& dir, int patients, int slices, int size) {
  ProcessResult r = RunProcess({MEDPIPE_EXAMPLEGEN, "--out", dir.string(), "--patients", std::to_string(patients),
                                "--slices", std::to_string(slices), "--size", std::to_string(size)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

std::map<std::string, std::string> Snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
    if (it->path().filename() == kMetaDir) {
      it.disable_recursion_pending();
      continue;
    }
    std::string rel = it->path().lexically_relative(dir).string();
    if (it->is_symlink()) {
      out[rel] = "-> " + fs::read_symlink(it->path()).string();
    } else if (it->is_regular_file()) {
      out[rel] = ReadText(it->path());
    }
  }
  return out;
}

size_t JournalLines(const fs::path& stage_dir) {
  std::string text = ReadText(stage_dir / kMetaDir / "items.jsonl");
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

namespace {

class EmitStage : public Stage {
 public:
  explicit EmitStage(fs::path coco) : coco_(std::move(coco)) {}
  Result<std::string> ExternalFingerprint() const override {
    MEDPIPE_ASSIGN_OR_RETURN(std::string text, ReadFile(coco_));
    return HashBytes(text);
  }
  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset ds, ReadCoco(coco_));
    std::vector<LinkSpec> links;
    for (const auto& img : ds.images) links.push_back(LinkSpec{img.file_name, coco_.parent_path() / img.file_name});
    MEDPIPE_RETURN_IF_ERROR(LinkImages(ctx, links).status());
    return ctx.WriteDataset(ds);
  }

 private:
  fs::path coco_;
};

}  // namespace

const Registry& TestKinds() {
  static const Registry* r = [] {
    auto* reg = new Registry(BuiltinRegistry());
    KindSpec emit{"emit", 1, "test: a dataset from a COCO file", {}, 0, 0};
    emit.params = {{"coco", ParamType::kPath, "", true, "the COCO file", {}}};
    reg->Add({emit, [](const StageDecl& d, uint64_t) -> Result<std::unique_ptr<Stage>> {
                return std::unique_ptr<Stage>(new EmitStage(d.params.GetString("coco")));
              }});
    return reg;
  }();
  return *r;
}

const StageOutcome& RunResult::Of(const std::string& id) const {
  int i = pipeline.Find(id);
  if (i < 0) throw std::runtime_error("no stage " + id);
  return summary.outcomes[static_cast<size_t>(i)];
}

RunResult RunYaml(const Registry& registry, const fs::path& dir, const std::string& yaml, RunOptions options) {
  fs::path file = dir / "pipeline.yaml";
  WriteText(file, yaml);
  Result<Pipeline> p = LoadPipeline(file.string(), registry);
  if (!p.ok()) throw std::runtime_error(p.status().message());
  Result<std::vector<std::unique_ptr<Stage>>> stages = registry.Instantiate(*p);
  if (!stages.ok()) throw std::runtime_error(stages.status().message());
  Result<RunSummary> s = RunPipeline(*p, *stages, options);
  if (!s.ok()) throw std::runtime_error(s.status().message());
  return RunResult{*s, *p};
}

bool WaitFor(double timeout_s, const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

std::string SnapshotDiff(const std::map<std::string, std::string>& a, const std::map<std::string, std::string>& b) {
  std::vector<std::string> out;
  for (const auto& [path, bytes] : a) {
    auto it = b.find(path);
    if (it == b.end()) {
      out.push_back("only in the first: " + path);
    } else if (it->second != bytes) {
      out.push_back("differs: " + path);
    }
  }
  for (const auto& [path, bytes] : b) {
    if (!a.count(path)) out.push_back("only in the second: " + path);
  }
  std::string text;
  for (size_t i = 0; i < out.size() && i < 10; ++i) text += out[i] + "\n";
  if (out.size() > 10) text += "and " + std::to_string(out.size() - 10) + " more\n";
  return text;
}

}  // namespace medpipe::testing
