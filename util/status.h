// Status and Result: the error values that cross every module boundary.
//
// Expected failures (a bad file, a missing input, a config error) are values,
// as in LevelDB and DuckDB; exceptions are reserved for what ends the run and
// are turned into a Status at one adapter in the runner.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace medpipe {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kNotFound,     // a file, item or stage that does not exist
    kInvalid,      // bad input data: a corrupt file, a malformed row
    kConfig,       // the pipeline file or the command line is wrong
    kIOError,      // the environment failed: disk full, permission denied
    kCorruption,   // a checkpoint or journal that cannot be trusted
    kCancelled,    // the user interrupted the run
    kFailed,       // a stage ran and decided the result is not acceptable
    kUnavailable,  // a transient failure (timeout, 5xx, reset): worth retrying later
  };

  Status() = default;
  static Status OK() { return Status(); }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status Invalid(std::string msg) { return {Code::kInvalid, std::move(msg)}; }
  static Status Config(std::string msg) { return {Code::kConfig, std::move(msg)}; }
  static Status IOError(std::string msg) { return {Code::kIOError, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status Cancelled(std::string msg) { return {Code::kCancelled, std::move(msg)}; }
  static Status Failed(std::string msg) { return {Code::kFailed, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "IO error: <message>" and the like; "OK" when ok().
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(const std::string& context) const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status that explains its absence.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}             // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}     // NOLINT
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  // REQUIRES: ok().
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  // The value, or `fallback` when !ok().
  T value_or(T fallback) const& { return ok() ? *value_ : std::move(fallback); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace medpipe

#define MEDPIPE_RETURN_IF_ERROR(expr)          \
  do {                                         \
    ::medpipe::Status _st = (expr);            \
    if (!_st.ok()) return _st;                 \
  } while (0)

#define MEDPIPE_CONCAT_INNER(a, b) a##b
#define MEDPIPE_CONCAT(a, b) MEDPIPE_CONCAT_INNER(a, b)
#define MEDPIPE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
#define MEDPIPE_ASSIGN_OR_RETURN(lhs, expr) \
  MEDPIPE_ASSIGN_OR_RETURN_IMPL(MEDPIPE_CONCAT(_res_, __LINE__), lhs, expr)
