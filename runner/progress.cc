#include "runner/progress.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "runner/checkpoint.h"
#include "util/strings.h"

namespace medpipe {

Progress::Progress(std::string stage_id) : stage_id_(std::move(stage_id)), start_(std::chrono::steady_clock::now()) {}

std::string Progress::Line() const {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  int64_t done = this->done(), total = this->total();
  if (total <= 0) return fmt::format("  {:<20} running {}", stage_id_, HumanDuration(secs));
  double rate = secs > 0 ? done / secs : 0;
  std::string eta = rate > 0 && done < total ? "ETA " + HumanDuration((total - done) / rate) : "";
  return fmt::format("  {:<20} {}/{} ({:.0f}%)  {:.0f}/s  {}", stage_id_, done, total, 100.0 * done / total, rate, eta);
}

ProgressBoard::ProgressBoard(bool live, const std::string& log_path) : live_(live) {
  if (!log_path.empty()) run_log_.open(log_path, std::ios::app);
  if (live_) thread_ = std::thread([this] { Loop(); });
}

ProgressBoard::~ProgressBoard() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (live_) ClearLocked();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<Progress> ProgressBoard::Begin(const std::string& stage_id) {
  auto p = std::make_shared<Progress>(stage_id);
  std::lock_guard<std::mutex> lock(mu_);
  active_.push_back(p);
  return p;
}

void ProgressBoard::End(const std::shared_ptr<Progress>& progress) {
  std::lock_guard<std::mutex> lock(mu_);
  if (live_) ClearLocked();
  active_.erase(std::remove(active_.begin(), active_.end(), progress), active_.end());
  if (live_) DrawLocked();
}

void ProgressBoard::Log(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (live_) ClearLocked();
  std::fprintf(stderr, "%s\n", line.c_str());
  if (run_log_.is_open()) run_log_ << UtcNow() << " " << line << "\n" << std::flush;
  if (live_) DrawLocked();
}

void ProgressBoard::ClearLocked() {
  // Move up over the progress lines and erase them.
  for (size_t i = 0; i < drawn_; ++i) std::fputs("\x1b[1A\x1b[2K", stderr);
  drawn_ = 0;
}

void ProgressBoard::DrawLocked() {
  for (const auto& p : active_) std::fprintf(stderr, "%s\n", p->Line().c_str());
  drawn_ = active_.size();
  std::fflush(stderr);
}

void ProgressBoard::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(250));
    if (stop_) break;
    ClearLocked();
    DrawLocked();
  }
}

}  // namespace medpipe
