// The TorchScript runtime (libtorch). The only file that includes torch's
// headers, which take most of a minute to compile on two cores.
#include <ATen/Parallel.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>

#include <algorithm>
#include <mutex>
#include <sstream>

#include "infer/model.h"
#include "infer/model_info.h"

namespace medpipe {
namespace {

class TorchScriptModel : public Model {
 public:
  TorchScriptModel(torch::jit::Module module, int threads) : module_(std::move(module)), threads_(threads) {}

  Result<std::vector<float>> Forward(const float* input, int n, int channels, int height, int width) override {
    // The pool size is process-wide (OpenMP); set it on every call so another
    // user of libtorch in the process cannot leave it at a different size.
    if (at::get_num_threads() != threads_) at::set_num_threads(threads_);
    try {
      c10::InferenceMode guard;
      // from_blob does not copy; the caller's buffer outlives the call.
      torch::Tensor x = torch::from_blob(const_cast<float*>(input), {n, channels, height, width}, torch::kFloat32);
      torch::jit::IValue out = module_.forward({x});
      torch::Tensor y;
      if (out.isTensor()) {
        y = out.toTensor();
      } else if (out.isTuple() && !out.toTuple()->elements().empty() && out.toTuple()->elements()[0].isTensor()) {
        y = out.toTuple()->elements()[0].toTensor();
      } else {
        return Status::Invalid("the model's forward returned neither a tensor nor a tuple of tensors");
      }
      y = y.to(torch::kFloat32).contiguous().reshape({n, -1});
      outputs_ = static_cast<int>(y.size(1));
      const float* p = y.data_ptr<float>();
      return std::vector<float>(p, p + y.numel());
    } catch (const c10::Error& e) {
      return Status::Invalid(std::string("libtorch: ") + e.what_without_backtrace());
    } catch (const std::exception& e) {
      return Status::Invalid(std::string("libtorch: ") + e.what());
    }
  }

  int num_outputs() const override { return outputs_; }
  const char* runtime() const override { return "torchscript"; }

 private:
  torch::jit::Module module_;
  const int threads_;
  int outputs_ = 0;
};

}  // namespace

Result<std::unique_ptr<Model>> LoadTorchScriptModel(const fs::path& path, const ModelOptions& options) {
  // Debian's libtorch starts with one thread; one inter-op thread is enough
  // since a forward pass is one graph run at a time.
  static std::once_flag interop_once;
  std::call_once(interop_once, [] {
    try {
      at::set_num_interop_threads(1);
    } catch (const c10::Error&) {
      // Already started by an earlier libtorch user in this process: keep it.
    }
  });
  try {
    torch::jit::Module module = torch::jit::load(path.string(), torch::kCPU);
    module.eval();
    // Freezing inlines the weights as constants; optimize_for_inference then
    // folds BatchNorm into the convolutions and converts them to oneDNN.
    torch::jit::Module frozen = torch::jit::freeze(module);
    frozen = torch::jit::optimize_for_inference(frozen);
    return std::unique_ptr<Model>(new TorchScriptModel(std::move(frozen), std::max(1, options.threads)));
  } catch (const c10::Error& e) {
    return Status::Invalid("model " + path.string() + ": libtorch cannot load it as TorchScript: " +
                           e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Status::Invalid("model " + path.string() + ": " + e.what());
  }
}

Status InspectTorchScriptBytes(const std::string& bytes, ModelInfo* info) {
  // The archive's zip directory only: opening it reads no tensors and
  // compiles no code, so this stays cheap for a config check.
  try {
    std::istringstream in(bytes);
    caffe2::serialize::PyTorchStreamReader reader(&in);
    if (!reader.hasRecord("constants.pkl") || !reader.hasRecord("data.pkl")) {
      return Status::Invalid(
          "a PyTorch archive without TorchScript code (a torch.save'd state dict or module?); save it with "
          "torch.jit.save(torch.jit.script(model) or torch.jit.trace(model, example), PATH)");
    }
    for (const std::string& record : reader.getAllRecords()) {
      const std::string prefix = "extra/medpipe.";
      const size_t at = record.find(prefix);
      if (at == std::string::npos || record.find('/', at + 6) != std::string::npos) continue;
      auto [data, size] = reader.getRecord(record);
      info->marks[record.substr(at + 6)] = std::string(static_cast<const char*>(data.get()), size);
    }
  } catch (const c10::Error& e) {
    return Status::Invalid(std::string("not a TorchScript archive (") + e.what_without_backtrace() + ")");
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("not a TorchScript archive (") + e.what() + ")");
  }
  return Status::OK();
}

}  // namespace medpipe
