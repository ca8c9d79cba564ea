// The bare forward pass of a classification model through medpipe's infer
// library, for the classify benchmark's "overhead over the forward pass":
// `runs` batches of `batch` seeded inputs (1x224x224, values in
// [-1024, 1024]), after one warm-up batch. Prints "images/s X".
//
//   bench_classify_forward MODEL BATCH IMAGES THREADS
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "infer/model.h"

using namespace medpipe;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: bench_classify_forward MODEL BATCH IMAGES THREADS\n");
    return 2;
  }
  const int batch = std::atoi(argv[2]), images = std::atoi(argv[3]), threads = std::atoi(argv[4]);
  auto model = LoadModel(argv[1], ModelOptions{threads});
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1024, 1024);
  std::vector<float> x(static_cast<size_t>(batch) * 224 * 224);
  for (float& v : x) v = u(rng);
  if (!(*model)->Forward(x.data(), batch, 1, 224, 224).ok()) return 1;  // warm-up
  const int runs = std::max(1, images / batch);
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < runs; ++r) {
    if (!(*model)->Forward(x.data(), batch, 1, 224, 224).ok()) return 1;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("images/s %.2f\n", runs * batch / s);
  return 0;
}
