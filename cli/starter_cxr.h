// The starter files of `medpipe init --template cxr`: a few synthetic chest
// radiographs and an untrained starter network, so the new pipeline validates
// and runs before the user has images or a model of their own.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "util/status.h"

namespace medpipe {

// Where the template's pipeline expects them, relative to the new folder.
inline constexpr const char* kStarterCxrImages = "data/images/";
inline constexpr const char* kStarterCxrModel = "models/starter_cxr.pt";
inline constexpr int kStarterCxrImageCount = 4;
// Chosen among the first few seeds so that the starter images fall into
// different risk levels (random weights give every image the same level for
// some seeds), which shows the pipeline's folders filling.
inline constexpr uint64_t kStarterCxrModelSeed = 3;

// A synthetic frontal chest radiograph as an 8-bit greyscale PNG (bright is
// dense, as in a radiograph): body, two lung fields, mediastinum and spine,
// a heart shadow whose width grows with `index`, ribs, and on odd indexes an
// opacity in one lung. Deterministic: the same index gives the same bytes.
Result<std::string> StarterRadiographPng(int index);

// (relative path, bytes) of the starter images and the starter model
// (StarterModelBytes(kStarterCxrModelSeed)).
Result<std::vector<std::pair<std::string, std::string>>> StarterCxrFiles();

}  // namespace medpipe
