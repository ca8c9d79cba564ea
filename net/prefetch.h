// Fetching ahead of a consumer that takes a list of URLs roughly in order.
//
// The download stage runs its items through StageContext::RunItems, whose
// per-item work runs on the TBB arena: two threads on a 2-core machine, so a
// work function that fetched its own object would keep only two transfers in
// flight. Instead each Take(i) starts item i (urgently) and the next `window`
// wanted items after it, so every consuming thread has a run of fetches in
// flight ahead of it; tbb::parallel_for walks each of its subranges in index
// order, which is what makes the lookahead hit. Items that are not `wanted`
// (already done per the stage's journal) are never fetched ahead; if asked
// for anyway they are fetched on demand.
//
// Memory and disk stay bounded: at most about threads x window bodies wait
// in temp files. Thread-safe.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "net/fetcher.h"

namespace medpipe {

class PrefetchQueue {
 public:
  // REQUIRES: `fetcher` outlives the queue; urls.size() == wanted.size().
  PrefetchQueue(Fetcher* fetcher, std::vector<std::string> urls, std::vector<bool> wanted, size_t window);
  // Cancels what is in flight, waits for every callback, deletes the bodies
  // nobody took.
  ~PrefetchQueue();

  // Blocks until item i's fetch has finished and hands its result over (the
  // caller owns and must Release its files). Each index once. Returns a
  // "cancelled" result early when `cancelled` (polled) turns true.
  FetchResult Take(size_t i, const std::function<bool()>& cancelled = nullptr);

 private:
  enum class State { kIdle, kStarted, kDone, kTaken };
  void StartLocked(size_t i, std::vector<size_t>* to_start);

  Fetcher* const fetcher_;
  const std::vector<std::string> urls_;
  std::vector<size_t> next_wanted_;  // next_wanted_[i]: first wanted index >= i, or size()
  const size_t window_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<State> state_;
  std::vector<std::optional<FetchResult>> results_;
  size_t in_flight_ = 0;
};

}  // namespace medpipe
