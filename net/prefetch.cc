#include "net/prefetch.h"

#include <chrono>

namespace medpipe {

PrefetchQueue::PrefetchQueue(Fetcher* fetcher, std::vector<std::string> urls, std::vector<bool> wanted,
                             size_t window)
    : fetcher_(fetcher),
      urls_(std::move(urls)),
      next_wanted_(urls_.size() + 1, urls_.size()),
      window_(window),
      state_(urls_.size(), State::kIdle),
      results_(urls_.size()) {
  for (size_t i = urls_.size(); i-- > 0;) next_wanted_[i] = wanted[i] ? i : next_wanted_[i + 1];
}

PrefetchQueue::~PrefetchQueue() {
  fetcher_->CancelAll();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return in_flight_ == 0; });
  for (auto& r : results_) {
    if (r) r->Release();
  }
}

void PrefetchQueue::StartLocked(size_t i, std::vector<size_t>* to_start) {
  if (state_[i] != State::kIdle) return;
  state_[i] = State::kStarted;
  ++in_flight_;
  to_start->push_back(i);
}

FetchResult PrefetchQueue::Take(size_t i, const std::function<bool()>& cancelled) {
  std::vector<size_t> to_start;
  bool urgent = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    urgent = state_[i] == State::kIdle;
    StartLocked(i, &to_start);
    size_t n = 0;
    for (size_t j = next_wanted_[i + 1]; j < urls_.size() && n < window_; j = next_wanted_[j + 1], ++n) {
      StartLocked(j, &to_start);
    }
  }
  // Started outside the lock: a local file's callback runs inside Start.
  for (size_t k = 0; k < to_start.size(); ++k) {
    size_t j = to_start[k];
    fetcher_->Start(
        urls_[j],
        [this, j](FetchResult r) {
          std::lock_guard<std::mutex> lock(mu_);
          results_[j] = std::move(r);
          state_[j] = State::kDone;
          --in_flight_;
          cv_.notify_all();
        },
        /*urgent=*/urgent && j == i);
  }
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return state_[i] == State::kDone; })) {
    if (cancelled && cancelled()) {
      FetchResult r;
      r.status = Status::Cancelled("cancelled");
      r.reason = "cancelled";
      return r;  // the body, if it still comes, is deleted by the destructor
    }
  }
  state_[i] = State::kTaken;
  FetchResult r = std::move(*results_[i]);
  results_[i].reset();
  return r;
}

}  // namespace medpipe
