#include "util/status.h"

namespace medpipe {

namespace {
const char* CodeName(Status::Code code) {
  switch (code) {
    case Status::Code::kOk: return "OK";
    case Status::Code::kNotFound: return "not found";
    case Status::Code::kInvalid: return "invalid input";
    case Status::Code::kConfig: return "config error";
    case Status::Code::kIOError: return "I/O error";
    case Status::Code::kCorruption: return "corruption";
    case Status::Code::kCancelled: return "cancelled";
    case Status::Code::kFailed: return "failed";
    case Status::Code::kUnavailable: return "unavailable";
  }
  return "unknown";
}
}  // namespace

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code_)) + ": " + message_;
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

}  // namespace medpipe
