// How fast a large COCO file loads: 1,000,000 images with one box each,
// written by medpipe, then read back by medpipe and by Python's json module
// (the seeds' scripts load COCO with json.load) in the same run.
//
//   bench_coco_load [IMAGES] [WORKDIR]
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "dataset/coco_io.h"

using namespace medpipe;
using Clock = std::chrono::steady_clock;

static double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int main(int argc, char** argv) {
  size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  fs::path dir = argc > 2 ? fs::path(argv[2]) : fs::temp_directory_path() / "medpipe-bench-coco";
  fs::create_directories(dir);
  fs::path file = dir / "big.coco.json";

  Dataset ds;
  ds.categories = {{1, "EDH", "hemorrhage"}, {2, "IPH", "hemorrhage"}};
  ds.images.reserve(n);
  ds.annotations.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    Image img;
    img.id = static_cast<int64_t>(i) + 1;
    img.file_name = fmt::format("images/P{:06d}_{:03d}.png", i / 40, i % 40);
    img.width = img.height = 512;
    img.patient_id = fmt::format("P{:06d}", i / 40);
    img.source = "bench";
    img.split = i % 10 < 8 ? "train" : i % 10 < 9 ? "valid" : "test";
    img.labels = {"hemorrhage"};
    img.attributes["slice_thickness"] = 5.0;
    ds.images.push_back(std::move(img));
    Annotation a;
    a.id = static_cast<int64_t>(i) + 1;
    a.image_id = a.id;
    a.category_id = 1 + static_cast<int64_t>(i % 2);
    a.bbox[0] = 10, a.bbox[1] = 20, a.bbox[2] = 30.5, a.bbox[3] = 40;
    a.area = 1220;
    ds.annotations.push_back(a);
  }

  auto t0 = Clock::now();
  std::string text = SerializeCoco(ds);
  double serialize = Since(t0);
  Status st = DefaultDisk()->WriteAtomic(file, text, false);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  t0 = Clock::now();
  Result<Dataset> back = ReadCoco(file);
  double load = Since(t0);
  if (!back.ok() || back->images.size() != n) {
    std::fprintf(stderr, "reload failed: %s\n", back.status().ToString().c_str());
    return 1;
  }

  std::string cmd = fmt::format(
      "/usr/bin/python3 -c \"import json,time,sys; t=time.perf_counter(); d=json.load(open(sys.argv[1])); "
      "print(time.perf_counter()-t)\" '{}'",
      file.string());
  double python = -1;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    if (std::fscanf(p, "%lf", &python) != 1) python = -1;
    pclose(p);
  }

  std::printf("COCO file: %zu images, %zu annotations, %.0f MB\n", n, n, text.size() / 1e6);
  std::printf("%-32s %8.2f s\n", "medpipe serialize", serialize);
  std::printf("%-32s %8.2f s\n", "medpipe load (ReadCoco)", load);
  if (python > 0) {
    std::printf("%-32s %8.2f s\n", "python3 json.load", python);
    std::printf("ratio python / medpipe load      %8.1fx\n", python / load);
  } else {
    std::printf("python3 json.load: not measured (/usr/bin/python3 missing)\n");
  }
  fs::remove_all(dir);
  return 0;
}
