#include "infer/model.h"

#include <algorithm>
#include <cctype>

namespace medpipe {
namespace {

std::string LowerExtension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

}  // namespace

bool IsModelFileName(const fs::path& path) {
  const std::string ext = LowerExtension(path);
  return ext == ".pt" || ext == ".pth" || ext == ".ts" || ext == ".onnx";
}

Result<std::unique_ptr<Model>> LoadModel(const fs::path& path, const ModelOptions& options) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return Status::NotFound("model file not found: " + path.string());
  const std::string ext = LowerExtension(path);
  if (ext == ".onnx") return LoadOnnxModel(path, options);
  if (ext == ".pt" || ext == ".pth" || ext == ".ts") return LoadTorchScriptModel(path, options);
  return Status::Invalid("model " + path.string() +
                         ": unknown extension (expected .pt/.pth/.ts for TorchScript or .onnx for ONNX)");
}

}  // namespace medpipe
