// `medpipe serve` started on a loopback port by the test and stopped after:
// a batch equals the classify stage's results, bad requests get JSON errors
// with the right status, concurrent batches with the same names lose
// nothing, upload names never leave the output folder.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>
#include <rapidjson/document.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <thread>

#include "dataset/coco_io.h"
#include "serve/server.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;

const fs::path kModels = MEDPIPE_TEST_MODELS;

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string PngBytes(int w, int h, int seed) {
  cv::Mat m(h, w, CV_8UC1, cv::Scalar(30 + seed * 11 % 90));
  cv::circle(m, {w / 2 + seed, h / 2}, w / 3, cv::Scalar(200 - seed * 9 % 100), -1);
  cv::Mat noise(h, w, CV_8UC1);
  cv::randu(noise, 0, 20 + seed);
  m += noise;
  std::vector<uchar> png;
  cv::imencode(".png", m, png);
  return std::string(png.begin(), png.end());
}

// One server for the suite: the tiny model, batch 8, small limits.
class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    fs::create_directories(*dir_ / "data/img");
    Dataset ds;
    for (int i = 0; i < 10; ++i) {
      Image img;
      img.id = i + 1;
      img.file_name = "img/x" + std::to_string(i) + ".png";
      img.width = 180 + 10 * i, img.height = 200;
      testing::WriteText(*dir_ / "data" / img.file_name, PngBytes(img.width, img.height, i));
      ds.images.push_back(img);
    }
    testing::WriteText(*dir_ / "data/ds.json", SerializeCoco(ds));
    yaml_ = "workdir: work\nstages:\n"
            "  - id: d\n    kind: emit\n    params: {coco: data/ds.json}\n"
            "  - id: triage\n    kind: classify\n    inputs: [d]\n    params: {model: " +
            (kModels / "tiny_cxr.pt").string() + ", batch: 8}\n";
    testing::WriteText(*dir_ / "serve.yaml", yaml_);
    port_ = FreePort();
    const std::string cmd = "exec " + testing::MedpipeBinary() + " serve " + (*dir_ / "serve.yaml").string() +
                            " --stage triage --host 127.0.0.1 --port " + std::to_string(port_) +
                            " --max-upload-mb 2 --max-files 12 --threads 2 --output " + (*dir_ / "out").string() +
                            " 2>" + (*dir_ / "serve.log").string();
    // `emit` is a test-only kind: the server reads the pipeline with the
    // builtin kinds, so it gets a copy where the input is an annotate stage.
    std::string served = yaml_;
    served.replace(served.find("kind: emit\n    params: {coco: data/ds.json}"),
                   std::string("kind: emit\n    params: {coco: data/ds.json}").size(),
                   "kind: annotate\n    params: {images: data/img}");
    testing::WriteText(*dir_ / "serve.yaml", served);
    pid_ = testing::SpawnProcess({"/bin/sh", "-c", cmd});
    httplib::Client c("127.0.0.1", port_);
    for (int i = 0; i < 600; ++i) {
      if (auto r = c.Get("/healthz"); r && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << "server did not come up: " << testing::ReadText(*dir_ / "serve.log");
  }
  static void TearDownTestSuite() {
    ::kill(pid_, SIGINT);
    EXPECT_EQ(testing::WaitProcess(pid_), 0);
    delete dir_;
  }

  static httplib::Result Post(const std::vector<std::pair<std::string, std::string>>& files) {
    httplib::MultipartFormDataItems items;
    for (const auto& [name, bytes] : files) items.push_back({"files", bytes, name, "application/octet-stream"});
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    return c.Post("/predict_batch", items);
  }
  static rapidjson::Document Parse(const std::string& body) {
    rapidjson::Document d;
    d.Parse(body.c_str());
    EXPECT_FALSE(d.HasParseError()) << body;
    return d;
  }

  static TempDir* dir_;
  static std::string yaml_;
  static int port_;
  static pid_t pid_;
};

TempDir* ServeTest::dir_ = nullptr;
std::string ServeTest::yaml_;
int ServeTest::port_ = 0;
pid_t ServeTest::pid_ = 0;

TEST_F(ServeTest, BatchFromCurlEqualsTheClassifyStage) {
  TempDir stage_dir;
  fs::create_directories(stage_dir / "data");
  fs::copy(*dir_ / "data", stage_dir / "data", fs::copy_options::recursive);
  auto r = testing::RunYaml(testing::TestKinds(), stage_dir.path(), yaml_);
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("triage").reason;
  rapidjson::Document stage = Parse(testing::ReadText(stage_dir / "work/triage/results.json"));

  std::vector<std::string> argv = {"/usr/bin/curl", "-sS", "-X", "POST",
                                   "http://127.0.0.1:" + std::to_string(port_) + "/predict_batch"};
  for (int i = 0; i < 10; ++i) argv.insert(argv.end(), {"-F", "files=@" + (*dir_ / "data/img" / ("x" + std::to_string(i) + ".png")).string()});
  auto p = testing::RunProcess(argv);
  ASSERT_EQ(p.exit_code, 0) << p.err;
  rapidjson::Document served = Parse(p.out);
  ASSERT_EQ(served["results"].Size(), 10u) << p.out;
  ASSERT_EQ(stage["results"].Size(), 10u);
  for (rapidjson::SizeType i = 0; i < 10; ++i) {
    const auto& a = stage["results"][i];
    const auto& b = served["results"][i];
    EXPECT_EQ(fs::path(a["filename"].GetString()).filename().string(), b["filename"].GetString());
    EXPECT_EQ(b["index"].GetInt(), static_cast<int>(i));
    EXPECT_STREQ(a["risk_level"].GetString(), b["risk_level"].GetString());
    EXPECT_STREQ(a["top_label"].GetString(), b["top_label"].GetString());
    for (auto& m : a["all_probs"].GetObject()) {
      EXPECT_NEAR(m.value.GetDouble(), b["all_probs"][m.name.GetString()].GetDouble(), 1e-6);
    }
    const fs::path saved = b["saved_path"].GetString();
    EXPECT_TRUE(fs::exists(saved)) << saved;
    EXPECT_EQ(saved.parent_path().filename().string(), b["risk_level"].GetString());
  }
  for (auto& m : stage["summary"].GetObject()) {
    EXPECT_EQ(m.value.GetInt(), served["summary"][m.name.GetString()].GetInt()) << m.name.GetString();
  }
  // The same model, named with its SHA-256, and the untrained warning.
  ASSERT_TRUE(served.HasMember("model")) << p.out;
  EXPECT_STREQ(served["model"]["sha256"].GetString(), stage["model"]["sha256"].GetString());
  EXPECT_STREQ(served["model"]["name"].GetString(), stage["model"]["name"].GetString());
  EXPECT_EQ(std::string(served["model"]["sha256"].GetString()).size(), 64u);
  ASSERT_TRUE(served.HasMember("warning")) << p.out;
  EXPECT_STREQ(served["warning"].GetString(), "untrained model: levels mean nothing");
  // The batch's CSV can be downloaded.
  httplib::Client c("127.0.0.1", port_);
  auto csv = c.Get(served["csv_url"].GetString());
  ASSERT_TRUE(csv);
  EXPECT_EQ(csv->status, 200);
  EXPECT_EQ(std::count(csv->body.begin(), csv->body.end(), '\n'), 11);
  size_t warned = 0;
  for (size_t p = 0; (p = csv->body.find(",untrained model: levels mean nothing\n", p)) != std::string::npos; ++p) {
    ++warned;
  }
  EXPECT_EQ(warned, 10u) << csv->body;
}

TEST_F(ServeTest, BadRequestsGetJsonErrorsAndTheServerGoesOn) {
  httplib::Client c("127.0.0.1", port_);
  auto r = c.Post("/predict_batch", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(Parse(r->body).HasMember("error"));

  httplib::MultipartFormDataItems other = {{"notes", "hello", "", "text/plain"}};
  r = c.Post("/predict_batch", other);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);

  // A text file named .png among good files: 415 for it alone.
  r = Post({{"a.png", PngBytes(64, 64, 1)}, {"fake.png", "this is not an image"}, {"b.png", PngBytes(70, 64, 2)}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  rapidjson::Document d = Parse(r->body);
  ASSERT_EQ(d["results"].Size(), 2u);
  EXPECT_EQ(d["results"][1]["index"].GetInt(), 2);
  ASSERT_EQ(d["errors"].Size(), 1u);
  EXPECT_STREQ(d["errors"][0]["filename"].GetString(), "fake.png");
  EXPECT_NE(std::string(d["errors"][0]["error"].GetString()).find("415"), std::string::npos);

  r = Post({{"only.jpg", "GIF89a not really"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);

  std::vector<std::pair<std::string, std::string>> many;
  for (int i = 0; i < 13; ++i) many.push_back({"m" + std::to_string(i) + ".png", PngBytes(32, 32, i)});
  r = Post(many);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(Parse(r->body).HasMember("error"));

  r = Post({{"big.png", std::string(3 << 20, 'x')}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);

  r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = c.Get("/labels");
  ASSERT_TRUE(r);
  EXPECT_EQ(Parse(r->body)["labels"].Size(), 18u);
  // One log line per request, never contents.
  const std::string log = testing::ReadText(*dir_ / "serve.log");
  EXPECT_NE(log.find("POST /predict_batch files=3 status=200"), std::string::npos) << log;
  // The log says the model is untrained when it starts and on every
  // prediction.
  EXPECT_NE(log.find("medpipe serve: WARNING: untrained model: levels mean nothing"), std::string::npos) << log;
  const size_t post = log.find("POST /predict_batch files=3 status=200");
  EXPECT_NE(log.substr(post, log.find('\n', post) - post).find("(untrained model: levels mean nothing)"),
            std::string::npos)
      << log;
  rapidjson::Document health = Parse(c.Get("/healthz")->body);
  EXPECT_TRUE(health["untrained"].GetBool());
  EXPECT_STREQ(health["warning"].GetString(), "untrained model: levels mean nothing");
  EXPECT_EQ(log.find("this is not an image"), std::string::npos);
}

TEST_F(ServeTest, ConcurrentBatchesWithTheSameNamesLoseNothing) {
  std::vector<std::pair<std::string, std::string>> files = {
      {"same.png", PngBytes(64, 80, 3)}, {"same2.png", PngBytes(80, 64, 4)}, {"same.png", PngBytes(90, 90, 5)}};
  std::vector<std::string> saved;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      auto r = Post(files);
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 200);
      rapidjson::Document d = Parse(r->body);
      std::lock_guard<std::mutex> lock(mu);
      for (auto& item : d["results"].GetArray()) saved.push_back(item["saved_path"].GetString());
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(saved.size(), 6u);
  std::set<std::string> unique(saved.begin(), saved.end());
  EXPECT_EQ(unique.size(), 6u);
  for (const auto& s : saved) EXPECT_TRUE(fs::exists(s)) << s;
}

TEST_F(ServeTest, UploadNamesStayInsideTheOutputFolder) {
  auto r = Post({{"../../x.png", PngBytes(64, 64, 7)}, {"/etc/passwd", PngBytes(64, 64, 8)},
                 {std::string("a\0b.png", 7), PngBytes(64, 64, 9)}, {std::string(300, 'n') + ".png", PngBytes(64, 64, 10)}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  rapidjson::Document d = Parse(r->body);
  const fs::path out = fs::weakly_canonical(*dir_ / "out");
  for (auto& item : d["results"].GetArray()) {
    const fs::path saved = fs::weakly_canonical(item["saved_path"].GetString());
    EXPECT_EQ(saved.string().rfind(out.string() + "/", 0), 0u) << saved;
    EXPECT_TRUE(fs::exists(saved));
    EXPECT_LE(saved.filename().string().size(), 130u);
  }
  EXPECT_FALSE(fs::exists(*dir_ / "x.png"));
  EXPECT_FALSE(fs::exists(dir_->path().parent_path() / "x.png"));
  EXPECT_EQ(SanitizeUploadName("../../x.png"), "x.png");
  EXPECT_EQ(SanitizeUploadName(".."), "upload");
  EXPECT_EQ(SanitizeUploadName("C:\\a\\b c.png"), "b_c.png");
}

TEST_F(ServeTest, PageIsSelfContained) {
  httplib::Client c("127.0.0.1", port_);
  auto r = c.Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("/predict_batch"), std::string::npos);
  EXPECT_EQ(r->body.find("http://"), std::string::npos);
  EXPECT_EQ(r->body.find("https://"), std::string::npos);
  EXPECT_EQ(r->body.find("src="), std::string::npos);
  // The untrained model's warning is on the page before anything is
  // uploaded, with the model's name.
  EXPECT_NE(r->body.find("<p class=\"untrained\" id=\"model-warning\">untrained model: levels mean nothing</p>"),
            std::string::npos);
  EXPECT_NE(r->body.find("id=\"model\">Model: medpipe reference tiny DenseNet cxr"), std::string::npos);
}

// The page in a real browser: headless Chromium uploads 5 files through the
// file input; the summary it shows equals the API's for the same files. The
// screenshot stays in the build folder as a test artefact.
TEST_F(ServeTest, WebPageInHeadlessChromium) {
  std::vector<std::pair<std::string, std::string>> files;
  std::vector<std::string> argv = {MEDPIPE_PYTHON, std::string(MEDPIPE_SOURCE_DIR) + "/serve/web_test.py",
                                   "--expect-warning", "untrained model: levels mean nothing",
                                   "http://127.0.0.1:" + std::to_string(port_) + "/",
                                   std::string(MEDPIPE_TEST_MODELS) + "/serve_page.png", ""};
  for (int i = 0; i < 5; ++i) {
    const fs::path f = *dir_ / "data/img" / ("x" + std::to_string(i) + ".png");
    files.push_back({f.filename().string(), testing::ReadText(f)});
    argv.push_back(f.string());
  }
  auto api = Post(files);
  ASSERT_TRUE(api);
  rapidjson::Document d = Parse(api->body);
  std::string expected = "{";
  for (auto& m : d["summary"].GetObject()) {
    expected += (expected.size() > 1 ? "," : "") + std::string("\"") + m.name.GetString() + "\":" +
                std::to_string(m.value.GetInt());
  }
  argv[6] = expected + "}";
  fs::remove(std::string(MEDPIPE_TEST_MODELS) + "/serve_page.png");
  auto p = testing::RunProcess(argv, {"HOME=" + dir_->path().string()});
  EXPECT_EQ(p.exit_code, 0) << p.err << p.out;
  EXPECT_TRUE(fs::exists(std::string(MEDPIPE_TEST_MODELS) + "/serve_page.png"));
}

// A model that cannot serve the labels stops `medpipe serve` before it
// listens, naming the file: no server that answers 500 to every batch.
TEST(ServeModelTest, AModelThatCannotServeTheLabelsStopsTheServer) {
  TempDir dir;
  auto made = testing::RunProcess({MEDPIPE_PYTHON, std::string(MEDPIPE_SOURCE_DIR) + "/infer/test_models.py",
                                   dir.path().string(), (kModels / "tiny_cxr.onnx").string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  fs::create_directories(dir / "img");
  for (const char* model : {"unmarked.pt", "unknown_op.onnx"}) {
    testing::WriteText(dir / "s.yaml", "workdir: work\nstages:\n  - id: triage\n    kind: classify\n"
                                       "    params: {source: " + (dir / "img").string() + ", model: " +
                                       (dir / model).string() + "}\n");
    auto p = testing::RunProcess({testing::MedpipeBinary(), "serve", (dir / "s.yaml").string(), "--stage", "triage",
                                  "--port", std::to_string(FreePort()), "--output", (dir / "out").string()});
    EXPECT_EQ(p.exit_code, 1) << model << p.err;
    EXPECT_NE(p.err.find(model), std::string::npos) << p.err;
    EXPECT_EQ(p.err.find("http://"), std::string::npos) << p.err;  // it never listened
  }
}

}  // namespace
}  // namespace medpipe
