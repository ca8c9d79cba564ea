// Progress and log output of a run.
//
// On a terminal, one live line per running stage (items done/total, rate,
// ETA) redrawn a few times a second below the log, cut to the terminal's
// width so it never wraps; otherwise (nohup, CI, Slurm) the same line is
// printed as a plain log line every few seconds. Every log line also goes to
// the run log in the workdir.
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
  // A new pass over `total` items (a stage's second RunItems call, a Slurm
  // worker's shard): done, resumed and the rate start again from zero, so a
  // count never runs past its total.
  void StartPass(int64_t total);
  // An item done in this attempt.
  void Advance(int64_t n = 1) { done_.fetch_add(n); }
  // An item taken from an earlier attempt's journal: it counts towards done
  // but not towards the rate, or a resumed stage would promise an ETA from
  // items it never did.
  void AdvanceResumed(int64_t n = 1) {
    done_.fetch_add(n);
    resumed_.fetch_add(n);
  }
  int64_t done() const { return done_.load(); }
  int64_t total() const { return total_.load(); }
  const std::string& stage_id() const { return stage_id_; }
  // Items per second done in this attempt, and the seconds left at that rate
  // (negative when unknown).
  double Rate() const;
  double EtaSeconds() const;
  // "annotate  1200/20000 (6%)  850/s  ETA 19 s"
  std::string Line() const;

 private:
  std::string stage_id_;
  std::atomic<int64_t> start_ns_;  // of this pass, steady clock; atomic: the drawing thread reads it
  std::atomic<int64_t> done_{0};
  std::atomic<int64_t> resumed_{0};
  std::atomic<int64_t> total_{0};
};

class ProgressBoard {
 public:
  // `live` draws progress lines (for a terminal); otherwise, when
  // `plain_interval` is positive, the progress lines are logged that often.
  // `log_path` may be empty.
  ProgressBoard(bool live, const std::string& log_path,
                std::chrono::milliseconds plain_interval = std::chrono::milliseconds(0));
  ~ProgressBoard();

  std::shared_ptr<Progress> Begin(const std::string& stage_id);
  void End(const std::shared_ptr<Progress>& progress);
  // Prints a log line (to stderr and the run log). Thread-safe.
  void Log(const std::string& line);

 private:
  void Loop();
  void ClearLocked();
  void DrawLocked();

  void PlainLoop();

  const bool live_;
  const std::chrono::milliseconds plain_interval_;
  std::ofstream run_log_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  size_t drawn_ = 0;  // progress lines on screen below the log
  std::vector<std::shared_ptr<Progress>> active_;
  std::thread thread_;
};

}  // namespace medpipe
