// split + balance at the hemorrhage v4 workflow's size: a 15,000-image
// dataset (3,000 patients, 6 classes, a third negatives, Roboflow-style
// groups) split 80/15/5, then balanced to 50% negatives per split from a
// 325,000-image pool (213 FP, the rest TN, 10 slices per patient, some pool
// patients already in the dataset). Targets: each stage under a second and
// under 300 MB peak RSS.
//
// Each stage runs in its own process (this binary re-executed with --stage),
// and its peak RSS is read from /proc/self/status (VmHWM), the high-water
// mark of that process's own memory. Not getrusage's ru_maxrss: Linux
// carries it across execve, and posix_spawn's child starts on the parent's
// memory (vfork), so every child reported the setup's peak (396 MB) instead
// of its own. The dataset files are
// written directly; a bench-only "given" stage publishes them, its image
// links pointing at files that do not exist (split and balance never read
// pixels).
//
//   bench_split_balance [WORKDIR]
#include <fmt/format.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "dataset/coco_io.h"
#include "runner/runner.h"
#include "stages/link_images.h"
#include "stages/registry.h"

extern char** environ;

using namespace medpipe;
using Clock = std::chrono::steady_clock;

namespace {

class GivenStage : public Stage {
 public:
  explicit GivenStage(fs::path file) : file_(std::move(file)) {}
  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset ds, ReadCoco(file_));
    std::vector<LinkSpec> links;
    links.reserve(ds.images.size());
    for (const Image& img : ds.images) links.push_back(LinkSpec{img.file_name, file_.parent_path() / img.file_name});
    MEDPIPE_RETURN_IF_ERROR(LinkImages(ctx, links).status());
    return ctx.WriteDataset(ds);
  }

 private:
  fs::path file_;
};

Registry BenchRegistry() {
  Registry r;
  RegisterSplit(&r);
  RegisterBalance(&r);
  KindSpec spec;
  spec.name = "given";
  spec.min_inputs = spec.max_inputs = 0;
  spec.params = {{"file", ParamType::kPath, "", true, "COCO file", {}}};
  r.Add(StageKind{spec, [](const StageDecl& d, uint64_t) -> Result<std::unique_ptr<Stage>> {
                    return std::unique_ptr<Stage>(new GivenStage(d.params.GetString("file")));
                  }});
  return r;
}

void MakeData(const fs::path& dir) {
  std::mt19937_64 rng(11);
  auto below = [&](uint64_t n) { return static_cast<int64_t>(rng() % n); };
  Dataset ds;
  const char* names[] = {"EDH", "HC", "IPH", "IVH", "SAH", "SDH"};
  for (int c = 0; c < 6; ++c) ds.categories.push_back({c + 1, names[c], "hemorrhage"});
  for (int i = 0; i < 15000; ++i) {
    Image img;
    img.id = i + 1;
    img.patient_id = fmt::format("P{:05d}", i / 5);
    img.file_name = fmt::format("images/v3_{}_{}.png", img.patient_id, i % 5);
    img.width = img.height = 512;
    img.source = "v3";
    if (i % 50 < 4) img.attributes["group"] = fmt::format("rf{}", i / 50);  // joins two patients
    ds.images.push_back(img);
    if (below(3) == 0) continue;
    for (int64_t b = 0, n = 1 + below(2); b < n; ++b) {
      Annotation a;
      a.id = static_cast<int64_t>(ds.annotations.size()) + 1;
      a.image_id = img.id;
      a.category_id = 1 + (b == 0 ? (i / 5) % 6 : below(6));
      a.bbox[0] = 10, a.bbox[1] = 10, a.bbox[2] = a.bbox[3] = 20;
      a.area = 400;
      ds.annotations.push_back(a);
    }
  }
  Dataset pool;
  pool.images.reserve(325000);
  for (int i = 0; i < 325000; ++i) {
    Image img;
    img.id = i + 1;
    // 1 in 500 pool patients is a patient of the dataset.
    img.patient_id = (i / 10) % 500 == 0 ? fmt::format("P{:05d}", (i / 10) % 3000) : fmt::format("N{:06d}", i / 10);
    img.file_name = fmt::format("images/{}_{}.png", 520000000 + i / 10, i % 10);
    img.width = img.height = 512;
    img.source = "no_hemorrhage_feedback";
    img.labels = {i % 1525 == 0 ? "FP" : "TN"};  // 214 FP
    img.attributes["slice_thickness"] = 5.0;
    pool.images.push_back(std::move(img));
  }
  fs::create_directories(dir);
  DefaultDisk()->WriteAtomic(dir / "ds.json", SerializeCoco(ds), false);
  DefaultDisk()->WriteAtomic(dir / "pool.json", SerializeCoco(pool), false);
}

constexpr double kTargetMb = 300;

// This process's peak resident set in MB (VmHWM), or -1 if unreadable.
double PeakRssMb() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  double kb = -1;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "VmHWM:", 6) == 0) kb = std::strtod(line + 6, nullptr);
  }
  std::fclose(f);
  return kb < 0 ? -1 : kb / 1024.0;
}

const char* Verdict(double mb) { return mb >= 0 && mb < kTargetMb ? "under" : "OVER"; }

// Child: runs one selection of the pipeline and prints its time and peak RSS.
// "direct" runs the stage's Run() alone on a StageContext over the inputs'
// checkpoints (into <workdir>/direct-<id>), without the runner's planning,
// manifests and commit: the stage's own cost.
int RunStage(const fs::path& workdir, const std::string& how, const std::string& id) {
  Registry registry = BenchRegistry();
  Result<Pipeline> p = LoadPipeline((workdir / "pipeline.yaml").string(), registry);
  if (!p.ok()) return std::fprintf(stderr, "%s\n", p.status().ToString().c_str()), 2;
  auto stages = registry.Instantiate(*p);
  if (!stages.ok()) return std::fprintf(stderr, "%s\n", stages.status().ToString().c_str()), 2;
  if (how == "direct") {
    const int i = p->Find(id);
    std::vector<InputArtifact> inputs;
    for (const auto& in : p->stages[i].inputs) inputs.push_back(InputArtifact{in, p->workdir / in});
    fs::path out = workdir / ("direct-" + id);
    fs::remove_all(out);
    fs::create_directories(out);
    StageContext ctx(id, p->seed, out, inputs, DefaultDisk(), std::make_shared<Progress>(id), nullptr);
    struct rusage r0, r1;
    ::getrusage(RUSAGE_SELF, &r0);
    const double before = PeakRssMb();
    auto t0 = Clock::now();
    Status st = (*stages)[i]->Run(ctx);
    double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
    ::getrusage(RUSAGE_SELF, &r1);
    auto secs = [](const timeval& a, const timeval& b) { return (b.tv_sec - a.tv_sec) + (b.tv_usec - a.tv_usec) / 1e6; };
    const double peak = PeakRssMb();
    std::printf("%-8s Stage::Run alone          %6.3f s   peak RSS %6.1f MB, %s the %.0f MB target   "
                "(user %.3f s, sys %.3f s; peak before Run %.1f MB)\n",
                id.c_str(), wall, peak, Verdict(peak), kTargetMb, secs(r0.ru_utime, r1.ru_utime),
                secs(r0.ru_stime, r1.ru_stime), before);
    return 0;
  }
  RunOptions o;
  if (how == "until") o.until = id;
  if (how == "only") o.only = id;
  auto t0 = Clock::now();
  Result<RunSummary> s = RunPipeline(*p, *stages, o);
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!s.ok() || s->exit_code != 0) {
    std::fprintf(stderr, "run failed: %s\n", s.ok() ? "a stage failed" : s.status().ToString().c_str());
    return 1;
  }
  if (how == "only") {
    const double stage = s->outcomes[p->Find(id)].seconds;
    const double peak = PeakRssMb();
    std::printf("%-8s medpipe run --only       %6.3f s   peak RSS %6.1f MB, %s the %.0f MB target   "
                "(stage as timed by the runner %.3f s)\n",
                id.c_str(), wall, peak, Verdict(peak), kTargetMb, stage);
  }
  return 0;
}

int Spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) return 127;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--stage") return RunStage(argv[2], argv[3], argv[4]);
  fs::path dir = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "medpipe-bench-split-balance";
  // Setup (325,000 links for the pool's input stage) takes a minute; reuse it.
  const bool reuse = fs::exists(dir / "work/pool/.medpipe/commit.json");
  if (!reuse) fs::remove_all(dir);
  auto t0 = Clock::now();
  if (!reuse) MakeData(dir / "data");
  DefaultDisk()->WriteAtomic(dir / "pipeline.yaml",
                             "workdir: work\nseed: 7\nstages:\n"
                             "  - {id: ds, kind: given, params: {file: data/ds.json}}\n"
                             "  - {id: pool, kind: given, params: {file: data/pool.json}}\n"
                             "  - {id: split, kind: split, inputs: [ds]}\n"
                             "  - {id: balance, kind: balance, inputs: [split, pool], "
                             "params: {priority: [FP, TN], pool_prefix: no_hem_}}\n",
                             false);
  for (const char* id : {"ds", "pool"}) {
    if (int rc = Spawn({argv[0], "--stage", dir.string(), "until", id}); rc != 0) return rc;
  }
  std::printf("setup (data and input stages): %.1f s\n",
              std::chrono::duration<double>(Clock::now() - t0).count());
  std::printf("dataset 15,000 images, pool 325,000 images\n");
  for (const char* id : {"split", "balance"}) {
    for (const char* how : {"direct", "only"}) {
      if (int rc = Spawn({argv[0], "--stage", dir.string(), how, id}); rc != 0) return rc;
    }
  }
  Result<std::string> report = ReadFile(dir / "work/balance/balance.json");
  if (report.ok()) std::printf("%s", report->c_str());
  return 0;
}
