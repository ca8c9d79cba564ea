// The fetcher against a real loopback HTTP server that injects faults per
// path (tests/servers/fault_server.py), and the pure helpers under it.
#include "net/fetcher.h"

#include <gtest/gtest.h>

#include <future>

#include "net/credentials.h"
#include "net/multipart.h"
#include "net/source.h"
#include "tests/servers/server_process.h"

namespace medpipe {
namespace {

using testing::FetchStatsCounts;
using testing::ServerProcess;
using testing::TempDir;

const char* kCtSmall = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm";

std::string Slurp(const fs::path& p) {
  Result<std::string> r = ReadFile(p);
  return r.ok() ? *r : std::string();
}

size_t CountFiles(const fs::path& dir) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); ++it) ++n;
  return n;
}

class FetchServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir();
    fs::copy_file(kCtSmall, root_->path() / "a.dcm");
    auto s = ServerProcess::StartWithPortLine({testing::kPython, (testing::ServersDir() / "fault_server.py").string(),
                                               "--root", root_->path().string(), "--stall-seconds", "4"},
                                              root_->path().parent_path() /
                                                  (root_->path().filename().string() + ".log"));
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

  std::unique_ptr<Fetcher> MakeFetcher(int retries = 2, double timeout = 1.0) {
    FetchOptions o;
    o.temp_dir = tmp_->path();
    o.retries = retries;
    o.timeout_seconds = timeout;
    o.backoff_initial_seconds = 0.05;
    o.backoff_max_seconds = 0.2;
    auto f = Fetcher::Create(o);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    return std::move(f).value();
  }

  int Requests(const std::string& path) { return FetchStatsCounts(Base())[path]; }

  static TempDir* root_;
  static ServerProcess* server_;
  std::unique_ptr<TempDir> tmp_;
};

TempDir* FetchServerTest::root_ = nullptr;
ServerProcess* FetchServerTest::server_ = nullptr;

TEST_F(FetchServerTest, FetchServesFileIntoTempAndReusesConnection) {
  auto f = MakeFetcher();
  for (int i = 0; i < 5; ++i) {
    FetchResult r = f->Fetch(Base() + "/files/a.dcm");
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    ASSERT_EQ(r.files.size(), 1u);
    EXPECT_TRUE(r.files[0].owned);
    EXPECT_EQ(r.files[0].path.parent_path(), tmp_->path());
    EXPECT_EQ(Slurp(r.files[0].path), Slurp(kCtSmall));
    r.Release();
    EXPECT_FALSE(fs::exists(r.files[0].path));
  }
  EXPECT_EQ(f->stats().requests, 5);
  EXPECT_EQ(f->stats().connects, 1) << "sequential fetches from one host should reuse one connection";
}

TEST_F(FetchServerTest, Fetch404IsNotRetried) {
  auto f = MakeFetcher(/*retries=*/3);
  FetchResult r = f->Fetch(Base() + "/fault/404/0/a.dcm");
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(r.reason, "http_404");
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(Requests("/fault/404/0/a.dcm"), 1);
  EXPECT_EQ(CountFiles(tmp_->path()), 0u) << "an error body must not stay behind";
}

TEST_F(FetchServerTest, Fetch500ThenSuccessIsRetried) {
  auto f = MakeFetcher();
  FetchResult r = f->Fetch(Base() + "/fault/500/1/a.dcm");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(Requests("/fault/500/1/a.dcm"), 2);
  EXPECT_EQ(Slurp(r.files[0].path), Slurp(kCtSmall));
  r.Release();
}

TEST_F(FetchServerTest, Fetch503AlwaysExhaustsRetries) {
  auto f = MakeFetcher(/*retries=*/2);
  FetchResult r = f->Fetch(Base() + "/fault/503/0/a.dcm");
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(r.reason, "http_503");
  EXPECT_EQ(r.attempts, 3);
  EXPECT_EQ(Requests("/fault/503/0/a.dcm"), 3);
  EXPECT_NE(r.status.message().find("attempt 3 of 3"), std::string::npos) << r.status.message();
}

TEST_F(FetchServerTest, FetchStallTimesOutThenRetries) {
  auto f = MakeFetcher(/*retries=*/2, /*timeout=*/1.0);
  FetchResult r = f->Fetch(Base() + "/fault/stall/1/a.dcm");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(Requests("/fault/stall/1/a.dcm"), 2);
  r.Release();
}

TEST_F(FetchServerTest, FetchStallAlwaysFailsAsTimeout) {
  auto f = MakeFetcher(/*retries=*/1, /*timeout=*/0.5);
  FetchResult r = f->Fetch(Base() + "/fault/stall/0/a.dcm");
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(r.reason, "timeout");
  EXPECT_EQ(r.attempts, 2);
}

TEST_F(FetchServerTest, FetchShortBodyIsAFailureNotAFile) {
  auto f = MakeFetcher(/*retries=*/2);
  FetchResult r = f->Fetch(Base() + "/fault/short/0/a.dcm");
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(r.reason, "short_body");
  EXPECT_TRUE(r.files.empty());
  EXPECT_EQ(Requests("/fault/short/0/a.dcm"), 3) << "a cut-short body is retried like a broken connection";
  EXPECT_EQ(CountFiles(tmp_->path()), 0u) << "a partial body must be deleted";
}

TEST_F(FetchServerTest, FetchShortBodyOnceThenSuccess) {
  auto f = MakeFetcher();
  FetchResult r = f->Fetch(Base() + "/fault/short/1/a.dcm");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Slurp(r.files[0].path), Slurp(kCtSmall));
  r.Release();
}

TEST_F(FetchServerTest, FetchConnectionResetIsRetried) {
  auto f = MakeFetcher();
  FetchResult r = f->Fetch(Base() + "/fault/reset/1/a.dcm");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(Requests("/fault/reset/1/a.dcm"), 2);
  r.Release();

  FetchResult always = f->Fetch(Base() + "/fault/reset/0/a.dcm");
  EXPECT_FALSE(always.status.ok());
  EXPECT_EQ(always.reason, "connection");
  EXPECT_EQ(always.attempts, 3);
  // libcurl itself resends once when a *reused* connection dies before any
  // answer, so the server may see one more request than our attempts.
  EXPECT_GE(Requests("/fault/reset/0/a.dcm"), 3);
  EXPECT_LE(Requests("/fault/reset/0/a.dcm"), 4);
}

TEST_F(FetchServerTest, FetchManyAtOnce) {
  auto f = MakeFetcher();
  const int n = 300;
  std::vector<std::promise<FetchResult>> done(n);
  for (int i = 0; i < n; ++i) {
    f->Start(Base() + "/files/a.dcm?i=" + std::to_string(i), [&done, i](FetchResult r) { done[i].set_value(std::move(r)); });
  }
  const std::string want = Slurp(kCtSmall);
  for (int i = 0; i < n; ++i) {
    FetchResult r = done[i].get_future().get();
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(Slurp(r.files[0].path), want);
    r.Release();
  }
  EXPECT_LE(f->stats().connects, 64);
}

TEST_F(FetchServerTest, FetchErrorsNeverShowCredentials) {
  FetchOptions o;
  o.temp_dir = tmp_->path();
  o.retries = 0;
  o.aws.access_key_id = "AKIAEXAMPLEKEYID1234";
  o.aws.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  o.aws.session_token = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";
  o.dicomweb_auth = HttpAuth{HttpAuthKind::kBasic, "pacsuser", "pacs-password-123", ""};
  const int closed = testing::FreeLoopbackPort();
  o.s3.endpoint = "http://127.0.0.1:" + std::to_string(closed);  // refused at once, signed first
  auto f = Fetcher::Create(o);
  ASSERT_TRUE(f.ok());
  std::vector<std::string> urls = {
      "http://pacsuser:pacs-password-123@127.0.0.1:" + std::to_string(closed) + "/x.dcm",
      Base() + "/fault/404/0/x.dcm?X-Amz-Signature=deadbeefsignature&X-Amz-Credential=AKIAEXAMPLEKEYID1234",
      "s3://bucket/key.dcm?versionId=v1",  // signed, then refused: no key in its message either
      "ftp://user:pacs-password-123@host/x",
  };
  for (const auto& url : urls) {
    FetchResult r = (*f)->Fetch(url);
    ASSERT_FALSE(r.status.ok()) << url;
    const std::string& m = r.status.message();
    for (const char* secret : {"pacs-password-123", "deadbeefsignature", "AKIAEXAMPLEKEYID1234",
                               "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"}) {
      EXPECT_EQ(m.find(secret), std::string::npos) << "message leaks a secret: " << m;
    }
  }
}

TEST(FetchLocal, PathsAndFileUrlsAreReadInPlace) {
  FetchOptions o;
  TempDir tmp;
  o.temp_dir = tmp.path();
  auto f = Fetcher::Create(o);
  ASSERT_TRUE(f.ok());
  for (const std::string& url : {std::string(kCtSmall), std::string("file://") + kCtSmall}) {
    FetchResult r = (*f)->Fetch(url);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    ASSERT_EQ(r.files.size(), 1u);
    EXPECT_FALSE(r.files[0].owned);
    EXPECT_EQ(r.files[0].path, fs::path(kCtSmall));
    r.Release();
    EXPECT_TRUE(fs::exists(kCtSmall)) << "Release must never delete a file it does not own";
  }
  FetchResult missing = (*f)->Fetch("/no/such/file.dcm");
  EXPECT_EQ(missing.reason, "not_found");
  EXPECT_EQ(missing.status.code(), Status::Code::kNotFound);
  FetchResult bad = (*f)->Fetch("gopher://x/y");
  EXPECT_EQ(bad.reason, "invalid_url");
}

TEST(FetchSource, ParsesKinds) {
  EXPECT_EQ(ParseSource("s3://b/k/x.dcm")->kind, SourceKind::kS3);
  EXPECT_EQ(ParseSource("s3://b/k/x.dcm")->s3.key, "k/x.dcm");
  EXPECT_FALSE(ParseSource("s3://bucket").ok());
  EXPECT_EQ(ParseSource("https://h/a.dcm")->kind, SourceKind::kHttp);
  EXPECT_EQ(ParseSource("http://h/dicom-web/studies/1.2")->kind, SourceKind::kDicomWeb);
  EXPECT_EQ(ParseSource("http://h/dicom-web/studies/1.2/series/3.4/")->kind, SourceKind::kDicomWeb);
  EXPECT_EQ(ParseSource("http://h/wado/studies/1/series/2/instances/3")->kind, SourceKind::kDicomWeb);
  EXPECT_EQ(ParseSource("http://h/dicom-web/studies/1/series/2/instances/3/frames/1")->kind, SourceKind::kHttp);
  EXPECT_EQ(ParseSource("file:///tmp/a%20b.dcm")->path, fs::path("/tmp/a b.dcm"));
  EXPECT_EQ(ParseSource("rel/a.dcm")->kind, SourceKind::kLocal);
}

TEST(FetchSource, S3UrlsAndSortedQuery) {
  S3Location loc{"my-bucket", "dir/a b+c.dcm", "versionId=2&a=1"};
  EXPECT_EQ(S3HttpUrl(loc, S3Endpoint{"eu-west-1", ""}),
            "https://my-bucket.s3.eu-west-1.amazonaws.com/dir/a%20b%2Bc.dcm?a=1&versionId=2");
  EXPECT_EQ(S3HttpUrl(S3Location{"my.bucket", "k", ""}, S3Endpoint{"us-east-1", ""}),
            "https://s3.us-east-1.amazonaws.com/my.bucket/k");
  EXPECT_EQ(S3HttpUrl(S3Location{"b", "k", ""}, S3Endpoint{"us-east-1", "http://127.0.0.1:9000/"}),
            "http://127.0.0.1:9000/b/k");
  EXPECT_EQ(SortedS3Query("b=2&a=1&a=0"), "a=0&a=1&b=2");
}

TEST(FetchSource, RedactsUrlsAndKeysStayDistinct) {
  EXPECT_EQ(RedactUrl("https://u:p@h/a.dcm?X-Amz-Signature=s"), "https://***@h/a.dcm?<redacted>");
  EXPECT_EQ(StripQuery("https://h/a.dcm?sig=1"), "https://h/a.dcm");
  EXPECT_NE(UrlItemKey("https://h/a.dcm?v=1"), UrlItemKey("https://h/a.dcm?v=2"));
  EXPECT_EQ(UrlItemKey("https://h/a.dcm?v=1").find("v=1"), std::string::npos);
  EXPECT_EQ(UrlItemKey("https://h/a.dcm"), "https://h/a.dcm");
}

TEST(FetchCredentials, DotEnvAndBothNamingSchemes) {
  auto vars = ParseDotEnv("# comment\nexport AWS_ACCESS_KEY=abc123\nAWS_SECRET_KEY = \"s3cr3t value\"\nEMPTY=\n");
  EXPECT_EQ(vars["AWS_ACCESS_KEY"], "abc123");
  EXPECT_EQ(vars["AWS_SECRET_KEY"], "s3cr3t value");
  AwsCredentials seeds = AwsCredentialsFrom(EnvSource::FromMap(vars));
  EXPECT_EQ(seeds.access_key_id, "abc123");
  EXPECT_EQ(seeds.secret_access_key, "s3cr3t value");
  AwsCredentials std_names = AwsCredentialsFrom(EnvSource::FromMap(
      {{"AWS_ACCESS_KEY_ID", "id"}, {"AWS_SECRET_ACCESS_KEY", "sk"}, {"AWS_SESSION_TOKEN", "tok"}}));
  EXPECT_EQ(std_names.session_token, "tok");
  EXPECT_TRUE(AwsCredentialsFrom(EnvSource::FromMap({{"AWS_ACCESS_KEY_ID", "only-id"}})).empty());
  Result<HttpAuth> missing = HttpAuthFrom("bearer", EnvSource::FromMap({}));
  EXPECT_EQ(missing.status().code(), Status::Code::kConfig);
  EXPECT_NE(missing.status().message().find("DICOMWEB_TOKEN"), std::string::npos);
  Redactor r;
  r.Add("topsecret");
  r.Add("ab");  // too short to register
  EXPECT_EQ(r.Redact("a topsecret and topsecret ab"), "a *** and *** ab");
}

TEST(FetchMultipart, SplitsPartsAndRejectsTruncation) {
  const std::string ct = "multipart/related; type=\"application/dicom\"; boundary=\"XyZ\"";
  EXPECT_EQ(MultipartBoundary(ct), "XyZ");
  EXPECT_EQ(MultipartBoundary("multipart/related; boundary=abc; type=x"), "abc");
  std::string body =
      "preamble\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\nPART-ONE\r\n--XyZ\r\nContent-Type: "
      "application/dicom\r\n\r\nPART\r\nTWO\r\n--XyZ--\r\n";
  auto parts = SplitMultipart(body, "XyZ");
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ(body.substr((*parts)[0].offset, (*parts)[0].size), "PART-ONE");
  EXPECT_EQ(body.substr((*parts)[1].offset, (*parts)[1].size), "PART\r\nTWO");
  EXPECT_EQ((*parts)[0].content_type, "application/dicom");
  EXPECT_FALSE(SplitMultipart(body.substr(0, body.size() - 20), "XyZ").ok());
  EXPECT_FALSE(SplitMultipart("no parts here", "XyZ").ok());
}

}  // namespace
}  // namespace medpipe
