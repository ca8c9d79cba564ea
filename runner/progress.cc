#include "runner/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "runner/checkpoint.h"
#include "util/strings.h"

namespace medpipe {

namespace {

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double SecondsSince(int64_t start_ns) { return static_cast<double>(SteadyNowNs() - start_ns) / 1e9; }

}  // namespace

Progress::Progress(std::string stage_id) : stage_id_(std::move(stage_id)), start_ns_(SteadyNowNs()) {}

void Progress::StartPass(int64_t total) {
  done_.store(0);
  resumed_.store(0);
  total_.store(total);
  start_ns_.store(SteadyNowNs());
}

double Progress::Rate() const {
  double secs = SecondsSince(start_ns_.load());
  int64_t fresh = done_.load() - resumed_.load();
  return secs > 0 ? fresh / secs : 0;
}

double Progress::EtaSeconds() const {
  double rate = Rate();
  int64_t left = total() - done();
  if (left <= 0) return 0;
  return rate > 0 ? left / rate : -1;
}

std::string Progress::Line() const {
  double secs = SecondsSince(start_ns_.load());
  // Passes reset the counters together, but the drawing thread may read
  // them mid-reset: a count shown never passes its total.
  int64_t total = this->total(), done = std::min(this->done(), total);
  if (total <= 0) return fmt::format("  {:<20} running {}", stage_id_, HumanDuration(secs));
  double eta = EtaSeconds();
  int64_t resumed = resumed_.load();
  return fmt::format("  {:<20} {}/{} ({:.0f}%)  {:.0f}/s{}  {}", stage_id_, done, total, 100.0 * done / total, Rate(),
                     resumed > 0 ? fmt::format(" ({} resumed)", resumed) : "",
                     eta > 0 ? "ETA " + HumanDuration(eta) : "");
}

namespace {

// The terminal's width in columns, or 0 when stderr is not a terminal.
size_t TerminalWidth() {
  struct winsize ws;
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) != 0) return 0;
  return ws.ws_col;
}

}  // namespace

ProgressBoard::ProgressBoard(bool live, const std::string& log_path, std::chrono::milliseconds plain_interval)
    : live_(live), plain_interval_(plain_interval) {
  if (!log_path.empty()) run_log_.open(log_path, std::ios::app);
  if (live_) {
    thread_ = std::thread([this] { Loop(); });
  } else if (plain_interval_.count() > 0) {
    thread_ = std::thread([this] { PlainLoop(); });
  }
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
  // A wrapped line would take two rows and break the cursor arithmetic of
  // ClearLocked: cut every line to the width (one column spare).
  size_t width = TerminalWidth();
  for (const auto& p : active_) {
    std::string line = p->Line();
    if (width > 1 && line.size() >= width) line.resize(width - 1);
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  drawn_ = active_.size();
  std::fflush(stderr);
}

void ProgressBoard::PlainLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, plain_interval_);
    if (stop_) break;
    for (const auto& p : active_) std::fprintf(stderr, "progress%s\n", p->Line().c_str());
    std::fflush(stderr);
  }
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
