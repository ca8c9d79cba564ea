// The starter network, built with libtorch's C++ TorchScript API (no Python):
// a torch::jit::Module with two parameters and a `forward` compiled from
// TorchScript source by Module::define, saved as a TorchScript archive. This
// file and torch_model.cc are the only ones that include libtorch's headers.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>

#include <cmath>
#include <sstream>

#include "infer/model_info.h"
#include "infer/starter_model.h"

namespace medpipe {

namespace {

constexpr int kFeatures = 8 * 8;  // the pooled grid of kForward

// The forward pass. The features are the left-right differences of the
// pooled grid: a chest radiograph is roughly symmetric, so what is common to
// all radiographs (body, lungs, spine) cancels and what sets one image apart
// (the heart's width, an opacity in one lung, rotation) remains. On the plain
// grid the shared anatomy dominated: with most seeds every one of
// medpipe-cxrgen's images got the same top label.
// Standardising them gives a vector of norm sqrt(64) for any image that is
// not symmetric, and the weights have a standard deviation of 1/8, so each
// logit is about N(0, 1) over random weights: probabilities spread around 0.5
// rather than pinned at 0 or 1. The epsilon keeps a perfectly symmetric image
// at the bias instead of NaN.
constexpr const char* kForward = R"(
def forward(self, x):
    g = torch.adaptive_avg_pool2d(x, [8, 8])
    a = torch.flatten(g - g.flip([3]), 1)
    f = (a - a.mean(dim=1, keepdim=True)) / (a.std(dim=1, keepdim=True) + 1e-6)
    return torch.matmul(f, self.weight.t()) + self.bias
)";

}  // namespace

Result<std::string> StarterModelBytes(uint64_t seed) {
  try {
    // A generator of our own rather than torch::manual_seed, so the global
    // generator of a process that also runs other libtorch code is left alone.
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    torch::Tensor weight = torch::randn({kStarterModelOutputs, kFeatures}, gen, torch::kFloat32) /
                           std::sqrt(static_cast<float>(kFeatures));
    torch::Tensor bias = torch::randn({kStarterModelOutputs}, gen, torch::kFloat32) * 0.1f;

    torch::jit::Module module("StarterCxr");
    // LoadModel calls eval() and freezes the module, which both need the
    // `training` attribute every scripted module has.
    module.register_attribute("training", c10::BoolType::get(), false);
    module.register_parameter("weight", weight, /*is_buffer=*/false);
    module.register_parameter("bias", bias, /*is_buffer=*/false);
    module.define(kForward);
    // The marks every user-facing output reads (infer/model_info.h): the
    // weights are random, so nothing the network says means anything.
    const torch::jit::ExtraFilesMap marks = {
        {kMarkName, "medpipe starter cxr (untrained, seed " + std::to_string(seed) + ")"},
        {kMarkUntrained, "true"},
        {kMarkOutputs, std::to_string(kStarterModelOutputs)},
    };
    std::ostringstream out;
    module.save(out, marks);
    return out.str();
  } catch (const c10::Error& e) {
    return Status::Failed(std::string("starter model: libtorch: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Status::Failed(std::string("starter model: ") + e.what());
  }
}

}  // namespace medpipe
