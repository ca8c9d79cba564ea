// The PNG encoding limit for bench/convert_bench.sh: encoding already-windowed
// 8-bit images on N threads, nothing else. Reads the images once into memory
// from a folder of PNGs (convert's output), then encodes them all `--repeat`
// times, either with medpipe's writer (image/png.h) and a back end, or with
// libpng + zlib directly (--libpng: the reference every back end is compared
// with).
//
//   bench_png_limit DIR [--compression fast|small|zlib] [--libpng] [--level L]
//                       [--strategy S] [--filter MASK] [--threads N] [--repeat R]
//
// --level and --strategy (zlib's 0 default .. 3 Z_RLE; default 1 and 3,
// medpipe's zlib settings) apply to `zlib` and to --libpng.
//
// Prints one line: "images=N seconds=S per_second=R cpu_seconds=C bytes=B"
// (cpu: process CPU time, steadier than wall time on a loaded machine; bytes:
// the total size of one pass's encoded files).
#include <png.h>
#include <zlib.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "image/png.h"
#include "util/fs.h"

using namespace medpipe;

namespace {

struct Gray {
  int width = 0, height = 0, channels = 1;
  std::vector<uint8_t> pixels;
};

bool Load(const fs::path& path, Gray* out) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) return false;
  out->channels = (img.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
  img.format = out->channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  out->width = static_cast<int>(img.width);
  out->height = static_cast<int>(img.height);
  out->pixels.resize(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, out->pixels.data(), 0, nullptr)) return false;
  return true;
}

void Append(png_structp png, png_bytep data, png_size_t n) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<char*>(data), n);
}
void NoFlush(png_structp) {}

// Error handling is abort(): the inputs were just decoded by libpng.
std::string EncodeLibpng(const Gray& g, const PngOptions& options) {
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(png, &out, Append, NoFlush);
  png_set_compression_level(png, options.zlib_level);
  png_set_compression_strategy(png, options.zlib_strategy);
  png_set_filter(png, PNG_FILTER_TYPE_BASE, options.filters);
  png_set_IHDR(png, info, g.width, g.height, 8, g.channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
  png_write_info(png, info);
  const size_t stride = static_cast<size_t>(g.width) * g.channels;
  for (int y = 0; y < g.height; ++y) png_write_row(png, const_cast<png_bytep>(g.pixels.data() + stride * y));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_png_limit DIR [--compression fast|small|zlib] [--libpng] [--level L] [--strategy S] "
                 "[--filter MASK] [--threads N] [--repeat R]\n");
    return 2;
  }
  PngOptions options;  // medpipe's defaults
  int threads = 2, repeat = 1;
  bool libpng = false;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--libpng")) {
      libpng = true;
      continue;
    }
    if (i + 1 >= argc) break;
    if (!std::strcmp(argv[i], "--level")) options.zlib_level = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--strategy")) options.zlib_strategy = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--compression")) {
      Result<PngCompressor> c = ParsePngCompressor(argv[i + 1]);
      if (!c.ok()) {
        std::fprintf(stderr, "bench_png_limit: %s\n", c.status().message().c_str());
        return 2;
      }
      options.compressor = *c;
    }
    else if (!std::strcmp(argv[i], "--filter")) options.filters = static_cast<int>(std::strtol(argv[i + 1], nullptr, 0));
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--repeat")) repeat = std::atoi(argv[i + 1]);
    ++i;
  }
  std::vector<fs::path> paths;
  for (const auto& e : fs::recursive_directory_iterator(argv[1])) {
    if (e.is_regular_file() && e.path().extension() == ".png") paths.push_back(e.path());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<Gray> images(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    if (!Load(paths[i], &images[i])) {
      std::fprintf(stderr, "bench_png_limit: cannot read %s\n", paths[i].c_str());
      return 1;
    }
  }
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  std::atomic<uint64_t> bytes{0};
  auto start = std::chrono::steady_clock::now();
  std::clock_t cpu_start = std::clock();
  for (int r = 0; r < repeat; ++r) {
    tbb::parallel_for(size_t{0}, images.size(), [&](size_t i) {
      const Gray& g = images[i];
      if (libpng) {
        std::string png = EncodeLibpng(g, options);
        if (r == 0) bytes.fetch_add(png.size());
        return;
      }
      Result<std::string> png = EncodePng(g.pixels.data(), g.width, g.height, g.channels, 8, options);
      if (!png.ok()) std::abort();
      if (r == 0) bytes.fetch_add(png->size());
    });
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  size_t n = images.size() * static_cast<size_t>(repeat);
  std::printf("images=%zu seconds=%.3f per_second=%.1f cpu_seconds=%.3f bytes=%llu\n", n, seconds, n / seconds, cpu,
              static_cast<unsigned long long>(bytes.load()));
  return 0;
}
