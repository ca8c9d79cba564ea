// Classification networks behind one interface: a float32 NCHW batch in, one
// row of scores per image out. Knows nothing of pipelines.
//
// Two runtimes, chosen by the file's extension:
// - TorchScript (".pt", ".pth", ".ts"): libtorch, frozen and optimised for
//   inference once at load (torch.jit.freeze + optimize_for_inference, which
//   fuses BatchNorm into convolutions and uses oneDNN). Measured fastest on
//   this platform (../shared/KNOWN.md: 30 ms per image at batch 1 against 58
//   for PyTorch eager and 67 for OpenCV dnn).
// - ONNX (".onnx"): OpenCV dnn, for models handed over by other frameworks.
//
// Threading: Forward is not reentrant; callers run one forward pass at a time
// (the classify stage and the server hold a mutex around it). libtorch's
// intra-op pool is OpenMP's, not oneTBB's: Forward sets its thread count to
// `threads` from ModelOptions and must not be called from inside a TBB
// parallel loop that keeps the other cores busy, or the pools oversubscribe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

struct ModelOptions {
  int threads = 1;  // intra-op threads of a forward pass
};

class Model {
 public:
  virtual ~Model() = default;

  // Runs `n` images of `channels` x `height` x `width` floats each (NCHW,
  // contiguous) and returns n * num_outputs() scores, row-major. A model
  // that rejects the shape is kInvalid with the runtime's reason.
  virtual Result<std::vector<float>> Forward(const float* input, int n, int channels, int height,
                                             int width) = 0;

  // The number of outputs per image, known after the first Forward (0
  // before).
  virtual int num_outputs() const = 0;

  // "torchscript" or "onnx".
  virtual const char* runtime() const = 0;
};

// Loads `path` by its extension (see above). Errors name the file; an ONNX
// file OpenCV rejects names scripts/prepare_onnx.py, which folds the
// Identity nodes torch's exporter emits.
Result<std::unique_ptr<Model>> LoadModel(const fs::path& path, const ModelOptions& options);

// True if `path`'s extension names a runtime LoadModel knows.
bool IsModelFileName(const fs::path& path);

// The two back ends, in their own translation units (torch_model.cc is the
// only file that includes libtorch's headers: they compile slowly).
Result<std::unique_ptr<Model>> LoadTorchScriptModel(const fs::path& path, const ModelOptions& options);
Result<std::unique_ptr<Model>> LoadOnnxModel(const fs::path& path, const ModelOptions& options);

}  // namespace medpipe
