// Writes small synthetic head-CT-like datasets for the demo, the tests and
// the benchmarks. Deterministic for a seed.
//
//   medpipe-examplegen --out DIR [--patients N] [--slices N] [--size PX] [--seed S]
//                      [--classes A,B,...] [--prefix P] [--roboflow]
//
// Default layout: DIR/images/<P><patient>_<slice>.png grayscale slices with
// bright "bleed" regions, DIR/boxes.coco.json with their boxes, and
// DIR/labels.csv (file,label: hemorrhage or no_hemorrhage).
//
// --roboflow writes a Roboflow COCO export instead: DIR/{train,valid,test}/
// with _annotations.coco.json, patients split 70/20/10; 8 categories, the
// id-0 project parent (supercategory "none") plus 7 Roboflow-style class
// names; file names in Roboflow's "<stem>_png.rf.<hash>.png" form, and one
// train image in three with a second augmented copy sharing its stem.
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "dataset/coco_io.h"
#include "dataset/image_io.h"
#include "image/png.h"
#include "util/fs.h"
#include "util/hash.h"

using namespace medpipe;

namespace {

const char* kHemorrhageClasses = "EDH,HC,IPH,IVH,SAH,SDH";
const char* kRoboflowParent = "hemorrhage-ct";
const char* kRoboflowClasses[] = {"epidural",    "hemorrhagic_contusion", "intraparenchymal", "intraventricular",
                                  "subarachnoid", "subdural",             "chronic_subdural"};

struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  // Own arithmetic instead of std distributions, whose output may differ
  // between standard libraries.
  double Uniform() { return static_cast<double>(gen() >> 11) * (1.0 / 9007199254740992.0); }
  int Int(int lo, int hi) { return lo + static_cast<int>(Uniform() * (hi - lo + 1)); }
};

struct Slice {
  int patient = 0;
  std::string stem;  // "P0001_003"
  std::vector<uint8_t> pixels;
  std::vector<Annotation> boxes;  // image_id unset; category_id 1-based into the class list
};

struct Options {
  std::string out;
  int patients = 8, slices = 6, size = 256;
  uint64_t seed = 1;
  std::vector<std::string> classes;
  std::string prefix;
  bool roboflow = false;
};

Slice MakeSlice(Rng& rng, int size, int num_classes) {
  Slice s;
  s.pixels.resize(static_cast<size_t>(size) * size);
  // A skull-like ring on a dark background, with mild noise.
  double cx = size / 2.0, cy = size / 2.0, r = size * 0.38;
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      double d = std::hypot(x - cx, (y - cy) * 1.15);
      int v = d < r - size * 0.03 ? 40 : d < r ? 230 : 0;
      v += static_cast<int>(rng.gen() % 7);
      s.pixels[static_cast<size_t>(y) * size + x] = static_cast<uint8_t>(std::min(v, 255));
    }
  }
  int bleeds = rng.Uniform() < 0.55 ? rng.Int(1, 2) : 0;
  for (int b = 0; b < bleeds; ++b) {
    int w = rng.Int(size / 16, size / 6), h = rng.Int(size / 16, size / 6);
    int x0 = rng.Int(static_cast<int>(cx - r * 0.6), static_cast<int>(cx + r * 0.6) - w);
    int y0 = rng.Int(static_cast<int>(cy - r * 0.6), static_cast<int>(cy + r * 0.6) - h);
    for (int y = y0; y < y0 + h; ++y) {
      for (int x = x0; x < x0 + w; ++x) {
        double ex = (x - x0 - w / 2.0) / (w / 2.0), ey = (y - y0 - h / 2.0) / (h / 2.0);
        if (ex * ex + ey * ey <= 1.0) s.pixels[static_cast<size_t>(y) * size + x] = 150;
      }
    }
    Annotation a;
    a.category_id = rng.Int(1, num_classes);
    a.bbox[0] = x0, a.bbox[1] = y0, a.bbox[2] = w, a.bbox[3] = h;
    a.area = static_cast<double>(w) * h;
    s.boxes.push_back(a);
  }
  return s;
}

// Adds `s` to `ds` as `file_name` and writes its pixels to `path`.
Status Emit(const Options& o, const Slice& s, const std::string& file_name, const fs::path& path, Dataset* ds) {
  Image img;
  img.id = static_cast<int64_t>(ds->images.size()) + 1;
  img.file_name = file_name;
  img.width = img.height = o.size;
  for (Annotation a : s.boxes) {
    a.id = static_cast<int64_t>(ds->annotations.size()) + 1;
    a.image_id = img.id;
    ds->annotations.push_back(a);
  }
  ds->images.push_back(img);
  // zlib level 1 with adaptive filters: the bytes this generator wrote
  // before the PNG writer had other back ends.
  const PngOptions png{PngCompressor::kZlib, kPngAllFilters, 1, 0};
  MEDPIPE_ASSIGN_OR_RETURN(std::string encoded, EncodePng(s.pixels.data(), o.size, o.size, 1, 8, png));
  return DefaultDisk()->WriteAtomic(path, encoded, false);
}

Status WriteFolder(const Options& o, const std::vector<Slice>& slices) {
  Dataset ds;
  for (size_t c = 0; c < o.classes.size(); ++c) {
    ds.categories.push_back(Category{static_cast<int64_t>(c) + 1, o.classes[c], "hemorrhage"});
  }
  std::string labels = "file,label\n";
  for (const auto& s : slices) {
    std::string name = s.stem + ".png";
    MEDPIPE_RETURN_IF_ERROR(Emit(o, s, name, fs::path(o.out) / "images" / name, &ds));
    labels += fmt::format("{},{}\n", name, s.boxes.empty() ? "no_hemorrhage" : "hemorrhage");
  }
  MEDPIPE_RETURN_IF_ERROR(DefaultDisk()->WriteAtomic(fs::path(o.out) / "boxes.coco.json", SerializeCoco(ds), false));
  MEDPIPE_RETURN_IF_ERROR(DefaultDisk()->WriteAtomic(fs::path(o.out) / "labels.csv", labels, false));
  std::printf("medpipe-examplegen: %zu images, %zu boxes in %s\n", ds.images.size(), ds.annotations.size(),
              o.out.c_str());
  return Status::OK();
}

Status WriteRoboflow(const Options& o, const std::vector<Slice>& slices) {
  Dataset parts[3];
  for (auto& part : parts) {
    part.categories.push_back(Category{0, kRoboflowParent, "none"});
    for (int c = 0; c < 7; ++c) part.categories.push_back(Category{c + 1, kRoboflowClasses[c], kRoboflowParent});
  }
  size_t copies = 0;
  for (size_t i = 0; i < slices.size(); ++i) {
    const Slice& s = slices[i];
    int bucket = s.patient * 10 / o.patients;  // patients 70/20/10
    int split = bucket < 7 ? 0 : bucket < 9 ? 1 : 2;
    int versions = split == 0 && i % 3 == 0 ? 2 : 1;
    for (int v = 0; v < versions; ++v) {
      std::string hash = HashBytes(fmt::format("{}:{}:{}", o.seed, s.stem, v));
      std::string name = fmt::format("{}_png.rf.{}.png", s.stem, hash);
      fs::path path = fs::path(o.out) / std::string(kSplitNames[split]) / name;
      MEDPIPE_RETURN_IF_ERROR(Emit(o, s, name, path, &parts[split]));
      copies += v;
    }
  }
  for (int split = 0; split < 3; ++split) {
    fs::path json = fs::path(o.out) / std::string(kSplitNames[split]) / "_annotations.coco.json";
    MEDPIPE_RETURN_IF_ERROR(DefaultDisk()->WriteAtomic(json, SerializeCoco(parts[split]), false));
  }
  std::printf("medpipe-examplegen: Roboflow export of %zu images (%zu augmented copies) in %s\n",
              parts[0].images.size() + parts[1].images.size() + parts[2].images.size(), copies, o.out.c_str());
  return Status::OK();
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int Usage() {
  std::fprintf(stderr,
               "usage: medpipe-examplegen --out DIR [--patients N] [--slices N] [--size PX] [--seed S]\n"
               "                          [--classes A,B,...] [--prefix P] [--roboflow]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string classes = kHemorrhageClasses;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (!std::strcmp(argv[i], "--out") && (v = next())) o.out = v;
    else if (!std::strcmp(argv[i], "--patients") && (v = next())) o.patients = std::atoi(v);
    else if (!std::strcmp(argv[i], "--slices") && (v = next())) o.slices = std::atoi(v);
    else if (!std::strcmp(argv[i], "--size") && (v = next())) o.size = std::atoi(v);
    else if (!std::strcmp(argv[i], "--seed") && (v = next())) o.seed = std::strtoull(v, nullptr, 10);
    else if (!std::strcmp(argv[i], "--classes") && (v = next())) classes = v;
    else if (!std::strcmp(argv[i], "--prefix") && (v = next())) o.prefix = v;
    else if (!std::strcmp(argv[i], "--roboflow")) o.roboflow = true;
    else return Usage();
  }
  o.classes = SplitList(classes);
  if (o.out.empty() || o.patients < 1 || o.slices < 1 || o.size < 32 || o.classes.empty()) return Usage();

  Rng rng(o.seed);
  std::vector<Slice> slices;
  for (int p = 0; p < o.patients; ++p) {
    for (int s = 0; s < o.slices; ++s) {
      Slice slice = MakeSlice(rng, o.size, o.roboflow ? 7 : static_cast<int>(o.classes.size()));
      slice.patient = p;
      slice.stem = fmt::format("{}P{:04d}_{:03d}", o.prefix, p + 1, s + 1);
      slices.push_back(std::move(slice));
    }
  }
  Status st = o.roboflow ? WriteRoboflow(o, slices) : WriteFolder(o, slices);
  if (!st.ok()) {
    std::fprintf(stderr, "medpipe-examplegen: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
