// The AWS credential chain (net/aws_config.h) with temporary HOME folders,
// and its keys checked by the SigV4-verifying loopback S3 server
// (tests/servers/s3_server.py, botocore inside).
#include "net/aws_config.h"

#include <gtest/gtest.h>

#include "net/fetcher.h"
#include "tests/servers/server_process.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::FetchStatsCounts;
using testing::ServerProcess;
using testing::TempDir;
using testing::WriteText;

const fs::path kCtSmall = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm";
// Distinct, recognisable secrets: each test checks none of them leaks.
const char* kLabKey = "AKIDLABPROFILE0000001";
const char* kLabSecret = "labSECRETlabSECRETlabSECRET/+000000000001";
const char* kLabToken = "labTOKENlabTOKENlabTOKEN//+==";
const char* kEnvKey = "AKIDENVIRONMENT000002";
const char* kEnvSecret = "envSECRETenvSECRETenvSECRET/+000000000002";
const char* kDefKey = "AKIDDEFAULTPROFILE003";
const char* kDefSecret = "defSECRETdefSECRETdefSECRET/+000000000003";

void ExpectNoSecret(const std::string& text) {
  for (const char* s : {kLabKey, kLabSecret, kLabToken, kEnvKey, kEnvSecret, kDefKey, kDefSecret}) {
    EXPECT_EQ(text.find(s), std::string::npos) << "leaks " << s << ": " << text;
  }
}

// A HOME with ~/.aws/credentials and ~/.aws/config.
class AwsHome {
 public:
  AwsHome(const std::string& credentials, const std::string& config) {
    fs::create_directories(home_.path() / ".aws");
    if (!credentials.empty()) WriteText(home_.path() / ".aws/credentials", credentials);
    if (!config.empty()) WriteText(home_.path() / ".aws/config", config);
  }
  fs::path path() const { return home_.path(); }
  std::string Credentials() const { return (home_.path() / ".aws/credentials").string(); }
  std::string Config() const { return (home_.path() / ".aws/config").string(); }

  // EnvSource with HOME set here, plus `vars`; nothing from the process.
  EnvSource Env(std::map<std::string, std::string> vars = {}) const {
    vars["HOME"] = home_.path().string();
    return EnvSource::FromMap(std::move(vars));
  }

 private:
  TempDir home_;
};

std::string LabCredentials() {
  return std::string("[default]\naws_access_key_id = ") + kDefKey + "\naws_secret_access_key = " + kDefSecret +
         "\n\n# the lab account\n[lab]\naws_access_key_id=" + kLabKey + "\nAWS_Secret_Access_Key = " + kLabSecret +
         "\naws_session_token = " + kLabToken + "\n";
}

TEST(AwsChain, ParsesIniLikeBotocore) {
  AwsIni ini = ParseAwsIni(
      "top = ignored\n[profile lab]\n; comment\nRegion: eu-west-3\nservices = local\ns3 =\n  addressing_style = path\n"
      "  endpoint_url = http://h:1\nafter = x\n[services local]\ns3 =\n    endpoint_url = http://127.0.0.1:9000\n");
  EXPECT_EQ(ini["profile lab"]["region"], "eu-west-3");
  EXPECT_EQ(ini["profile lab"]["s3.endpoint_url"], "http://h:1");
  EXPECT_EQ(ini["profile lab"]["s3.addressing_style"], "path");
  EXPECT_EQ(ini["profile lab"]["after"], "x");
  EXPECT_EQ(ini["profile lab"].count("after.x"), 0u);
  EXPECT_EQ(ini["services local"]["s3.endpoint_url"], "http://127.0.0.1:9000");
  EXPECT_EQ(ini.count("top"), 0u);
}

TEST(AwsChain, ProfileCredentialsRegionAndEndpointFromTheFiles) {
  AwsHome home(LabCredentials(), "[profile lab]\nregion = eu-central-1\nendpoint_url = http://127.0.0.1:9000\n");
  auto s = ResolveAws(home.Env({{"AWS_PROFILE", "lab"}}), {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->credentials.access_key_id, kLabKey);
  EXPECT_EQ(s->credentials.secret_access_key, kLabSecret);
  EXPECT_EQ(s->credentials.session_token, kLabToken);
  EXPECT_EQ(s->credentials_from, "profile 'lab' in " + home.Credentials());
  EXPECT_EQ(s->s3.region, "eu-central-1");
  EXPECT_EQ(s->region_from, "profile 'lab' in " + home.Config());
  EXPECT_EQ(s->s3.endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(s->endpoint_from, "profile 'lab' in " + home.Config());
  const std::string line = s->Describe();
  EXPECT_NE(line.find("profile 'lab'"), std::string::npos) << line;
  EXPECT_NE(line.find("eu-central-1"), std::string::npos) << line;
  ExpectNoSecret(line);
}

TEST(AwsChain, DefaultProfileWithoutAwsProfile) {
  AwsHome home(LabCredentials(), "");
  auto s = ResolveAws(home.Env(), {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->profile, "default");
  EXPECT_EQ(s->credentials.access_key_id, kDefKey);
  EXPECT_EQ(s->s3.region, "us-east-1");
  EXPECT_EQ(s->region_from, "the default");
  EXPECT_TRUE(s->s3.endpoint.empty());
}

TEST(AwsChain, NoFilesNoEnvironmentIsAnonymousNotAnError) {
  AwsHome home("", "");
  auto s = ResolveAws(home.Env(), {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(s->credentials.empty());
  EXPECT_NE(s->Describe().find("unsigned"), std::string::npos) << s->Describe();
}

TEST(AwsChain, WrongProfileIsAConfigErrorListingTheProfiles) {
  AwsHome home(LabCredentials(), "[profile staging]\nregion = eu-west-1\n");
  auto s = ResolveAws(home.Env({{"AWS_PROFILE", "labb"}}), {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Status::Code::kConfig);
  const std::string& m = s.status().message();
  EXPECT_NE(m.find("AWS_PROFILE"), std::string::npos) << m;
  EXPECT_NE(m.find("'labb'"), std::string::npos) << m;
  EXPECT_NE(m.find("default, lab, staging"), std::string::npos) << m;
  EXPECT_NE(m.find(home.Credentials()), std::string::npos) << m;
  ExpectNoSecret(m);
  // Even with keys in the environment: a named profile that does not exist is
  // a mistake to report, as boto3 does (ProfileNotFound).
  auto with_env = ResolveAws(
      home.Env({{"AWS_PROFILE", "labb"}, {"AWS_ACCESS_KEY_ID", kEnvKey}, {"AWS_SECRET_ACCESS_KEY", kEnvSecret}}), {});
  EXPECT_EQ(with_env.status().code(), Status::Code::kConfig);
  ExpectNoSecret(with_env.status().message());
}

TEST(AwsChain, EnvironmentBeatsProfileAndPipelineBeatsEnvironment) {
  AwsHome home(LabCredentials(), "[profile lab]\nregion = eu-central-1\nendpoint_url = http://profile:1\n");
  EnvSource env = home.Env({{"AWS_PROFILE", "lab"},
                            {"AWS_ACCESS_KEY_ID", kEnvKey},
                            {"AWS_SECRET_ACCESS_KEY", kEnvSecret},
                            {"AWS_DEFAULT_REGION", "ap-south-1"},
                            {"AWS_ENDPOINT_URL", "http://generic:2"}});
  auto s = ResolveAws(env, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->credentials.access_key_id, kEnvKey);
  EXPECT_TRUE(s->credentials.session_token.empty()) << "the profile's token never joins the environment's keys";
  EXPECT_EQ(s->credentials_from, "AWS_ACCESS_KEY_ID in the environment");
  EXPECT_EQ(s->s3.region, "ap-south-1");
  EXPECT_EQ(s->region_from, "AWS_DEFAULT_REGION in the environment");
  EXPECT_EQ(s->s3.endpoint, "http://generic:2");

  // AWS_REGION over AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL.
  auto s2 = ResolveAws(home.Env({{"AWS_PROFILE", "lab"},
                                 {"AWS_REGION", "sa-east-1"},
                                 {"AWS_DEFAULT_REGION", "ap-south-1"},
                                 {"AWS_ENDPOINT_URL", "http://generic:2"},
                                 {"AWS_ENDPOINT_URL_S3", "http://s3only:3"}}),
                       {});
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(s2->s3.region, "sa-east-1");
  EXPECT_EQ(s2->s3.endpoint, "http://s3only:3");
  EXPECT_EQ(s2->credentials.access_key_id, kLabKey);

  // The pipeline's own params win; anonymous drops every key.
  auto s3 = ResolveAws(env, AwsOverrides{"eu-north-1", "http://pipeline:4", true});
  ASSERT_TRUE(s3.ok());
  EXPECT_EQ(s3->s3.region, "eu-north-1");
  EXPECT_EQ(s3->region_from, "s3_region in the pipeline");
  EXPECT_EQ(s3->s3.endpoint, "http://pipeline:4");
  EXPECT_TRUE(s3->credentials.empty());

  // AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: back to AWS itself.
  auto s4 = ResolveAws(home.Env({{"AWS_PROFILE", "lab"}, {"AWS_ENDPOINT_URL", "http://generic:2"},
                                 {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"}}),
                       {});
  ASSERT_TRUE(s4.ok());
  EXPECT_TRUE(s4->s3.endpoint.empty());
}

TEST(AwsChain, SeedNamesInTheEnvironmentStillWork) {
  AwsHome home("", "");
  auto s = ResolveAws(home.Env({{"AWS_ACCESS_KEY", kEnvKey}, {"AWS_SECRET_KEY", kEnvSecret}}), {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->credentials.access_key_id, kEnvKey);
  EXPECT_EQ(s->credentials_from, "AWS_ACCESS_KEY in the environment");
}

TEST(AwsChain, ConfigFileCredentialsOverriddenFilesAndServicesSection) {
  TempDir elsewhere;
  WriteText(elsewhere.path() / "creds", "[other]\naws_access_key_id = x\n");
  WriteText(elsewhere.path() / "conf", std::string("[profile default]\naws_access_key_id = ") + kDefKey +
                                           "\naws_secret_access_key = " + kDefSecret +
                                           "\nservices = local\n[services local]\ns3 =\n  endpoint_url = "
                                           "http://127.0.0.1:7\n");
  AwsHome home(LabCredentials(), "");  // must be ignored: the overrides point elsewhere
  auto s = ResolveAws(home.Env({{"AWS_SHARED_CREDENTIALS_FILE", (elsewhere.path() / "creds").string()},
                                {"AWS_CONFIG_FILE", (elsewhere.path() / "conf").string()}}),
                      {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->credentials.access_key_id, kDefKey);
  EXPECT_EQ(s->credentials_from, "profile 'default' in " + (elsewhere.path() / "conf").string());
  EXPECT_EQ(s->s3.endpoint, "http://127.0.0.1:7");
  EXPECT_NE(s->endpoint_from.find("[services local]"), std::string::npos) << s->endpoint_from;

  // "~/" in an override is the HOME given.
  auto tilde = ResolveAws(home.Env({{"AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"}, {"AWS_PROFILE", "lab"}}), {});
  ASSERT_TRUE(tilde.ok()) << tilde.status().ToString();
  EXPECT_EQ(tilde->credentials.access_key_id, kLabKey);
}

TEST(AwsChain, BrokenProfilesAreConfigErrorsWithoutSecrets) {
  AwsHome home(std::string("[half]\naws_access_key_id = ") + kLabKey + "\n[half2]\naws_secret_access_key = " +
                   kLabSecret + "\n",
               "[profile role]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = half\n"
               "[profile bad-endpoint]\nendpoint_url = minio:9000\n");
  for (const char* profile : {"half", "half2", "role", "bad-endpoint"}) {
    auto s = ResolveAws(home.Env({{"AWS_PROFILE", profile}}), {});
    ASSERT_FALSE(s.ok()) << profile;
    EXPECT_EQ(s.status().code(), Status::Code::kConfig) << profile;
    ExpectNoSecret(s.status().message());
  }
  auto half = ResolveAws(home.Env({{"AWS_PROFILE", "half"}}), {});
  EXPECT_NE(half.status().message().find("no aws_secret_access_key"), std::string::npos) << half.status().message();
  auto role = ResolveAws(home.Env({{"AWS_PROFILE", "role"}}), {});
  EXPECT_NE(role.status().message().find("role_arn"), std::string::npos) << role.status().message();
}

// The chain's keys against botocore's verification.
class AwsChainS3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "root/med-bucket");
    fs::copy_file(kCtSmall, dir_ / "root/med-bucket/plain.dcm");
    auto s = ServerProcess::StartWithPortLine(
        {testing::kPython, (testing::ServersDir() / "s3_server.py").string(), "--root", (dir_ / "root").string(),
         "--access-key", kLabKey, "--secret-key", kLabSecret, "--region", "eu-central-1", "--session-token", kLabToken},
        dir_ / "s3.log");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    endpoint_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::string endpoint_;
};

TEST_F(AwsChainS3Test, AwsChainProfileKeysSignCorrectly) {
  AwsHome home(LabCredentials(), "[profile lab]\nregion = eu-central-1\nendpoint_url = " + endpoint_ + "\n");
  auto s = ResolveAws(home.Env({{"AWS_PROFILE", "lab"}}), {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  FetchOptions o;
  o.temp_dir = dir_ / "tmp";
  o.retries = 0;
  o.s3 = s->s3;
  o.aws = s->credentials;
  auto f = Fetcher::Create(o);
  ASSERT_TRUE(f.ok());
  FetchResult r = (*f)->Fetch("s3://med-bucket/plain.dcm");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(testing::ReadText(r.files[0].path), testing::ReadText(kCtSmall));
  r.Release();
  EXPECT_EQ(FetchStatsCounts(endpoint_)["verdict:ok"], 1);
}

TEST_F(AwsChainS3Test, AwsChainDownloadStageUsesTheProfileAndSaysSo) {
  AwsHome home(LabCredentials(), "[profile lab]\nregion = eu-central-1\nendpoint_url = " + endpoint_ + "\n");
  WriteText(dir_ / "list.csv", "image_url,label\ns3://med-bucket/plain.dcm,TN\n");
  // No region, no endpoint, no env_file in the pipeline: all from the profile.
  WriteText(dir_ / "pipeline.yaml",
            "name: s3\nworkdir: work\nstages:\n  - id: dl\n    kind: download\n    params:\n      csv: list.csv\n"
            "      filter_slice_thickness: []\n");
  const std::vector<std::string> clean = {"HOME=" + home.path().string(), "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=",
                                          "AWS_SESSION_TOKEN=", "AWS_ACCESS_KEY=", "AWS_SECRET_KEY=", "AWS_REGION=",
                                          "AWS_DEFAULT_REGION=", "AWS_ENDPOINT_URL=", "AWS_ENDPOINT_URL_S3=",
                                          "AWS_CONFIG_FILE=", "AWS_SHARED_CREDENTIALS_FILE=", "AWS_DEFAULT_PROFILE="};
  std::vector<std::string> env = clean;
  env.push_back("AWS_PROFILE=lab");
  auto run = testing::RunProcess({testing::MedpipeBinary(), "run", (dir_ / "pipeline.yaml").string()}, env);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(FetchStatsCounts(endpoint_)["verdict:ok"], 1);
  const std::string all = run.out + run.err;
  EXPECT_NE(all.find("S3 credentials from profile 'lab' in " + home.Credentials()), std::string::npos) << all;
  ExpectNoSecret(all);
  for (auto it = fs::recursive_directory_iterator(dir_ / "work"); it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_regular_file()) ExpectNoSecret(testing::ReadText(it->path()));
  }

  // A wrong profile name stops the stage with a config error naming it.
  env = clean;
  env.push_back("AWS_PROFILE=lba");
  fs::remove_all(dir_ / "work");
  auto bad = testing::RunProcess({testing::MedpipeBinary(), "run", (dir_ / "pipeline.yaml").string()}, env);
  EXPECT_NE(bad.exit_code, 0);
  const std::string bad_all = bad.out + bad.err;
  EXPECT_NE(bad_all.find("'lba'"), std::string::npos) << bad_all;
  EXPECT_NE(bad_all.find("lab"), std::string::npos) << bad_all;
  ExpectNoSecret(bad_all);
  EXPECT_EQ(FetchStatsCounts(endpoint_)["verdict:ok"], 1) << "nothing fetched with a wrong profile";
}

}  // namespace
}  // namespace medpipe
