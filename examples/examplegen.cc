// Writes a small synthetic head-CT-like dataset for the demo, the tests and
// the benchmarks: grayscale PNG slices for several patients with bright
// "bleed" regions, a COCO file with their boxes in the 6 hemorrhage classes,
// and a labels CSV. Deterministic for a seed.
//
//   medpipe-examplegen --out DIR [--patients N] [--slices N] [--size PX] [--seed S]
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dataset/coco_io.h"
#include "dataset/image_io.h"
#include "util/fs.h"

using namespace medpipe;

namespace {

const char* kClasses[] = {"EDH", "HC", "IPH", "IVH", "SAH", "SDH"};

struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  // Own arithmetic instead of std distributions, whose output may differ
  // between standard libraries.
  double Uniform() { return static_cast<double>(gen() >> 11) * (1.0 / 9007199254740992.0); }
  int Int(int lo, int hi) { return lo + static_cast<int>(Uniform() * (hi - lo + 1)); }
};

int Usage() {
  std::fprintf(stderr, "usage: medpipe-examplegen --out DIR [--patients N] [--slices N] [--size PX] [--seed S]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out;
  int patients = 8, slices = 6, size = 256;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (!std::strcmp(argv[i], "--out") && (v = next())) out = v;
    else if (!std::strcmp(argv[i], "--patients") && (v = next())) patients = std::atoi(v);
    else if (!std::strcmp(argv[i], "--slices") && (v = next())) slices = std::atoi(v);
    else if (!std::strcmp(argv[i], "--size") && (v = next())) size = std::atoi(v);
    else if (!std::strcmp(argv[i], "--seed") && (v = next())) seed = std::strtoull(v, nullptr, 10);
    else return Usage();
  }
  if (out.empty() || patients < 1 || slices < 1 || size < 32) return Usage();

  Rng rng(seed);
  Dataset boxes;
  for (int c = 0; c < 6; ++c) boxes.categories.push_back(Category{c + 1, kClasses[c], "hemorrhage"});
  std::string labels = "file,label\n";
  Disk* disk = DefaultDisk();
  std::vector<uint8_t> pixels(static_cast<size_t>(size) * size);
  PngOptions png;
  png.compression_level = 1;

  for (int p = 0; p < patients; ++p) {
    for (int s = 0; s < slices; ++s) {
      std::string name = fmt::format("P{:04d}_{:03d}.png", p + 1, s + 1);
      // A skull-like ring on dark background, with mild noise.
      double cx = size / 2.0, cy = size / 2.0, r = size * 0.38;
      for (int y = 0; y < size; ++y) {
        for (int x = 0; x < size; ++x) {
          double d = std::hypot(x - cx, (y - cy) * 1.15);
          int v = d < r - size * 0.03 ? 40 : d < r ? 230 : 0;
          v += static_cast<int>(rng.gen() % 7);
          pixels[static_cast<size_t>(y) * size + x] = static_cast<uint8_t>(std::min(v, 255));
        }
      }
      Image img;
      img.id = static_cast<int64_t>(boxes.images.size()) + 1;
      img.file_name = name;
      img.width = img.height = size;
      int bleeds = rng.Uniform() < 0.55 ? rng.Int(1, 2) : 0;
      for (int b = 0; b < bleeds; ++b) {
        int w = rng.Int(size / 16, size / 6), h = rng.Int(size / 16, size / 6);
        int x0 = rng.Int(static_cast<int>(cx - r * 0.6), static_cast<int>(cx + r * 0.6) - w);
        int y0 = rng.Int(static_cast<int>(cy - r * 0.6), static_cast<int>(cy + r * 0.6) - h);
        for (int y = y0; y < y0 + h; ++y) {
          for (int x = x0; x < x0 + w; ++x) {
            double ex = (x - x0 - w / 2.0) / (w / 2.0), ey = (y - y0 - h / 2.0) / (h / 2.0);
            if (ex * ex + ey * ey <= 1.0) pixels[static_cast<size_t>(y) * size + x] = 150;
          }
        }
        Annotation a;
        a.id = static_cast<int64_t>(boxes.annotations.size()) + 1;
        a.image_id = img.id;
        a.category_id = rng.Int(1, 6);
        a.bbox[0] = x0, a.bbox[1] = y0, a.bbox[2] = w, a.bbox[3] = h;
        a.area = static_cast<double>(w) * h;
        boxes.annotations.push_back(a);
      }
      labels += fmt::format("{},{}\n", name, bleeds ? "hemorrhage" : "no_hemorrhage");
      boxes.images.push_back(img);
      Result<std::string> encoded = EncodePng(pixels.data(), size, size, 1, 8, png);
      Status st = encoded.ok() ? disk->WriteAtomic(fs::path(out) / "images" / name, *encoded, false) : encoded.status();
      if (!st.ok()) {
        std::fprintf(stderr, "medpipe-examplegen: %s\n", st.ToString().c_str());
        return 1;
      }
    }
  }
  Status st = disk->WriteAtomic(fs::path(out) / "boxes.coco.json", SerializeCoco(boxes), false);
  if (st.ok()) st = disk->WriteAtomic(fs::path(out) / "labels.csv", labels, false);
  if (!st.ok()) {
    std::fprintf(stderr, "medpipe-examplegen: %s\n", st.ToString().c_str());
    return 1;
  }
  std::printf("medpipe-examplegen: %d images of %d patients, %zu boxes in %s\n", patients * slices, patients,
              boxes.annotations.size(), out.c_str());
  return 0;
}
