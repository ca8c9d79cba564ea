// What a model file says about itself, read without running it: the marks
// medpipe writes into the models it makes (an untrained network says so),
// the declared number of outputs where the file tells, and the file's
// SHA-256. Cheap enough for config checks (`medpipe validate`, every run's
// plan): it reads the file once and never builds the network.
//
// The marks are string key/value pairs, the same keys in both formats:
// - TorchScript: extra files of the archive (torch.jit.save's _extra_files,
//   Module::save's ExtraFilesMap), stored as `extra/<key>`.
// - ONNX: the model's metadata_props.
//   medpipe.name       a human name for the network ("starter cxr, seed 7")
//   medpipe.untrained  "true" when the weights are random: scores mean nothing
//   medpipe.outputs    the number of outputs per image
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

// What every user-facing output says of an untrained model.
inline constexpr const char* kUntrainedWarning = "untrained model: levels mean nothing";

inline constexpr const char* kMarkName = "medpipe.name";
inline constexpr const char* kMarkUntrained = "medpipe.untrained";
inline constexpr const char* kMarkOutputs = "medpipe.outputs";

struct ModelInfo {
  std::string file;     // the file's name, without its folder
  std::string name;     // medpipe.name, else `file`
  std::string sha256;   // of the file's bytes, 64 hex digits
  std::string runtime;  // "torchscript" or "onnx"
  bool untrained = false;
  int outputs = 0;  // per image, as the file declares it; 0 when it does not tell
  std::map<std::string, std::string> marks;  // every medpipe.* key found

  // kUntrainedWarning for an untrained model, "" otherwise.
  std::string Warning() const { return untrained ? kUntrainedWarning : ""; }
};

// Reads `path` and checks that it is structurally a model of the runtime its
// extension names (an ONNX ModelProto with a graph; a TorchScript archive
// with code and constants, not a torch.save'd state dict). kNotFound for a
// missing file; kInvalid naming the file and what is wrong for anything else
// ("not a loadable model: ..."). A file that passes can still fail to load
// (an operator the runtime lacks): Classifier::Load finds that.
Result<ModelInfo> InspectModel(const fs::path& path);

// kInvalid when `info` declares a number of outputs other than `labels`.
Status CheckDeclaredOutputs(const ModelInfo& info, size_t labels);

// The format-specific halves, on the file's bytes; errors are the reason
// only (InspectModel adds the file name). The ONNX half fills `marks`,
// `outputs` and applies the marks; the TorchScript half fills `marks` only
// (its library links after this one's, so it calls nothing here):
// InspectModel applies them.
Status InspectOnnxBytes(std::string_view bytes, ModelInfo* info);
// In torch_model.cc, the only file that includes libtorch's headers.
Status InspectTorchScriptBytes(const std::string& bytes, ModelInfo* info);

// Applies the marks found in `info->marks` to its other fields.
Status ApplyMarks(ModelInfo* info);

}  // namespace medpipe
