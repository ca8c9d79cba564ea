// The floor for bench/augment_bench.sh: what 3x augmentation costs with no
// transforms at all. On N threads, each input PNG is decoded once with
// OpenCV (cv::imdecode, IMREAD_UNCHANGED, as the augment stage decodes) and
// encoded `--copies` times with the PNG writer (image/png.h) at the given
// settings (as the stage encodes), each encoding written to its own file. No journal, no
// hashing, no dataset.
//
//   bench_augment_floor IN_DIR OUT_DIR [--copies K] [--threads N] [--compression fast|small|zlib]
//                       [--level L] [--filter MASK]
//
// Prints one line: "images=N outputs=M seconds=S cpu_seconds=C bytes=B".
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "image/png.h"
#include "util/fs.h"

using namespace medpipe;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: bench_augment_floor IN_DIR OUT_DIR [--copies K] [--threads N] [--compression fast|small|zlib] "
                 "[--level L] [--filter MASK]\n");
    return 2;
  }
  fs::path in = argv[1], out = argv[2];
  int copies = 3, threads = 2;
  PngOptions png;  // the augment stage's defaults
  png.zlib_strategy = 0;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--copies")) copies = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--level")) png.zlib_level = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--compression")) {
      Result<PngCompressor> c = ParsePngCompressor(argv[i + 1]);
      if (!c.ok()) {
        std::fprintf(stderr, "bench_augment_floor: %s\n", c.status().message().c_str());
        return 2;
      }
      png.compressor = *c;
    }
    else if (!std::strcmp(argv[i], "--filter")) png.filters = static_cast<int>(std::strtol(argv[i + 1], nullptr, 0));
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(in)) {
    if (e.is_regular_file() && e.path().extension() == ".png") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  fs::create_directories(out);

  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  std::atomic<int64_t> bytes{0};
  std::atomic<bool> failed{false};
  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  tbb::parallel_for(size_t{0}, files.size(), [&](size_t i) {
    // Per-thread buffers reused across files, as the stage does.
    thread_local std::vector<char> file;
    thread_local cv::Mat image;
    std::ifstream in_file(files[i], std::ios::binary);
    file.assign(std::istreambuf_iterator<char>(in_file), std::istreambuf_iterator<char>());
    cv::imdecode(cv::Mat(1, static_cast<int>(file.size()), CV_8U, file.data()), cv::IMREAD_UNCHANGED, &image);
    if (image.empty()) {
      failed = true;
      return;
    }
    if (image.channels() == 3) cv::cvtColor(image, image, cv::COLOR_BGR2RGB);
    for (int k = 1; k <= copies; ++k) {
      Result<std::string> enc = EncodePng(image.data, image.cols, image.rows, image.channels(),
                                          image.depth() == CV_16U ? 16 : 8, png);
      if (!enc.ok()) {
        failed = true;
        return;
      }
      std::ofstream f(out / (files[i].stem().string() + "_aug" + std::to_string(k) + ".png"), std::ios::binary);
      f.write(enc->data(), static_cast<std::streamsize>(enc->size()));
      bytes += static_cast<int64_t>(enc->size());
    }
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  if (failed) {
    std::fprintf(stderr, "bench_augment_floor: an image failed to decode or encode\n");
    return 1;
  }
  std::printf("images=%zu outputs=%zu seconds=%.3f cpu_seconds=%.3f bytes=%lld\n", files.size(),
              files.size() * copies, seconds, cpu, static_cast<long long>(bytes.load()));
  return 0;
}
