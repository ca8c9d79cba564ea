// An untrained starter network for chest X-ray triage, written by
// `medpipe init --template cxr` so that the new pipeline runs before the user
// has a model of their own. Knows nothing of pipelines.
//
// The network takes the xrv preset's input (N x 1 x 224 x 224 floats in
// [-1024, 1024]; any height and width work), averages it over an 8 x 8 grid,
// takes the grid's left-right differences (what sets one roughly symmetric
// chest image apart from another), standardises those 64 values per image (so
// the logits do not depend on the image's overall brightness or contrast and
// stay within a few units of 0), and maps them through one linear layer to the 18 logits of torchxrayvision's
// "all" labels (DefaultCxrLabels(), in that order; classify's default
// `output: logits`). Its weights are random: its scores depend on the image
// but mean nothing medically.
#pragma once

#include <cstdint>
#include <string>

#include "util/status.h"

namespace medpipe {

// The number of logits the starter network gives (DefaultCxrLabels().size()).
inline constexpr int kStarterModelOutputs = 18;

// The starter network as a TorchScript archive (what torch.jit.save writes;
// LoadModel reads it from a ".pt" file). The weights are drawn from a
// generator seeded with `seed`: the same seed gives the same weights, so the
// same scores, and the same bytes from the same libtorch on the same kind of
// CPU (its vectorised normal sampler may round differently elsewhere).
// kFailed with libtorch's message if it cannot build or save the module.
Result<std::string> StarterModelBytes(uint64_t seed);

}  // namespace medpipe
