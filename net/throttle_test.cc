// Throttling: 429 and 503 SlowDown are retried after the server's
// Retry-After, other 4xx are not, and the per-host concurrency follows the
// AIMD rule of net/throttle.h, observed at a loopback server that counts the
// requests it has in flight (tests/servers/fault_server.py).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <sstream>

#include "net/fetcher.h"
#include "net/throttle.h"
#include "tests/servers/server_process.h"

namespace medpipe {
namespace {

using testing::FetchStatsCounts;
using testing::ServerProcess;
using testing::TempDir;

const char* kCtSmall = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm";

TEST(ThrottleLimit, HalvesOncePerEpochAndGrowsOnePerWindow) {
  ConcurrencyLimit c(16);
  EXPECT_EQ(c.limit(), 16);
  const uint64_t e0 = c.epoch();
  EXPECT_TRUE(c.OnThrottle(e0));
  EXPECT_EQ(c.limit(), 8);
  // Requests sent before the cut answer 503 too: the same event, no new cut.
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(c.OnThrottle(e0));
  EXPECT_EQ(c.limit(), 8);
  EXPECT_TRUE(c.OnThrottle(c.epoch()));
  EXPECT_EQ(c.limit(), 4);
  for (int i = 0; i < 5; ++i) c.OnThrottle(c.epoch());
  EXPECT_EQ(c.limit(), 1) << "the floor is one request at a time";
  EXPECT_EQ(c.lowest(), 1);
  // Additive increase: one step per window of `limit` good answers.
  c.OnSuccess();
  EXPECT_EQ(c.limit(), 2);
  c.OnSuccess();
  EXPECT_EQ(c.limit(), 2);
  c.OnSuccess();
  EXPECT_EQ(c.limit(), 3);
  // A throttle in the middle of a window restarts the count.
  c.OnSuccess();
  c.OnSuccess();
  c.OnThrottle(c.epoch());
  EXPECT_EQ(c.limit(), 1);
  int answers = 0;
  while (c.limit() < 16) {
    c.OnSuccess();
    ++answers;
  }
  EXPECT_EQ(answers, 120) << "1 + 2 + ... + 15 answers to climb back from 1 to 16";
  for (int i = 0; i < 100; ++i) c.OnSuccess();
  EXPECT_EQ(c.limit(), 16) << "never above the configured concurrency";
  EXPECT_EQ(c.lowest(), 1);
}

class ThrottleServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir();
    fs::copy_file(kCtSmall, root_->path() / "a.dcm");
    auto s = testing::StartFaultServer(root_->path());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value().release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete root_;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    tmp_ = std::make_unique<TempDir>();
  }

  std::string Base() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  std::unique_ptr<Fetcher> MakeFetcher(int retries = 2, int concurrency = 64) {
    FetchOptions o;
    o.temp_dir = tmp_->path();
    o.retries = retries;
    o.concurrency = concurrency;
    o.timeout_seconds = 10;
    o.backoff_initial_seconds = 0.05;
    o.backoff_max_seconds = 0.2;
    auto f = Fetcher::Create(o);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    return std::move(f).value();
  }

  // Fetches `url` and returns the result and the seconds it took.
  static std::pair<FetchResult, double> Timed(Fetcher* f, const std::string& url) {
    auto t0 = std::chrono::steady_clock::now();
    FetchResult r = f->Fetch(url);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return {std::move(r), s};
  }

  int Requests(const std::string& path) { return FetchStatsCounts(Base())[path]; }

  static TempDir* root_;
  static ServerProcess* server_;
  std::unique_ptr<TempDir> tmp_;
};

TempDir* ThrottleServerTest::root_ = nullptr;
ServerProcess* ThrottleServerTest::server_ = nullptr;

TEST_F(ThrottleServerTest, Throttle429HonoursRetryAfterSeconds) {
  auto f = MakeFetcher();
  auto [r, seconds] = Timed(f.get(), Base() + "/fault/429/1/a.dcm?retry_after=1");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(Requests("/fault/429/1/a.dcm"), 2);
  EXPECT_GE(seconds, 0.95) << "Retry-After: 1 must be waited out (the backoff alone is at most 0.2 s)";
  EXPECT_LT(seconds, 5.0);
  EXPECT_EQ(f->stats().throttled, 1);
  EXPECT_EQ(f->stats().retries, 1);
  r.Release();
}

TEST_F(ThrottleServerTest, Throttle429HonoursRetryAfterHttpDate) {
  auto f = MakeFetcher();
  auto [r, seconds] = Timed(f.get(), Base() + "/fault/429/1/b.dcm?retry_after=date%2B2");
  // b.dcm does not exist: after the throttle the server answers 404, which
  // ends the fetch at once. What matters is the wait before the second try.
  EXPECT_EQ(r.reason, "http_404");
  EXPECT_EQ(r.attempts, 2);
  EXPECT_GE(seconds, 0.95) << "an HTTP-date 1-2 s ahead must be waited out";
  EXPECT_LT(seconds, 5.0);
}

TEST_F(ThrottleServerTest, Throttle429WithoutRetryAfterUsesTheBackoff) {
  auto f = MakeFetcher();
  auto [r, seconds] = Timed(f.get(), Base() + "/fault/429/2/a.dcm");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.attempts, 3);
  EXPECT_LT(seconds, 0.9) << "no Retry-After: the configured backoff (at most 0.2 s per retry)";
  EXPECT_EQ(f->stats().throttled, 2);
  r.Release();
}

TEST_F(ThrottleServerTest, ThrottleSlowDown503ThenOk) {
  auto f = MakeFetcher();
  FetchResult r = f->Fetch(Base() + "/fault/slowdown/2/a.dcm");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.attempts, 3);
  EXPECT_EQ(Requests("/fault/slowdown/2/a.dcm"), 3);
  EXPECT_EQ(f->stats().throttled, 2);
  r.Release();
}

TEST_F(ThrottleServerTest, ThrottleWithoutEndIsUnavailable) {
  auto f = MakeFetcher(/*retries=*/2);
  FetchResult r = f->Fetch(Base() + "/fault/429/0/a.dcm");
  EXPECT_EQ(r.reason, "http_429");
  EXPECT_EQ(r.attempts, 3);
  EXPECT_EQ(r.status.code(), Status::Code::kUnavailable) << "a rerun must try it again";
}

TEST_F(ThrottleServerTest, ThrottleOther4xxAreNeverRetried) {
  auto f = MakeFetcher(/*retries=*/4);
  for (const char* kind : {"403", "404"}) {
    const std::string path = std::string("/fault/") + kind + "/0/a.dcm";
    FetchResult r = f->Fetch(Base() + path);
    EXPECT_EQ(r.reason, std::string("http_") + kind);
    EXPECT_EQ(r.attempts, 1);
    EXPECT_EQ(Requests(path), 1);
  }
  EXPECT_EQ(f->stats().throttled, 0);
  EXPECT_EQ(f->stats().lowest_concurrency, 64);
}

TEST_F(ThrottleServerTest, ThrottleConcurrencyDropsAtTheServerAndTheRunCompletes) {
  // The server takes 4 requests at once (40 ms each) and answers SlowDown
  // beyond that; the fetcher starts at 16.
  const int n = 240;
  auto f = MakeFetcher(/*retries=*/30, /*concurrency=*/16);
  std::vector<std::promise<FetchResult>> done(n);
  for (int i = 0; i < n; ++i) {
    f->Start(Base() + "/throttle/4/40/a.dcm?i=" + std::to_string(i),
             [&done, i](FetchResult r) { done[i].set_value(std::move(r)); });
  }
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    FetchResult r = done[i].get_future().get();
    if (r.status.ok()) ++ok;
    r.Release();
  }
  EXPECT_EQ(ok, n) << "every object arrives in the end";

  testing::HttpResponse c = testing::HttpGet(Base() + "/_concurrency");
  ASSERT_EQ(c.status, 200);
  std::istringstream in(c.body);
  std::string first_line;
  std::getline(in, first_line);
  std::istringstream nums(first_line);
  std::vector<int> arrivals;
  for (int v; nums >> v;) arrivals.push_back(v);
  ASSERT_GE(arrivals.size(), static_cast<size_t>(n));
  int early = 0, late = 0;
  for (size_t i = 0; i < 16; ++i) early = std::max(early, arrivals[i]);
  for (size_t i = arrivals.size() / 2; i < arrivals.size(); ++i) late = std::max(late, arrivals[i]);
  EXPECT_GE(early, 10) << "the fetcher starts near its full concurrency of 16";
  EXPECT_LE(late, 8) << "once throttled, the fetcher keeps at most about twice the server's limit in flight";

  const FetchStats s = f->stats();
  EXPECT_GT(s.throttled, 0);
  EXPECT_LE(s.lowest_concurrency, 4);
  EXPECT_EQ(s.requests, n + s.retries);
  // Without the cut, 16 in flight against a limit of 4 is three refusals
  // per success: far more than the handful of probes AIMD makes.
  EXPECT_LT(s.throttled, n) << "throttled " << s.throttled << " times for " << n << " objects";
}

TEST_F(ThrottleServerTest, ThrottleHoldsBackOnlyTheThrottledHost) {
  // "127.0.0.1" and "localhost" are two hosts to the fetcher, one server
  // here. 30 requests to a host that takes one at a time (100 ms each) are
  // queued before one request to the other host, which must not wait for
  // them (in one shared queue it would wait for 30 / 4 rounds of 100 ms).
  auto f = MakeFetcher(/*retries=*/30, /*concurrency=*/4);
  const int n = 30;
  std::vector<std::promise<FetchResult>> done(n);
  for (int i = 0; i < n; ++i) {
    f->Start(Base() + "/throttle/1/100/a.dcm?host=a&i=" + std::to_string(i),
             [&done, i](FetchResult r) { done[i].set_value(std::move(r)); });
  }
  const std::string other = "http://localhost:" + std::to_string(server_->port()) + "/files/a.dcm";
  auto t0 = std::chrono::steady_clock::now();
  std::promise<FetchResult> b;
  f->Start(other, [&b](FetchResult r) { b.set_value(std::move(r)); });
  FetchResult rb = b.get_future().get();
  double b_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(rb.status.ok()) << rb.status.ToString();
  rb.Release();
  EXPECT_LT(b_seconds, 0.5) << "the other host's request waited for the throttled host's queue";
  for (int i = 0; i < n; ++i) {
    FetchResult r = done[i].get_future().get();
    EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    r.Release();
  }
  double all_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GT(all_seconds, 2.5) << "the throttled host took its requests one at a time";
  EXPECT_EQ(f->stats().lowest_concurrency, 1);
}

}  // namespace
}  // namespace medpipe
