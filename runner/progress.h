// Progress and log output of a run.
//
// On a terminal, one live line per running stage (items done/total, rate,
// ETA) redrawn a few times a second below the log; otherwise plain log lines
// only. Every log line also goes to the run log in the workdir.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace medpipe {

// Counters of one running stage. Thread-safe.
class Progress {
 public:
  explicit Progress(std::string stage_id);
  void SetTotal(int64_t total) { total_.store(total); }
  void Advance(int64_t n = 1) { done_.fetch_add(n); }
  int64_t done() const { return done_.load(); }
  int64_t total() const { return total_.load(); }
  const std::string& stage_id() const { return stage_id_; }
  // "annotate  1200/20000  850/s  ETA 19 s"
  std::string Line() const;

 private:
  std::string stage_id_;
  std::chrono::steady_clock::time_point start_;
  std::atomic<int64_t> done_{0};
  std::atomic<int64_t> total_{0};
};

class ProgressBoard {
 public:
  // `live` draws progress lines (for a terminal). `log_path` may be empty.
  ProgressBoard(bool live, const std::string& log_path);
  ~ProgressBoard();

  std::shared_ptr<Progress> Begin(const std::string& stage_id);
  void End(const std::shared_ptr<Progress>& progress);
  // Prints a log line (to stderr and the run log). Thread-safe.
  void Log(const std::string& line);

 private:
  void Loop();
  void ClearLocked();
  void DrawLocked();

  const bool live_;
  std::ofstream run_log_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  size_t drawn_ = 0;  // progress lines on screen below the log
  std::vector<std::shared_ptr<Progress>> active_;
  std::thread thread_;
};

}  // namespace medpipe
