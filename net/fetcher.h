// The fetcher: many transfers at once on one libcurl multi handle.
//
// One background thread drives the multi handle; callers on any thread start
// fetches and get the result through a callback (or block in Fetch). The
// multi handle's connection cache gives connection reuse (and HTTP/2
// multiplexing where the server offers it); at most `concurrency` transfers
// run at once (fewer per host while it throttles, below), the rest wait in a
// queue per host where urgent requests go first.
//
// Failure policy, per attempt:
//   - 5xx, a timeout, a refused or reset connection, or a body shorter than
//     its Content-Length: retried up to `retries` times after an exponential
//     backoff with jitter (a cut-short body is a broken connection, so it is
//     retried like a reset; when the retries run out it is a failure, never a
//     file);
//   - 429 Too Many Requests and 503 (S3's SlowDown, or any overloaded
//     server) are throttles: retried like a 5xx, but after the server's
//     `Retry-After` when it sends one (delay-seconds or an HTTP-date, read by
//     libcurl; capped at `retry_after_max_seconds`), else after the same
//     backoff; and they lower the host's concurrency (below);
//   - other 4xx and anything else: final at once.
// Throttle answers share the `retries` budget with other transient failures;
// an item that runs out is Unavailable, so a rerun of the stage tries it
// again.
//
// Concurrency: at most `concurrency` transfers run at once in total, and per
// host (scheme://host:port of the request) at most that host's current limit.
// The limit starts at `concurrency` and follows an AIMD rule
// (net/throttle.h): a throttle answer halves it (floor 1, once per window
// of requests sent at the old limit), and each window of `limit` answers
// that are not throttles raises it by one, back up to `concurrency`. Queued
// requests of a throttled host wait; other hosts' requests go ahead of them.
// Bodies go to a temp file in `temp_dir`, which is handed back only after a
// complete, successful transfer; a failed attempt's file is deleted.
//
// Every message that leaves this layer names the URL redacted (no query
// string, no user:password) and passes through the Redactor holding every
// credential in use.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/credentials.h"
#include "net/source.h"
#include "net/throttle.h"
#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

struct FetchOptions {
  // Transfers at once. 64 keeps a 50 ms-latency link busy with objects of a
  // few hundred kB (64 / 0.05 s = 1,280 requests/s in flight).
  int concurrency = 64;
  double timeout_seconds = 120;        // per attempt, whole transfer
  double connect_timeout_seconds = 20;
  int retries = 4;                     // attempts after the first
  double backoff_initial_seconds = 0.5;
  double backoff_max_seconds = 30;
  // A Retry-After longer than this is cut to it, so that a misbehaving
  // server cannot park a transfer for hours.
  double retry_after_max_seconds = 120;
  fs::path temp_dir;                   // REQUIRED: where bodies land

  S3Endpoint s3;
  AwsCredentials aws;                  // empty: anonymous S3 requests
  HttpAuth dicomweb_auth;              // for WADO-RS URLs only
};

struct FetchedFile {
  fs::path path;
  bool owned = false;  // a temp file the consumer must delete (see Release)
};

struct FetchResult {
  Status status;
  // Short, stable reason for counters: "http_404", "http_429", "http_503", "timeout",
  // "short_body", "connection", "not_found", "invalid_url", "multipart",
  // "cancelled", "curl_<n>". "" when ok.
  std::string reason;
  std::vector<FetchedFile> files;  // one, or one per WADO-RS part
  int attempts = 0;
  long http_status = 0;

  // Deletes the owned files. Safe to call twice.
  void Release();
};

struct FetchStats {
  int64_t requests = 0;  // attempts sent
  int64_t retries = 0;
  int64_t bytes = 0;
  int64_t connects = 0;  // new connections opened (the rest reused one)
  int64_t throttled = 0;  // 429 and 503 answers (each also counts as a retry when retried)
  // The lowest per-host concurrency limit reached (`concurrency` when never
  // throttled).
  int lowest_concurrency = 0;
};

class Fetcher {
 public:
  using Callback = std::function<void(FetchResult)>;

  // Creates `options.temp_dir` if needed. kConfig on a bad option.
  static Result<std::unique_ptr<Fetcher>> Create(FetchOptions options);
  // Aborts what is still queued or running (their callbacks run with a
  // "cancelled" result) and joins the thread.
  ~Fetcher();

  // Starts fetching `url`. `done` runs exactly once, on the fetcher's thread
  // for network sources (keep it short: no blocking) or on the caller's
  // thread for local files and URLs that do not parse. `urgent` requests go
  // before the ones queued for the same host. Thread-safe.
  void Start(const std::string& url, Callback done, bool urgent = false);

  // Start and wait.
  FetchResult Fetch(const std::string& url);

  // Fails everything queued or running with "cancelled". Thread-safe.
  void CancelAll();

  FetchStats stats() const;
  const Redactor& redactor() const { return redactor_; }

 // Internal: one object's transfer state, owned by the loop thread.
  struct Transfer;

 private:
  explicit Fetcher(FetchOptions options);
  void Loop();
  Status Begin(Transfer* t);
  void Finish(Transfer* t, int curl_code);
  void Complete(std::unique_ptr<Transfer> t, FetchResult r);
  std::string Message(const Transfer& t, const std::string& what) const;
  double BackoffSeconds(int attempt);
  // One server's share of the transfers (loop thread only).
  struct Host {
    // Both in fetcher.cc, where Transfer is complete.
    explicit Host(int max);
    ~Host();
    std::deque<std::unique_ptr<Transfer>> pending;  // not started yet, urgent first
    int running = 0;
    ConcurrencyLimit limit;
  };
  Host& HostOf(const Transfer& t);
  void StartTransfer(std::unique_ptr<Transfer> t);
  void FillSlots();

  const FetchOptions options_;
  Redactor redactor_;
  void* multi_ = nullptr;  // CURLM*, owned by the loop thread after start

  mutable std::mutex mu_;
  std::deque<std::unique_ptr<Transfer>> queue_;  // guarded by mu_
  bool stopping_ = false;                        // guarded by mu_
  bool cancel_all_ = false;                      // guarded by mu_

  // Loop-thread state. A transfer is in exactly one place: a host's pending
  // queue, running_, or waiting_.
  std::vector<std::unique_ptr<Transfer>> running_;
  std::vector<std::unique_ptr<Transfer>> waiting_;  // backing off before a retry
  std::map<std::string, Host> hosts_;
  size_t next_host_ = 0;  // round-robin start among hosts when filling slots

  std::atomic<int64_t> requests_{0}, retries_{0}, bytes_{0}, connects_{0}, throttled_{0};
  std::atomic<int> lowest_concurrency_;
  std::atomic<uint64_t> next_temp_{0};
  std::thread thread_;
};

}  // namespace medpipe
