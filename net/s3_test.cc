// S3 requests signed by libcurl (CURLOPT_AWS_SIGV4) and checked by botocore
// in a loopback server (tests/servers/s3_server.py) that refuses a wrong
// signature with 403.
#include <gtest/gtest.h>

#include "net/fetcher.h"
#include "stages/registry.h"
#include "tests/servers/server_process.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::FetchStatsCounts;
using testing::ServerProcess;
using testing::TempDir;

const fs::path kCtSmall = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm";
const char* kKeyId = "AKIDTESTKEY0000EXAMPLE";
const char* kSecret = "s3cretKEY/with+chars=EXAMPLE0000000000000";
const char* kToken = "IQoJb3JpZ2luX2VjEXAMPLETOKEN//+/==";

class S3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "root/med-bucket/ct dir");
    fs::copy_file(kCtSmall, dir_ / "root/med-bucket/ct dir/a b+c.dcm");
    fs::copy_file(kCtSmall, dir_ / "root/med-bucket/plain.dcm");
  }

  void StartServer(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {testing::kPython, (testing::ServersDir() / "s3_server.py").string(),
                                     "--root", (dir_ / "root").string(), "--access-key", kKeyId,
                                     "--secret-key", kSecret, "--region", "eu-central-1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto s = ServerProcess::StartWithPortLine(argv, dir_ / "s3.log");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    endpoint_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }

  std::unique_ptr<Fetcher> MakeFetcher(AwsCredentials creds) {
    FetchOptions o;
    o.temp_dir = dir_ / "tmp";
    o.retries = 2;
    o.backoff_initial_seconds = 0.01;
    o.s3 = S3Endpoint{"eu-central-1", endpoint_};
    o.aws = std::move(creds);
    auto f = Fetcher::Create(o);
    EXPECT_TRUE(f.ok());
    return std::move(f).value();
  }

  std::map<std::string, int> Stats() { return FetchStatsCounts(endpoint_); }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::string endpoint_;
};

TEST_F(S3Test, S3SignedRequestVerifiedByBotocore) {
  StartServer();
  auto f = MakeFetcher(AwsCredentials{kKeyId, kSecret, ""});
  FetchResult r = f->Fetch("s3://med-bucket/ct dir/a b+c.dcm");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(testing::ReadText(r.files[0].path), testing::ReadText(kCtSmall));
  r.Release();
  EXPECT_EQ(Stats()["verdict:ok"], 1);
}

TEST_F(S3Test, S3QueryStringIsSortedBeforeSigning) {
  StartServer();
  auto f = MakeFetcher(AwsCredentials{kKeyId, kSecret, ""});
  // Out of order, with a value that needs encoding: libcurl signs the query
  // as given, SigV4 (botocore) sorts it.
  FetchResult r = f->Fetch("s3://med-bucket/plain.dcm?versionId=v%2F1&partNumber=1&acl");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  r.Release();
  EXPECT_EQ(Stats()["verdict:ok"], 1);
}

TEST_F(S3Test, S3SessionTokenIsSentAndSigned) {
  StartServer({"--session-token", kToken});
  auto with = MakeFetcher(AwsCredentials{kKeyId, kSecret, kToken});
  FetchResult ok = with->Fetch("s3://med-bucket/plain.dcm");
  ASSERT_TRUE(ok.status.ok()) << ok.status.ToString();
  ok.Release();

  auto without = MakeFetcher(AwsCredentials{kKeyId, kSecret, ""});
  FetchResult refused = without->Fetch("s3://med-bucket/plain.dcm");
  EXPECT_FALSE(refused.status.ok());
  EXPECT_EQ(refused.reason, "http_403");
  EXPECT_EQ(refused.attempts, 1) << "a 4xx is never retried";
  auto stats = Stats();
  EXPECT_EQ(stats["verdict:ok"], 1);
  EXPECT_EQ(stats["verdict:missing_or_unsigned_token"], 1);
}

TEST_F(S3Test, S3WrongSecretIsRefusedAndNeverPrinted) {
  StartServer();
  const std::string wrong = "wrongSECRETwrongSECRETwrongSECRET00000000";
  auto f = MakeFetcher(AwsCredentials{kKeyId, wrong, ""});
  FetchResult r = f->Fetch("s3://med-bucket/plain.dcm");
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(r.reason, "http_403");
  EXPECT_NE(r.status.message().find("SignatureDoesNotMatch"), std::string::npos) << r.status.message();
  EXPECT_EQ(r.status.message().find(wrong), std::string::npos);
  EXPECT_EQ(r.status.message().find(kKeyId), std::string::npos);
  EXPECT_EQ(Stats()["verdict:bad_signature"], 1);
}

TEST_F(S3Test, S3AnonymousWithoutCredentials) {
  StartServer({"--allow-anonymous"});
  auto f = MakeFetcher(AwsCredentials{});
  FetchResult r = f->Fetch("s3://med-bucket/plain.dcm");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  r.Release();
  EXPECT_EQ(Stats()["verdict:anonymous"], 1);
}

TEST_F(S3Test, S3DownloadStageWithSeedEnvFileNeverLeaksSecrets) {
  StartServer();
  // The seeds' variable names, in a .env file; the environment has none.
  testing::WriteText(dir_ / ".env", std::string("AWS_ACCESS_KEY=") + kKeyId + "\nAWS_SECRET_KEY='" + kSecret + "'\n");
  testing::WriteText(dir_ / "list.csv", "image_url,label\ns3://med-bucket/plain.dcm,TN\ns3://med-bucket/ct dir/a b+c.dcm,FP\n"
                                        "s3://med-bucket/missing.dcm,TN\n");
  testing::WriteText(dir_ / "pipeline.yaml", "name: s3\nworkdir: work\nstages:\n  - id: dl\n    kind: download\n"
                                             "    params:\n      csv: list.csv\n      env_file: .env\n"
                                             "      s3_region: eu-central-1\n      s3_endpoint: " +
                                                 endpoint_ + "\n      filter_slice_thickness: []\n");
  auto run = testing::RunProcess({testing::MedpipeBinary(), "run", (dir_ / "pipeline.yaml").string()},
                                 {"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN="});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(Stats()["verdict:ok"], 3);
  std::string report = testing::ReadText(dir_ / "work/dl/report.json");
  EXPECT_NE(report.find("NoSuchKey"), std::string::npos) << report;
  // No secret in anything medpipe printed or wrote.
  std::vector<std::string> texts = {run.out, run.err};
  for (auto it = fs::recursive_directory_iterator(dir_ / "work"); it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_regular_file()) texts.push_back(testing::ReadText(it->path()));
  }
  for (const auto& t : texts) {
    EXPECT_EQ(t.find(kSecret), std::string::npos);
    EXPECT_EQ(t.find(kKeyId), std::string::npos);
  }
}

}  // namespace
}  // namespace medpipe
