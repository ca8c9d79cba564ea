#include "net/fetcher.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <future>
#include <mutex>
#include <random>

#include "net/multipart.h"

namespace medpipe {

namespace {

using Clock = std::chrono::steady_clock;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The first <Code>...</Code> of an S3 error body, for messages ("AccessDenied").
std::string S3ErrorCode(const fs::path& body) {
  FILE* f = std::fopen(body.c_str(), "rb");
  if (!f) return "";
  char buf[4096];
  size_t n = std::fread(buf, 1, sizeof buf, f);
  std::fclose(f);
  std::string_view text(buf, n);
  size_t a = text.find("<Code>"), b = text.find("</Code>");
  if (a == std::string_view::npos || b == std::string_view::npos || b < a) return "";
  std::string code(text.substr(a + 6, std::min<size_t>(b - a - 6, 64)));
  for (char c : code) {
    if (!std::isalnum(static_cast<unsigned char>(c))) return "";
  }
  return code;
}

// The server a request goes to, as "scheme://host:port" (userinfo dropped),
// the unit of the per-host concurrency limit.
std::string HostKey(const std::string& url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return url;
  size_t start = scheme_end + 3;
  size_t end = url.find_first_of("/?#", start);
  std::string authority = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (size_t at = authority.rfind('@'); at != std::string::npos) authority = authority.substr(at + 1);
  return url.substr(0, start) + authority;
}

}  // namespace

struct Fetcher::Transfer {
  std::string url;  // as given
  Source source;
  std::string request_url;
  Callback done;
  std::string host;    // HostKey(request_url)
  bool urgent = false;
  uint64_t epoch = 0;  // the host's ConcurrencyLimit epoch when this attempt began
  int attempt = 0;
  Clock::time_point due;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  FILE* file = nullptr;
  fs::path tmp;
  int64_t written = 0;
  bool write_failed = false;
  char errbuf[CURL_ERROR_SIZE] = {0};

  void CloseFile() {
    if (file) std::fclose(file);
    file = nullptr;
  }
  void DropFile() {
    CloseFile();
    std::error_code ec;
    if (!tmp.empty()) fs::remove(tmp, ec);
    tmp.clear();
  }
};

namespace {

size_t WriteToFile(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Fetcher::Transfer*>(user);
  size_t bytes = size * n;
  if (std::fwrite(data, 1, bytes, t->file) != bytes) {
    t->write_failed = true;
    return 0;
  }
  t->written += static_cast<int64_t>(bytes);
  return bytes;
}

}  // namespace

void FetchResult::Release() {
  std::error_code ec;
  for (auto& f : files) {
    if (f.owned) fs::remove(f.path, ec);
    f.owned = false;
  }
}

Result<std::unique_ptr<Fetcher>> Fetcher::Create(FetchOptions options) {
  if (options.concurrency < 1) return Status::Config("concurrency must be at least 1");
  if (options.timeout_seconds <= 0) return Status::Config("timeout_seconds must be positive");
  if (options.retries < 0) return Status::Config("retries must not be negative");
  if (options.temp_dir.empty()) return Status::Config("the fetcher needs a temp folder");
  std::error_code ec;
  fs::create_directories(options.temp_dir, ec);
  if (ec) return Status::IOError(options.temp_dir.string() + ": cannot create: " + ec.message());
  GlobalInit();
  std::unique_ptr<Fetcher> f(new Fetcher(std::move(options)));
  if (!f->multi_) return Status::IOError("curl_multi_init failed");
  f->thread_ = std::thread([p = f.get()] { p->Loop(); });
  return f;
}

Fetcher::Fetcher(FetchOptions options) : options_(std::move(options)) {
  redactor_.Add(options_.aws.access_key_id);
  redactor_.Add(options_.aws.secret_access_key);
  redactor_.Add(options_.aws.session_token);
  redactor_.Add(options_.dicomweb_auth.password);
  redactor_.Add(options_.dicomweb_auth.token);
  CURLM* m = curl_multi_init();
  if (m) {
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, static_cast<long>(options_.concurrency));
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(options_.concurrency));
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, static_cast<long>(options_.concurrency) * 2);
  }
  multi_ = m;
  lowest_concurrency_.store(options_.concurrency);
}

Fetcher::~Fetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  if (multi_) curl_multi_wakeup(static_cast<CURLM*>(multi_));
  if (thread_.joinable()) thread_.join();
  if (multi_) curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

void Fetcher::Start(const std::string& url, Callback done, bool urgent) {
  auto t = std::make_unique<Transfer>();
  t->url = url;
  t->done = std::move(done);
  Result<Source> src = ParseSource(url);
  if (!src.ok()) {
    FetchResult r;
    r.status = Status::Invalid(redactor_.Redact(src.status().message()));
    r.reason = "invalid_url";
    t->done(std::move(r));
    return;
  }
  t->source = std::move(src).value();
  if (t->source.kind == SourceKind::kLocal) {
    // Local files are read in place: no copy, nothing to retry.
    FetchResult r;
    r.attempts = 1;
    std::error_code ec;
    if (fs::is_regular_file(t->source.path, ec)) {
      r.files.push_back(FetchedFile{t->source.path, false});
    } else {
      r.status = Status::NotFound(redactor_.Redact(t->source.path.string() + ": no such file"));
      r.reason = "not_found";
    }
    t->done(std::move(r));
    return;
  }
  t->request_url = t->source.kind == SourceKind::kS3 ? S3HttpUrl(t->source.s3, options_.s3) : url;
  t->host = HostKey(t->request_url);
  t->urgent = urgent;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (urgent) {
      queue_.push_front(std::move(t));
    } else {
      queue_.push_back(std::move(t));
    }
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

FetchResult Fetcher::Fetch(const std::string& url) {
  std::promise<FetchResult> p;
  std::future<FetchResult> f = p.get_future();
  Start(url, [&p](FetchResult r) { p.set_value(std::move(r)); }, /*urgent=*/true);
  return f.get();
}

void Fetcher::CancelAll() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancel_all_ = true;
  }
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

FetchStats Fetcher::stats() const {
  FetchStats s;
  s.requests = requests_.load();
  s.retries = retries_.load();
  s.bytes = bytes_.load();
  s.connects = connects_.load();
  s.throttled = throttled_.load();
  s.lowest_concurrency = lowest_concurrency_.load();
  return s;
}

std::string Fetcher::Message(const Transfer& t, const std::string& what) const {
  return redactor_.Redact(fmt::format("GET {}: {} (attempt {} of {})", RedactUrl(t.url), what, t.attempt,
                                      options_.retries + 1));
}

double Fetcher::BackoffSeconds(int attempt) {
  // "Equal jitter": half the exponential delay, plus up to the other half at
  // random, so clients that failed together do not retry together.
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  double d = std::min(options_.backoff_max_seconds, options_.backoff_initial_seconds * std::pow(2.0, attempt - 1));
  return d / 2 + std::uniform_real_distribution<double>(0, d / 2)(rng);
}

Status Fetcher::Begin(Transfer* t) {
  t->attempt++;
  t->written = 0;
  t->write_failed = false;
  t->errbuf[0] = 0;
  requests_.fetch_add(1);
  t->tmp = options_.temp_dir / fmt::format("{}-{}.part", ::getpid(), next_temp_.fetch_add(1));
  t->file = std::fopen(t->tmp.c_str(), "wb");
  if (!t->file) return Status::IOError(t->tmp.string() + ": cannot create a temp file");
  CURL* e = curl_easy_init();
  if (!e) return Status::IOError("curl_easy_init failed");
  t->easy = e;
  curl_easy_setopt(e, CURLOPT_URL, t->request_url.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, WriteToFile);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout_seconds * 1000));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_seconds * 1000));
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_USERAGENT, "medpipe/0.1");
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  if (t->source.kind == SourceKind::kS3 && !options_.aws.empty()) {
    const std::string sigv4 = "aws:amz:" + options_.s3.region + ":s3";
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(e, CURLOPT_USERNAME, options_.aws.access_key_id.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, options_.aws.secret_access_key.c_str());
    // libcurl 7.88 signs the empty-body hash but sends no
    // x-amz-content-sha256, which S3 requires; given here, it is signed too
    // (KNOWN.md).
    t->headers = curl_slist_append(t->headers, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (!options_.aws.session_token.empty()) {
      t->headers = curl_slist_append(t->headers, ("x-amz-security-token: " + options_.aws.session_token).c_str());
    }
  }
  if (t->source.kind == SourceKind::kDicomWeb) {
    t->headers = curl_slist_append(t->headers, "Accept: multipart/related; type=\"application/dicom\"; transfer-syntax=*");
    const HttpAuth& a = options_.dicomweb_auth;
    if (a.kind == HttpAuthKind::kBasic) {
      curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
      curl_easy_setopt(e, CURLOPT_USERNAME, a.username.c_str());
      curl_easy_setopt(e, CURLOPT_PASSWORD, a.password.c_str());
    } else if (a.kind == HttpAuthKind::kBearer) {
      curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
      curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, a.token.c_str());
    }
  }
  if (t->headers) curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  if (curl_multi_add_handle(static_cast<CURLM*>(multi_), e) != CURLM_OK) {
    return Status::IOError("curl_multi_add_handle failed");
  }
  return Status::OK();
}

void Fetcher::Finish(Transfer* t, int curl_code) {
  CURL* e = t->easy;
  long http = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http);
  curl_off_t content_length = -1;
  curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &content_length);
  char* ct = nullptr;
  curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
  std::string content_type = ct ? ct : "";
  long connects = 0;
  curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects);
  connects_.fetch_add(connects);
  // Seconds from a Retry-After header, either form (libcurl turns an
  // HTTP-date into seconds from now); 0 when absent, negative for a past date.
  curl_off_t retry_after = 0;
  curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &retry_after);
  curl_multi_remove_handle(static_cast<CURLM*>(multi_), e);
  curl_easy_cleanup(e);
  t->easy = nullptr;
  curl_slist_free_all(t->headers);
  t->headers = nullptr;
  t->CloseFile();
  bytes_.fetch_add(t->written);

  auto it = std::find_if(running_.begin(), running_.end(), [t](const auto& p) { return p.get() == t; });
  std::unique_ptr<Transfer> owned = std::move(*it);
  running_.erase(it);
  Host& host = HostOf(*t);
  host.running--;

  // Throttle answers cut the host's limit; any other answer from the server
  // counts towards raising it again. Transport failures are neither.
  const bool throttle = curl_code == CURLE_OK && (http == 429 || http == 503);
  if (throttle) {
    throttled_.fetch_add(1);
    if (host.limit.OnThrottle(t->epoch)) {
      int low = lowest_concurrency_.load();
      while (host.limit.limit() < low && !lowest_concurrency_.compare_exchange_weak(low, host.limit.limit())) {
      }
    }
  } else if (curl_code == CURLE_OK && http > 0) {
    host.limit.OnSuccess();
  }

  FetchResult r;
  r.attempts = t->attempt;
  r.http_status = http;
  bool retryable = false;
  const auto code = static_cast<CURLcode>(curl_code);
  const std::string curl_text = t->errbuf[0] ? std::string(t->errbuf) : std::string(curl_easy_strerror(code));
  if (t->write_failed) {
    r.status = Status::IOError(Message(*t, "cannot write the body to " + t->tmp.string()));
    r.reason = "temp_write";
  } else if (code == CURLE_OK && http >= 200 && http < 300) {
    if (content_length >= 0 && content_length != t->written) {
      retryable = true;
      r.reason = "short_body";
      r.status = Status::Invalid(
          Message(*t, fmt::format("body of {} bytes, Content-Length says {}", t->written, content_length)));
    }
  } else if (code == CURLE_OK) {
    retryable = (http >= 500 && http < 600) || http == 429;
    r.reason = fmt::format("http_{}", http);
    std::string what = fmt::format("HTTP {}", http);
    if (t->source.kind == SourceKind::kS3) {
      if (std::string s3 = S3ErrorCode(t->tmp); !s3.empty()) what += " " + s3;
    }
    r.status = http == 404 ? Status::NotFound(Message(*t, what)) : Status::Invalid(Message(*t, what));
  } else {
    switch (code) {
      case CURLE_OPERATION_TIMEDOUT:
        retryable = true;
        r.reason = "timeout";
        break;
      case CURLE_PARTIAL_FILE:
        retryable = true;
        r.reason = "short_body";
        break;
      case CURLE_COULDNT_CONNECT:
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
      case CURLE_SSL_CONNECT_ERROR:
        retryable = true;
        r.reason = "connection";
        break;
      case CURLE_COULDNT_RESOLVE_HOST:
        r.reason = "dns";
        break;
      default:
        r.reason = fmt::format("curl_{}", static_cast<int>(code));
    }
    r.status = Status::Invalid(Message(*t, curl_text));
  }

  if (r.status.ok()) {
    if (t->source.kind == SourceKind::kDicomWeb && content_type.rfind("multipart/", 0) == 0) {
      fs::path prefix = t->tmp;
      prefix += "-";
      Result<std::vector<fs::path>> parts = SplitMultipartFile(t->tmp, MultipartBoundary(content_type), prefix);
      std::error_code ec;
      fs::remove(t->tmp, ec);
      t->tmp.clear();
      if (!parts.ok()) {
        r.status = parts.status().code() == Status::Code::kIOError ? parts.status()
                                                                   : Status::Invalid(Message(*t, parts.status().message()));
        r.reason = "multipart";
      } else {
        for (auto& p : *parts) r.files.push_back(FetchedFile{p, true});
      }
    } else {
      r.files.push_back(FetchedFile{t->tmp, true});
      t->tmp.clear();
    }
    Complete(std::move(owned), std::move(r));
    return;
  }
  t->DropFile();
  if (retryable && t->attempt <= options_.retries) {
    retries_.fetch_add(1);
    double delay = BackoffSeconds(t->attempt);
    if (throttle && retry_after > 0) delay = std::min(static_cast<double>(retry_after), options_.retry_after_max_seconds);
    t->due = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(delay));
    waiting_.push_back(std::move(owned));
    return;
  }
  // Out of retries on a transient failure: Unavailable, so the item is not
  // resumed as failed and the next run of the stage retries it alone.
  if (retryable) r.status = Status::Unavailable(r.status.message());
  Complete(std::move(owned), std::move(r));
}

void Fetcher::Complete(std::unique_ptr<Transfer> t, FetchResult r) {
  if (t->easy) {
    curl_multi_remove_handle(static_cast<CURLM*>(multi_), t->easy);
    curl_easy_cleanup(t->easy);
    t->easy = nullptr;
  }
  curl_slist_free_all(t->headers);
  t->headers = nullptr;
  t->DropFile();
  r.attempts = std::max(r.attempts, t->attempt);
  Callback done = std::move(t->done);
  t.reset();
  done(std::move(r));
}

Fetcher::Host::Host(int max) : limit(max) {}
Fetcher::Host::~Host() = default;

Fetcher::Host& Fetcher::HostOf(const Transfer& t) {
  return hosts_.try_emplace(t.host, options_.concurrency).first->second;
}

void Fetcher::StartTransfer(std::unique_ptr<Transfer> t) {
  Host& host = HostOf(*t);
  host.running++;
  t->epoch = host.limit.epoch();
  Transfer* raw = t.get();
  running_.push_back(std::move(t));
  if (Status s = Begin(raw); !s.ok()) {
    auto it = std::find_if(running_.begin(), running_.end(), [raw](const auto& p) { return p.get() == raw; });
    std::unique_ptr<Transfer> owned = std::move(*it);
    running_.erase(it);
    host.running--;
    FetchResult r;
    r.status = s;
    r.reason = "temp_write";
    Complete(std::move(owned), std::move(r));
  }
}

void Fetcher::FillSlots() {
  // Round robin over the hosts, one transfer each per pass, starting one
  // host further each time, so that a host with a long queue cannot starve
  // another and a throttled host's queue waits without blocking the rest.
  const size_t total = static_cast<size_t>(options_.concurrency);
  if (hosts_.empty()) return;
  while (running_.size() < total) {
    bool started = false;
    auto it = std::next(hosts_.begin(), static_cast<std::ptrdiff_t>(next_host_ % hosts_.size()));
    for (size_t k = 0; k < hosts_.size() && running_.size() < total; ++k) {
      Host& h = it->second;
      if (!h.pending.empty() && h.running < h.limit.limit()) {
        std::unique_ptr<Transfer> t = std::move(h.pending.front());
        h.pending.pop_front();
        StartTransfer(std::move(t));
        started = true;
      }
      if (++it == hosts_.end()) it = hosts_.begin();
    }
    next_host_ = (next_host_ + 1) % hosts_.size();
    if (!started) break;
  }
}

void Fetcher::Loop() {
  CURLM* m = static_cast<CURLM*>(multi_);
  auto cancelled = [](int attempts) {
    FetchResult r;
    r.status = Status::Cancelled("cancelled");
    r.reason = "cancelled";
    r.attempts = attempts;
    return r;
  };
  while (true) {
    std::vector<std::unique_ptr<Transfer>> to_cancel;
    bool stop = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop = stopping_;
      if (stop || cancel_all_) {
        cancel_all_ = false;
        for (auto& t : queue_) to_cancel.push_back(std::move(t));
        queue_.clear();
      }
    }
    if (!to_cancel.empty() || stop) {
      for (auto& t : running_) to_cancel.push_back(std::move(t));
      for (auto& t : waiting_) to_cancel.push_back(std::move(t));
      running_.clear();
      waiting_.clear();
      for (auto& [key, host] : hosts_) {
        for (auto& t : host.pending) to_cancel.push_back(std::move(t));
        host.pending.clear();
        host.running = 0;
      }
      for (auto& t : to_cancel) {
        int attempts = t->attempt;
        Complete(std::move(t), cancelled(attempts));
      }
      if (stop) return;
    }

    // New requests join their host's queue: urgent ones at the front, in the
    // order the shared queue holds them, the others at the back.
    std::deque<std::unique_ptr<Transfer>> incoming;
    {
      std::lock_guard<std::mutex> lock(mu_);
      incoming.swap(queue_);
    }
    for (auto& t : incoming) {
      if (!t->urgent) HostOf(*t).pending.push_back(std::move(t));
    }
    for (auto it = incoming.rbegin(); it != incoming.rend(); ++it) {
      if (*it) HostOf(**it).pending.push_front(std::move(*it));
    }

    // Retries whose backoff has passed go first, then the hosts' queues.
    const auto now = Clock::now();
    const size_t total = static_cast<size_t>(options_.concurrency);
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      Host& h = HostOf(**it);
      if ((*it)->due <= now && running_.size() < total && h.running < h.limit.limit()) {
        std::unique_ptr<Transfer> t = std::move(*it);
        it = waiting_.erase(it);
        StartTransfer(std::move(t));
      } else {
        ++it;
      }
    }
    FillSlots();

    int still = 0;
    curl_multi_perform(m, &still);
    int left = 0;
    bool finished_any = false;
    while (CURLMsg* msg = curl_multi_info_read(m, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      finished_any = true;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
      Finish(t, msg->data.result);
    }

    // A finished transfer frees a slot: go round at once to fill it. A retry
    // that is due but held back by its host's limit waits for a transfer to
    // finish (which wakes the poll), so only future due times shorten it.
    int timeout_ms = finished_any ? 0 : 1000;
    const auto after = Clock::now();
    for (const auto& t : waiting_) {
      if (t->due <= after) continue;
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t->due - after).count() + 1;
      timeout_ms = static_cast<int>(std::clamp<int64_t>(ms, 0, timeout_ms));
    }
    curl_multi_poll(m, nullptr, 0, timeout_ms, nullptr);
  }
}

}  // namespace medpipe
