// The per-host concurrency limit the fetcher lowers when a server throttles
// it (HTTP 429, or 503 such as S3's SlowDown) and raises again while it
// answers normally: additive increase, multiplicative decrease (AIMD), the
// rule TCP uses against congestion, for the same reason: every client that
// backs off hard and probes back slowly lets a shared server recover, and
// the limit settles just under what the server accepts.
//
// The rule, with `max` the configured concurrency:
//   - a throttle answer halves the limit (rounded down, floor 1), but only
//     once per "epoch": requests already in flight when the limit was cut
//     were sent at the old rate, so their throttle answers are the same
//     event and do not cut again (without this, 64 requests answered 503 at
//     once would drive the limit to 1 instead of 32);
//   - after `limit` consecutive answers that are not throttles (one full
//     window at the current limit), the limit grows by 1, up to `max`.
//
// Not thread-safe: the fetcher's loop thread owns every instance.
#pragma once

#include <cstdint>

namespace medpipe {

class ConcurrencyLimit {
 public:
  // REQUIRES: max >= 1.
  explicit ConcurrencyLimit(int max) : max_(max), limit_(max), lowest_(max) {}

  // Requests that may run at once now.
  int limit() const { return limit_; }
  // The lowest limit ever reached (max when never throttled).
  int lowest() const { return lowest_; }
  // The epoch a request starting now belongs to; pass it back to OnThrottle.
  uint64_t epoch() const { return epoch_; }

  // A throttle answer to a request started in `epoch`. Returns true when it
  // cut the limit, false when the cut for that epoch was already made.
  bool OnThrottle(uint64_t epoch) {
    successes_ = 0;
    if (epoch != epoch_) return false;
    limit_ = limit_ > 1 ? limit_ / 2 : 1;
    if (limit_ < lowest_) lowest_ = limit_;
    ++epoch_;
    return true;
  }

  // An answer that is not a throttle (any status the server chose to give).
  void OnSuccess() {
    if (limit_ >= max_) return;
    if (++successes_ >= limit_) {
      ++limit_;
      successes_ = 0;
    }
  }

 private:
  int max_;
  int limit_;
  int lowest_;
  int successes_ = 0;
  uint64_t epoch_ = 0;
};

}  // namespace medpipe
