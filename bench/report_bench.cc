// report at scale: a 50,000-image dataset (5,000 patients, 6 classes, 30,000
// boxes, three splits, 512x512 PNG slices) with a gallery of 11 images per
// split and class (about 200 distinct thumbnails). Target: under 5 s on two threads once the
// thumbnails exist.
//
// Each measurement is its own process (this binary re-executed with
// --stage), so its peak RSS (getrusage ru_maxrss) is its own:
//   analyze            the peer: one pass over the same dataset.json
//   report, first run  thumbnails drawn (210 items)
//   report, rerun      a new title: the page is rebuilt, every thumbnail
//                      resumed from the journal (the target)
// and, in this process, the thumbnail peer: OpenCV decode + INTER_AREA
// resize + JPEG encode of the same 210 files, one thread, no boxes, no
// journal.
//
//   bench_report [WORKDIR] [--threads N]
#include <fmt/format.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <chrono>
#include <cstdio>
#include <random>

#include "dataset/coco_io.h"
#include "runner/checkpoint.h"
#include "runner/runner.h"
#include "stages/link_images.h"
#include "stages/registry.h"

extern char** environ;

using namespace medpipe;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kImages = 50000, kBoxes = 30000, kPixelFiles = 300;

// Publishes data/ds.json with every image a link to one of the data/pixels
// files (the report reads only the gallery's).
class GivenStage : public Stage {
 public:
  explicit GivenStage(fs::path file) : file_(std::move(file)) {}
  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset ds, ReadCoco(file_));
    std::vector<LinkSpec> links;
    links.reserve(ds.images.size());
    for (size_t i = 0; i < ds.images.size(); ++i) {
      links.push_back(
          LinkSpec{ds.images[i].file_name, file_.parent_path() / fmt::format("pixels/{}.png", i % kPixelFiles)});
    }
    MEDPIPE_RETURN_IF_ERROR(LinkImages(ctx, links).status());
    return ctx.WriteDataset(ds);
  }

 private:
  fs::path file_;
};

Registry BenchRegistry() {
  Registry r;
  RegisterAnalyze(&r);
  RegisterReport(&r);
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
  std::mt19937_64 rng(17);
  auto below = [&](uint64_t n) { return static_cast<int>(rng() % n); };
  fs::create_directories(dir / "pixels");
  for (int k = 0; k < kPixelFiles; ++k) {
    cv::Mat slice(512, 512, CV_8U, cv::Scalar(0));
    cv::ellipse(slice, {256, 256}, {200 + below(30), 230 + below(20)}, 0, 0, 360, cv::Scalar(230), 8);
    cv::ellipse(slice, {256, 256}, {190, 220}, 0, 0, 360, cv::Scalar(70 + below(30)), cv::FILLED);
    cv::circle(slice, {150 + below(200), 150 + below(200)}, 10 + below(30), cv::Scalar(140), cv::FILLED);
    std::vector<uint8_t> png;
    cv::imencode(".png", slice, png);
    DefaultDisk()->WriteAtomic(dir / fmt::format("pixels/{}.png", k), std::string(png.begin(), png.end()), false);
  }
  Dataset ds;
  const char* names[] = {"EDH", "HC", "IPH", "IVH", "SAH", "SDH"};
  for (int c = 0; c < 6; ++c) ds.categories.push_back({c + 1, names[c], "hemorrhage"});
  for (int i = 0; i < kImages; ++i) {
    Image img;
    img.id = i + 1;
    const int patient = i / 10;
    img.patient_id = fmt::format("P{:05d}", patient);
    img.file_name = fmt::format("images/{}_{:02d}.png", img.patient_id, i % 10);
    img.width = img.height = 512;
    img.source = patient % 3 == 0 ? "roboflow" : "v3";
    img.split = patient % 20 < 16 ? "train" : patient % 20 < 19 ? "valid" : "test";
    ds.images.push_back(std::move(img));
  }
  // 30,000 boxes: 20,000 images with one box, 5,000 with two.
  for (int i = 0, n = 0; n < kBoxes; ++i) {
    const int boxes = i < 20000 ? 1 : 2;
    for (int b = 0; b < boxes; ++b, ++n) {
      Annotation a;
      a.id = n + 1;
      a.image_id = 1 + (i * 7919) % kImages;  // spread over patients
      a.category_id = 1 + below(6);
      a.bbox[0] = 40 + below(300), a.bbox[1] = 40 + below(300);
      a.bbox[2] = 8 + below(120), a.bbox[3] = 8 + below(120);
      a.area = a.bbox[2] * a.bbox[3];
      ds.annotations.push_back(a);
    }
  }
  DefaultDisk()->WriteAtomic(dir / "ds.json", SerializeCoco(ds), false);
}

void WritePipeline(const fs::path& dir, const std::string& title) {
  DefaultDisk()->WriteAtomic(dir / "pipeline.yaml",
                             "workdir: work\nseed: 7\nstages:\n"
                             "  - {id: ds, kind: given, params: {file: data/ds.json}}\n"
                             "  - {id: analysis, kind: analyze, inputs: [ds]}\n"
                             "  - {id: report, kind: report, inputs: [ds, analysis], params: {title: '" +
                                 title + "', gallery_per_class: 11}}\n",
                             false);
}

// Child: runs one selection and prints wall time and peak RSS.
int RunStage(const fs::path& workdir, const std::string& how, const std::string& id, int threads,
             const std::string& label) {
  Registry registry = BenchRegistry();
  Result<Pipeline> p = LoadPipeline((workdir / "pipeline.yaml").string(), registry);
  if (!p.ok()) return std::fprintf(stderr, "%s\n", p.status().ToString().c_str()), 2;
  auto stages = registry.Instantiate(*p);
  if (!stages.ok()) return std::fprintf(stderr, "%s\n", stages.status().ToString().c_str()), 2;
  RunOptions o;
  o.threads = threads;
  if (how == "until") o.until = id;
  if (how == "only") o.only = id;
  auto t0 = Clock::now();
  Result<RunSummary> s = RunPipeline(*p, *stages, o);
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!s.ok() || s->exit_code != 0) {
    std::fprintf(stderr, "run failed: %s\n", s.ok() ? "a stage failed" : s.status().ToString().c_str());
    return 1;
  }
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  if (how != "until") {
    const StageOutcome& out = s->outcomes[p->Find(id)];
    std::printf("%-18s %6.3f s   peak RSS %6.1f MB   (stage %.3f s; items %lld done, %lld resumed)\n", label.c_str(),
                wall, ru.ru_maxrss / 1024.0, out.seconds, static_cast<long long>(out.items.done),
                static_cast<long long>(out.items.resumed));
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

double Seconds(const fs::path& stage_dir) {
  Result<CommitRecord> c = ReadCommit(stage_dir);
  return c.ok() ? c->seconds : -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 7 && std::string(argv[1]) == "--stage") {
    return RunStage(argv[2], argv[3], argv[4], std::atoi(argv[5]), argv[6]);
  }
  fs::path dir = fs::temp_directory_path() / "medpipe-bench-report";
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else {
      dir = argv[i];
    }
  }
  const std::string t = std::to_string(threads);
  const bool reuse = fs::exists(dir / "work/ds/.medpipe/commit.json");
  if (!reuse) fs::remove_all(dir);
  auto t0 = Clock::now();
  if (!reuse) MakeData(dir / "data");
  WritePipeline(dir, "first");
  if (int rc = Spawn({argv[0], "--stage", dir.string(), "until", "ds", t, "setup"}); rc != 0) return rc;
  fs::remove_all(dir / "work/report");  // the first report run draws every thumbnail
  std::printf("setup (data and input stage): %.1f s\n", std::chrono::duration<double>(Clock::now() - t0).count());
  std::printf("dataset %d images, %d boxes, 6 classes, 3 splits; %d threads\n", kImages, kBoxes, threads);

  if (int rc = Spawn({argv[0], "--stage", dir.string(), "only", "analysis", t, "analyze (peer)"}); rc != 0) return rc;
  // A plain run, not --only (which forces the stage and drops its journal):
  // everything upstream is up to date, the report is stale.
  if (int rc = Spawn({argv[0], "--stage", dir.string(), "run", "report", t, "report, first run"}); rc != 0) return rc;
  const double first = Seconds(dir / "work/report");
  WritePipeline(dir, "second");
  if (int rc = Spawn({argv[0], "--stage", dir.string(), "run", "report", t, "report, rerun"}); rc != 0) return rc;
  const double rerun = Seconds(dir / "work/report");
  const double analyze = Seconds(dir / "work/analysis");

  // The thumbnail peer: the same source files through plain OpenCV.
  std::vector<fs::path> thumbs;
  for (const auto& e : fs::directory_iterator(dir / "work/report/thumbs")) thumbs.push_back(e.path());
  size_t n = thumbs.size();
  auto p0 = Clock::now();
  for (size_t k = 0; k < n; ++k) {
    cv::Mat m = cv::imread((dir / fmt::format("data/pixels/{}.png", k % kPixelFiles)).string(), cv::IMREAD_UNCHANGED);
    cv::Mat small, bgr;
    cv::resize(m, small, {160, 160}, 0, 0, cv::INTER_AREA);
    cv::cvtColor(small, bgr, cv::COLOR_GRAY2BGR);
    std::vector<uint8_t> jpg;
    cv::imencode(".jpg", bgr, jpg, {cv::IMWRITE_JPEG_QUALITY, 85});
  }
  const double peer = std::chrono::duration<double>(Clock::now() - p0).count();
  const uintmax_t html = fs::file_size(dir / "work/report/report.html");
  std::printf("thumbnails: %zu; report.html %.1f KB\n", n, html / 1024.0);
  std::printf("report rerun / analyze (stage times): %.2fx\n", rerun / analyze);
  std::printf("thumbnail cost in the stage: %.2f ms each ((first - rerun) / thumbnails, %d threads); "
              "OpenCV decode+resize+encode alone: %.2f ms each (1 thread)\n",
              1000 * (first - rerun) / std::max<size_t>(1, n), threads, 1000 * peer / std::max<size_t>(1, n));
  std::printf("target: report rerun under 5 s: %s\n", rerun < 5 ? "yes" : "NO");
  return 0;
}
