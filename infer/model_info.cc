#include "infer/model_info.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>

namespace medpipe {
namespace {

std::string Sha256Hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &n, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < n; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

std::string LowerExtension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

// A reader of protobuf's wire format, enough to walk an ONNX ModelProto down
// to its metadata_props and the graph's output shapes. Hand-written because
// the runtime that reads ONNX here (OpenCV dnn) exposes neither, and Debian
// ships onnx's C++ headers only with a protobuf toolchain we would otherwise
// not need; what is read is a handful of fields of a stable schema
// (onnx/onnx.proto). Every length is checked against the bytes left, so
// hostile bytes give "not a model", never a read past the end.
class Wire {
 public:
  explicit Wire(std::string_view b) : b_(b) {}
  bool done() const { return pos_ == b_.size(); }

  struct Field {
    uint32_t number = 0;
    int type = 0;              // 0 varint, 1 fixed64, 2 bytes, 5 fixed32
    uint64_t varint = 0;       // type 0
    std::string_view bytes;    // type 2
  };

  // The next field; nullopt (with `error` set) on malformed bytes.
  std::optional<Field> Next(std::string* error) {
    Field f;
    uint64_t key = 0;
    if (!Varint(&key)) return Fail(error, "a field key runs past the end");
    f.number = static_cast<uint32_t>(key >> 3);
    f.type = static_cast<int>(key & 7);
    if (f.number == 0) return Fail(error, "field number 0");
    switch (f.type) {
      case 0:
        if (!Varint(&f.varint)) return Fail(error, "a number runs past the end");
        return f;
      case 1:
        if (b_.size() - pos_ < 8) return Fail(error, "a fixed64 runs past the end");
        pos_ += 8;
        return f;
      case 5:
        if (b_.size() - pos_ < 4) return Fail(error, "a fixed32 runs past the end");
        pos_ += 4;
        return f;
      case 2: {
        uint64_t len = 0;
        if (!Varint(&len) || len > b_.size() - pos_) return Fail(error, "a length runs past the end");
        f.bytes = b_.substr(pos_, static_cast<size_t>(len));
        pos_ += static_cast<size_t>(len);
        return f;
      }
      default:
        return Fail(error, fmt::format("wire type {} at byte {}", f.type, pos_));
    }
  }

 private:
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= b_.size()) return false;
      const uint8_t c = static_cast<uint8_t>(b_[pos_++]);
      *v |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return true;
    }
    return false;
  }
  static std::nullopt_t Fail(std::string* error, const std::string& what) {
    *error = what;
    return std::nullopt;
  }

  std::string_view b_;
  size_t pos_ = 0;
};

// Walks every field of `bytes` (a message), calling `each` with each; false
// with `error` set on malformed bytes or when `each` returns false.
template <typename F>
bool ForEachField(std::string_view bytes, std::string* error, F each) {
  Wire w(bytes);
  while (!w.done()) {
    std::optional<Wire::Field> f = w.Next(error);
    if (!f || !each(*f)) return false;
  }
  return true;
}

// The number of values per image of a graph output (ValueInfoProto): the
// product of its known dimensions after the first (the batch); 0 when a
// dimension is symbolic or the shape is absent.
int64_t OutputsPerImage(std::string_view value_info, std::string* error) {
  std::vector<int64_t> dims;
  bool shaped = false;
  const bool ok = ForEachField(value_info, error, [&](const Wire::Field& type) {
    if (type.number != 2 || type.type != 2) return true;  // TypeProto
    return ForEachField(type.bytes, error, [&](const Wire::Field& tensor) {
      if (tensor.number != 1 || tensor.type != 2) return true;  // TypeProto.Tensor
      return ForEachField(tensor.bytes, error, [&](const Wire::Field& shape) {
        if (shape.number != 2 || shape.type != 2) return true;  // TensorShapeProto
        shaped = true;
        return ForEachField(shape.bytes, error, [&](const Wire::Field& dim) {
          if (dim.number != 1 || dim.type != 2) return true;  // Dimension
          std::optional<int64_t> value;
          const bool dim_ok = ForEachField(dim.bytes, error, [&](const Wire::Field& d) {
            if (d.number == 1 && d.type == 0) value = static_cast<int64_t>(d.varint);
            return true;
          });
          dims.push_back(value.value_or(-1));
          return dim_ok;
        });
      });
    });
  });
  if (!ok || !shaped || dims.size() < 2) return 0;
  int64_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i) {
    if (dims[i] <= 0 || n > (int64_t{1} << 31) / dims[i]) return 0;
    n *= dims[i];
  }
  return n;
}

}  // namespace

Status ApplyMarks(ModelInfo* info) {
  if (auto it = info->marks.find(kMarkName); it != info->marks.end() && !it->second.empty()) info->name = it->second;
  if (auto it = info->marks.find(kMarkUntrained); it != info->marks.end()) {
    std::string v = it->second;
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    info->untrained = !(v == "false" || v == "0" || v == "no");
  }
  if (auto it = info->marks.find(kMarkOutputs); it != info->marks.end()) {
    char* end = nullptr;
    const long n = std::strtol(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0' || n < 1 || n > 1000000) {
      return Status::Invalid(fmt::format("{} is '{}', not a number of outputs", kMarkOutputs, it->second));
    }
    info->outputs = static_cast<int>(n);
  }
  return Status::OK();
}

Status InspectOnnxBytes(std::string_view bytes, ModelInfo* info) {
  std::string error;
  bool graph = false, ir_version = false;
  int64_t outputs = 0;
  const bool ok = ForEachField(bytes, &error, [&](const Wire::Field& f) {
    if (f.number == 1 && f.type == 0) ir_version = true;
    if (f.number == 7 && f.type == 2) {  // GraphProto
      graph = true;
      bool first_output = true;
      return ForEachField(f.bytes, &error, [&](const Wire::Field& g) {
        if (g.number == 12 && g.type == 2 && first_output) {  // the first output: what Forward returns
          first_output = false;
          outputs = OutputsPerImage(g.bytes, &error);
          error.clear();  // an unreadable shape only means "not declared"
        }
        return true;
      });
    }
    if (f.number == 14 && f.type == 2) {  // StringStringEntryProto
      std::string key, value;
      if (!ForEachField(f.bytes, &error, [&](const Wire::Field& e) {
            if (e.type == 2 && e.number == 1) key = std::string(e.bytes);
            if (e.type == 2 && e.number == 2) value = std::string(e.bytes);
            return true;
          })) {
        return false;
      }
      if (key.rfind("medpipe.", 0) == 0) info->marks[key] = value;
    }
    return true;
  });
  if (!ok) return Status::Invalid("not an ONNX model (" + error + ")");
  if (!ir_version || !graph) return Status::Invalid("not an ONNX model (no ir_version or no graph)");
  info->outputs = static_cast<int>(outputs);
  return ApplyMarks(info);
}

Result<ModelInfo> InspectModel(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return Status::NotFound("model file not found: " + path.string());
  MEDPIPE_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  ModelInfo info;
  info.file = path.filename().string();
  info.name = info.file;
  info.sha256 = Sha256Hex(bytes);
  const std::string ext = LowerExtension(path);
  Status s;
  if (ext == ".onnx") {
    info.runtime = "onnx";
    s = InspectOnnxBytes(bytes, &info);
  } else if (ext == ".pt" || ext == ".pth" || ext == ".ts") {
    info.runtime = "torchscript";
    // torch_model.cc's library comes after this one when linking: it
    // reads the marks, this file applies them.
    s = InspectTorchScriptBytes(bytes, &info);
    if (s.ok()) s = ApplyMarks(&info);
  } else {
    return Status::Invalid("model " + path.string() +
                           ": unknown extension (expected .pt/.pth/.ts for TorchScript or .onnx for ONNX)");
  }
  if (!s.ok()) return Status::Invalid("model " + path.string() + ": not a loadable model: " + s.message());
  return info;
}

Status CheckDeclaredOutputs(const ModelInfo& info, size_t labels) {
  if (info.outputs == 0 || static_cast<size_t>(info.outputs) == labels) return Status::OK();
  return Status::Invalid(fmt::format("model {} gives {} outputs per image but {} labels are configured", info.file,
                                     info.outputs, labels));
}

}  // namespace medpipe
