// The fetcher: many transfers at once on one libcurl multi handle.
//
// One background thread drives the multi handle; callers on any thread start
// fetches and get the result through a callback (or block in Fetch). The
// multi handle's connection cache gives connection reuse (and HTTP/2
// multiplexing where the server offers it); at most `concurrency` transfers
// run at once, the rest wait in a queue where urgent requests go first.
//
// Failure policy, per attempt:
//   - 5xx, a timeout, a refused or reset connection, or a body shorter than
//     its Content-Length: retried up to `retries` times after an exponential
//     backoff with jitter (a cut-short body is a broken connection, so it is
//     retried like a reset; when the retries run out it is a failure, never a
//     file);
//   - 4xx and anything else: final at once.
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
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/credentials.h"
#include "net/source.h"
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
  // Short, stable reason for counters: "http_404", "http_503", "timeout",
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
  // before the queued ones. Thread-safe.
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

  const FetchOptions options_;
  Redactor redactor_;
  void* multi_ = nullptr;  // CURLM*, owned by the loop thread after start

  mutable std::mutex mu_;
  std::deque<std::unique_ptr<Transfer>> queue_;  // guarded by mu_
  bool stopping_ = false;                        // guarded by mu_
  bool cancel_all_ = false;                      // guarded by mu_

  // Loop-thread state.
  std::vector<std::unique_ptr<Transfer>> running_;
  std::vector<std::unique_ptr<Transfer>> waiting_;  // backing off before a retry

  std::atomic<int64_t> requests_{0}, retries_{0}, bytes_{0}, connects_{0};
  std::atomic<uint64_t> next_temp_{0};
  std::thread thread_;
};

}  // namespace medpipe
