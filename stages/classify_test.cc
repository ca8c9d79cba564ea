// classify over a small dataset with the tiny reference network: outputs,
// agreement with PyTorch on the same files, determinism across thread
// counts, resume, and config errors at file:line:col.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <random>

#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "dataset/coco_io.h"
#include "runner/checkpoint.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;

const fs::path kModels = MEDPIPE_TEST_MODELS;

// A chest-like synthetic radiograph: dark lungs in a bright body, noise.
cv::Mat SyntheticImage(int w, int h, int seed) {
  std::mt19937 rng(seed);
  cv::Mat m(h, w, CV_8UC1, cv::Scalar(40 + seed * 7 % 60));
  cv::ellipse(m, {w / 2, h / 2}, {w * 2 / 5, h * 9 / 20}, 0, 0, 360, cv::Scalar(190), -1);
  cv::ellipse(m, {w / 3, h / 2}, {w / 8 + seed % 5, h / 4}, 0, 0, 360, cv::Scalar(60 + seed * 13 % 80), -1);
  cv::ellipse(m, {2 * w / 3, h / 2}, {w / 8, h / 4 + seed % 7}, 0, 0, 360, cv::Scalar(70), -1);
  cv::Mat noise(h, w, CV_8UC1);
  cv::randu(noise, 0, 30 + seed);
  return m + noise;
}

class ClassifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "data/img");
    Dataset ds;
    auto add = [&](const std::string& name, int w, int h) {
      Image img;
      img.id = static_cast<int64_t>(ds.images.size()) + 1;
      img.file_name = "img/" + name;
      img.width = w, img.height = h;
      img.patient_id = "P" + std::to_string(img.id);
      ds.images.push_back(img);
    };
    for (int i = 0; i < 9; ++i) {
      const std::string name = "cxr_" + std::to_string(i) + (i % 3 == 2 ? ".jpg" : ".png");
      const int w = 200 + 20 * i, h = 240 - 10 * i;
      ASSERT_TRUE(cv::imwrite((dir_ / "data/img" / name).string(), SyntheticImage(w, h, i)));
      add(name, w, h);
    }
    // The real MONOCHROME1 CR chest, read directly through dicom/convert.
    fs::copy_file(fs::path(MEDPIPE_PUBLIC_DATA) / "cxr_dicom/gdcm-CR-MONO1-10-chest.dcm", dir_ / "data/img/mono1.dcm");
    add("mono1.dcm", 440, 440);
    testing::WriteText(dir_ / "data/img/broken.png", std::string("\x89PNG\r\n\x1a\n", 8) + "truncated");
    add("broken.png", 10, 10);
    testing::WriteText(dir_ / "data/ds.json", SerializeCoco(ds));
  }

  std::string Yaml(const std::string& params) {
    return "workdir: work\nstages:\n"
           "  - id: d\n    kind: emit\n    params: {coco: data/ds.json}\n"
           "  - id: triage\n    kind: classify\n    inputs: [d]\n    params: {model: " +
           (kModels / "tiny_cxr.pt").string() + ", " + params + "}\n";
  }
  testing::RunResult Run(const std::string& params, int threads = 2) {
    RunOptions o;
    o.threads = threads;
    return testing::RunYaml(testing::TestKinds(), dir_.path(), Yaml(params), o);
  }
  rapidjson::Document Json(const std::string& rel) {
    rapidjson::Document doc;
    doc.Parse(testing::ReadText(dir_ / "work/triage" / rel).c_str());
    EXPECT_FALSE(doc.HasParseError()) << rel;
    return doc;
  }
  TempDir dir_;
};

TEST_F(ClassifyTest, WritesLevelsLinksResultsAndADataset) {
  auto r = Run("batch: 4");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("triage").reason;
  rapidjson::Document res = Json("results.json");
  ASSERT_EQ(res["results"].Size(), 10u);  // broken.png is a per-item problem
  int64_t total = 0;
  for (auto& m : res["summary"].GetObject()) total += m.value.GetInt64();
  EXPECT_EQ(total, 10);
  EXPECT_EQ(res["summary"].MemberCount(), 4u);  // High, Medium, Low, no_finding
  EXPECT_STREQ(res["output_directory"].GetString(), "triage");
  for (auto& item : res["results"].GetArray()) {
    const std::string saved = item["saved_path"].GetString();
    const std::string level = item["risk_level"].GetString();
    ASSERT_EQ(saved.rfind("triage/" + level + "/", 0), 0u) << saved;
    const fs::path link = dir_ / "work" / saved;
    EXPECT_TRUE(fs::is_symlink(link)) << saved;  // a link, not a copy
    EXPECT_TRUE(fs::exists(link)) << saved;
    EXPECT_EQ(item["top_predictions"].Size(), 3u);
    EXPECT_EQ(item["all_probs"].MemberCount(), 18u);
    EXPECT_DOUBLE_EQ(item["top_probability"].GetDouble(), item["top_predictions"][0]["prob"].GetDouble());
  }
  // The index is the image's position in the input: mono1.dcm is the 10th.
  EXPECT_STREQ(res["results"][9]["filename"].GetString(), "img/mono1.dcm");
  EXPECT_NE(std::string(res["results"][9]["saved_path"].GetString()).find("/00009_mono1.dcm"), std::string::npos);

  Result<Dataset> ds = ReadCoco(dir_ / "work/triage/dataset.json");
  ASSERT_TRUE(ds.ok());
  ASSERT_EQ(ds->images.size(), 10u);
  for (const Image& img : ds->images) {
    EXPECT_TRUE(fs::exists(dir_ / "work/triage" / img.file_name)) << img.file_name;
    EXPECT_TRUE(img.attributes.count("risk_level"));
    EXPECT_TRUE(img.attributes.count("prob.Pneumonia"));
    EXPECT_FALSE(img.labels.empty());  // threshold 0: every label counts
  }
  const std::string csv = testing::ReadText(dir_ / "work/triage/results.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "file,index,top_label,top_probability,risk_level,top1,top2,top3,Atelectasis,Consolidation,Infiltration,"
            "Pneumothorax,Edema,Emphysema,Fibrosis,Effusion,Pneumonia,Pleural_Thickening,Cardiomegaly,Nodule,Mass,"
            "Hernia,Lung Lesion,Fracture,Lung Opacity,Enlarged Cardiomediastinum,model,model_sha256,warning");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 11);
  const std::string report = testing::ReadText(dir_ / "work/triage/report.json");
  EXPECT_NE(report.find("broken.png"), std::string::npos);
  EXPECT_NE(report.find("unreadable_images"), std::string::npos);
}

// The probabilities equal PyTorch's (the same TorchScript file run eagerly
// by python3-torch) on the same files, preprocessed by torchxrayvision's
// recipe in NumPy/cv2.
TEST_F(ClassifyTest, ProbabilitiesEqualPyTorchOnTheSameFiles) {
  ASSERT_EQ(Run("batch: 8").summary.exit_code, 0);
  const std::string script =
      "import sys, json, numpy as np, cv2, torch\n"
      "torch.set_num_threads(2)\n"
      "m = torch.jit.load(sys.argv[1]).eval()\n"
      "out = {}\n"
      "for f in sys.argv[3:]:\n"
      "    img = cv2.imread(f, cv2.IMREAD_GRAYSCALE).astype(np.float32)\n"
      "    img = (2 * (img / 255.0) - 1.0) * 1024\n"
      "    y, x = img.shape; c = min(x, y)\n"
      "    img = img[y // 2 - c // 2:y // 2 - c // 2 + c, x // 2 - c // 2:x // 2 - c // 2 + c]\n"
      "    img = cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA)\n"
      "    with torch.no_grad():\n"
      "        out[f.split('/')[-1]] = torch.sigmoid(m(torch.from_numpy(img)[None, None])).tolist()[0]\n"
      "json.dump(out, open(sys.argv[2], 'w'))\n";
  testing::WriteText(dir_ / "ref.py", script);
  std::vector<std::string> argv = {MEDPIPE_PYTHON, (dir_ / "ref.py").string(), (dir_ / "ref.json").string(),
                                   (kModels / "tiny_cxr.pt").string()};
  for (int i = 0; i < 9; ++i) {
    argv.push_back((dir_ / "data/img" / ("cxr_" + std::to_string(i) + (i % 3 == 2 ? ".jpg" : ".png"))).string());
  }
  std::swap(argv[2], argv[3]);  // script args: model, out, files
  auto p = testing::RunProcess(argv);
  ASSERT_EQ(p.exit_code, 0) << p.err;
  rapidjson::Document ref;
  ref.Parse(testing::ReadText(dir_ / "ref.json").c_str());
  rapidjson::Document res = Json("results.json");
  int compared = 0;
  for (auto& item : res["results"].GetArray()) {
    const std::string name = fs::path(item["filename"].GetString()).filename().string();
    if (!ref.HasMember(name.c_str())) continue;
    const auto& expected = ref[name.c_str()];
    int j = 0;
    for (auto& m : item["all_probs"].GetObject()) {
      EXPECT_NEAR(m.value.GetDouble(), expected[j++].GetDouble(), 1e-4) << name << " " << m.name.GetString();
    }
    ++compared;
  }
  EXPECT_EQ(compared, 9);
}

TEST_F(ClassifyTest, SameBytesForAnyThreadCountAndResumeRedoesNothing) {
  ASSERT_EQ(Run("batch: 3", 1).summary.exit_code, 0);
  const std::string one = testing::ReadText(dir_ / "work/triage/results.json");
  fs::remove_all(dir_ / "work");
  auto r = Run("batch: 3", 2);
  ASSERT_EQ(r.summary.exit_code, 0);
  EXPECT_EQ(testing::ReadText(dir_ / "work/triage/results.json"), one);
  // Changing the rule redoes the decisions, never the forward passes.
  r = Run("batch: 3, rule: max_risk, threshold: 0.5");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("triage").reason;
  EXPECT_GE(r.Of("triage").items.resumed, 4);  // the 4 batches of 3, 3, 3, 2 images
  const std::string log = testing::ReadText(dir_ / "work" / kMetaDir / "run.log");
  EXPECT_NE(log.rfind("inferred 0 of 4 batches"), std::string::npos) << log;
  EXPECT_GT(log.rfind("inferred 0 of 4 batches"), log.rfind("inferred 4 of 4 batches")) << log;
  EXPECT_EQ(Json("summary.json")["images"].GetInt(), 10);
}

TEST_F(ClassifyTest, ConfigErrorsPointAtTheParam) {
  // The binary knows only the builtin kinds: the images come from `source`.
  auto yaml = [&](const std::string& params) {
    return "workdir: work\nstages:\n  - id: triage\n    kind: classify\n    params: {source: data/img, model: " +
           (kModels / "tiny_cxr.pt").string() + ", " + params + "}\n";
  };
  testing::WriteText(dir_ / "p.yaml", yaml("risk_map: {Pneumonitis: High, Edema: Critical}, levels: [High, Low]"));
  auto p = testing::RunProcess({testing::MedpipeBinary(), "run", (dir_ / "p.yaml").string()});
  EXPECT_NE(p.exit_code, 0);
  EXPECT_NE(p.err.find("p.yaml:5:"), std::string::npos) << p.err;
  EXPECT_NE(p.err.find("'Pneumonitis' is not one of the model's labels"), std::string::npos) << p.err;
  EXPECT_NE(p.err.find("level 'Critical' is not one of the levels"), std::string::npos) << p.err;
  EXPECT_FALSE(fs::exists(dir_ / "work/triage"));
  testing::WriteText(dir_ / "q.yaml", yaml("thresholds: {Edema: high}"));
  p = testing::RunProcess({testing::MedpipeBinary(), "run", (dir_ / "q.yaml").string()});
  EXPECT_NE(p.err.find("'Edema': 'high' is not a number"), std::string::npos) << p.err;
}

// A folder of images (PNG, JPEG, DICOM) without an input stage, through the
// binary: the DICOM needs no separate conversion step.
TEST_F(ClassifyTest, SourceFolderThroughTheBinary) {
  testing::WriteText(dir_ / "s.yaml", "workdir: work\nstages:\n  - id: triage\n    kind: classify\n"
                                      "    params: {source: data/img, model: " + (kModels / "tiny_cxr.onnx").string() +
                                      "}\n");
  auto p = testing::RunProcess({testing::MedpipeBinary(), "run", (dir_ / "s.yaml").string(), "--threads", "2"});
  EXPECT_EQ(p.exit_code, 0) << p.err;
  rapidjson::Document res = Json("results.json");
  ASSERT_EQ(res["results"].Size(), 10u);
  bool dicom = false;
  for (auto& item : res["results"].GetArray()) dicom |= std::string(item["filename"].GetString()) == "mono1.dcm";
  EXPECT_TRUE(dicom);
  EXPECT_NE((p.out + p.err).find("levels: High"), std::string::npos) << p.out << p.err;
  // The console says the reference network is untrained.
  EXPECT_NE((p.out + p.err).find("untrained model: levels mean nothing"), std::string::npos) << p.out << p.err;
}

TEST_F(ClassifyTest, OnnxModelGivesTheSameResults) {
  ASSERT_EQ(Run("batch: 4").summary.exit_code, 0);
  rapidjson::Document torch_res = Json("results.json");
  std::string onnx = Yaml("batch: 4");
  onnx.replace(onnx.find("tiny_cxr.pt"), 11, "tiny_cxr.onnx");
  fs::remove_all(dir_ / "work");
  auto r = testing::RunYaml(testing::TestKinds(), dir_.path(), onnx);
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("triage").reason;
  rapidjson::Document onnx_res = Json("results.json");
  ASSERT_EQ(onnx_res["results"].Size(), torch_res["results"].Size());
  for (rapidjson::SizeType i = 0; i < onnx_res["results"].Size(); ++i) {
    const auto& a = torch_res["results"][i];
    const auto& b = onnx_res["results"][i];
    EXPECT_STREQ(a["top_label"].GetString(), b["top_label"].GetString());
    EXPECT_STREQ(a["risk_level"].GetString(), b["risk_level"].GetString());
    for (auto& m : a["all_probs"].GetObject()) {
      EXPECT_NEAR(m.value.GetDouble(), b["all_probs"][m.name.GetString()].GetDouble(), 1e-3);
    }
  }
}

// The files of infer/test_models.py in `dir` (models that do not load, or
// do not fit the labels, or carry no marks).
void MakeTestModels(const fs::path& dir) {
  auto p = testing::RunProcess({MEDPIPE_PYTHON, std::string(MEDPIPE_SOURCE_DIR) + "/infer/test_models.py", dir.string(),
                                (kModels / "tiny_cxr.onnx").string()});
  ASSERT_EQ(p.exit_code, 0) << p.err;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    out.push_back(text.substr(start, nl - start));
  }
  return out;
}

// The reference network is untrained and says so: results.json,
// summary.json, every row of results.csv and the stage's console line carry
// "untrained model: levels mean nothing", and the results name the model
// and its SHA-256.
TEST_F(ClassifyTest, ResultsNameTheModelAndSayItIsUntrained) {
  auto r = Run("batch: 4");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("triage").reason;
  auto sum = testing::RunProcess({"/usr/bin/sha256sum", (kModels / "tiny_cxr.pt").string()});
  const std::string sha = sum.out.substr(0, 64);
  for (const char* rel : {"results.json", "summary.json"}) {
    rapidjson::Document doc = Json(rel);
    ASSERT_TRUE(doc.HasMember("model")) << rel;
    EXPECT_EQ(std::string(doc["model"]["sha256"].GetString()), sha) << rel;
    EXPECT_STREQ(doc["model"]["file"].GetString(), "tiny_cxr.pt");
    EXPECT_NE(std::string(doc["model"]["name"].GetString()).find("untrained"), std::string::npos);
    EXPECT_TRUE(doc["model"]["untrained"].GetBool());
    ASSERT_TRUE(doc.HasMember("warning")) << rel;
    EXPECT_STREQ(doc["warning"].GetString(), "untrained model: levels mean nothing");
  }
  const std::vector<std::string> rows = Lines(testing::ReadText(dir_ / "work/triage/results.csv"));
  ASSERT_EQ(rows.size(), 11u);
  for (size_t i = 1; i < rows.size(); ++i) {
    EXPECT_NE(rows[i].find("," + sha + ",untrained model: levels mean nothing"), std::string::npos) << rows[i];
  }
  const std::string log = testing::ReadText(dir_ / "work" / kMetaDir / "run.log");
  bool said = false;
  for (const auto& line : Lines(log)) {
    if (line.find("triage: levels:") == std::string::npos) continue;
    said = line.find("untrained model: levels mean nothing") != std::string::npos &&
           line.find(sha.substr(0, 12)) != std::string::npos;
  }
  EXPECT_TRUE(said) << log;
}

// A model without the mark gets no warning, but still its name and SHA-256.
TEST_F(ClassifyTest, AnUnmarkedModelGetsNoWarning) {
  TempDir models;
  MakeTestModels(models.path());
  std::string yaml = Yaml("batch: 4");
  yaml.replace(yaml.find((kModels / "tiny_cxr.pt").string()), (kModels / "tiny_cxr.pt").string().size(),
               (models / "unmarked.onnx").string());
  auto r = testing::RunYaml(testing::TestKinds(), dir_.path(), yaml);
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("triage").reason;
  rapidjson::Document res = Json("results.json");
  EXPECT_FALSE(res.HasMember("warning"));
  EXPECT_FALSE(res["model"]["untrained"].GetBool());
  EXPECT_STREQ(res["model"]["name"].GetString(), "unmarked.onnx");
  const std::vector<std::string> rows = Lines(testing::ReadText(dir_ / "work/triage/results.csv"));
  ASSERT_GT(rows.size(), 1u);
  EXPECT_EQ(rows[1].back(), ',') << rows[1];  // an empty warning cell
  EXPECT_EQ(testing::ReadText(dir_ / "work" / kMetaDir / "run.log").find("untrained"), std::string::npos);
}

// A model that passes the file check but does not load, or whose outputs
// do not fit the labels, fails the stage once: not "done, N failed".
TEST_F(ClassifyTest, AModelThatDoesNotLoadOrFitFailsTheStage) {
  TempDir models;
  MakeTestModels(models.path());
  for (const char* file : {"unknown_op.onnx", "unmarked.pt"}) {
    fs::remove_all(dir_ / "work");
    std::string yaml = Yaml("batch: 4");
    yaml.replace(yaml.find((kModels / "tiny_cxr.pt").string()), (kModels / "tiny_cxr.pt").string().size(),
                 (models / file).string());
    auto r = testing::RunYaml(testing::TestKinds(), dir_.path(), yaml);
    EXPECT_NE(r.summary.exit_code, 0) << file;
    EXPECT_EQ(r.Of("triage").state, StageOutcome::State::kFailed) << file;
    EXPECT_NE(r.Of("triage").reason.find(file), std::string::npos) << r.Of("triage").reason;
    EXPECT_FALSE(fs::exists(dir_ / "work/triage/results.json")) << file;
  }
  auto r = testing::RunYaml(testing::TestKinds(), dir_.path(), [&] {
    std::string yaml = Yaml("batch: 4");
    yaml.replace(yaml.find((kModels / "tiny_cxr.pt").string()), (kModels / "tiny_cxr.pt").string().size(),
                 (models / "unmarked.pt").string());
    return yaml;
  }());
  EXPECT_NE(r.Of("triage").reason.find("gives 5 outputs per image but 18 labels"), std::string::npos)
      << r.Of("triage").reason;
}

// `medpipe validate` tells what it can without running the network: a
// missing file, a file that is not a model of its format, declared outputs
// that do not fit the labels; each at the param's file:line:col.
TEST_F(ClassifyTest, ValidateRefusesWhatIsNotALoadableModel) {
  TempDir models;
  MakeTestModels(models.path());
  testing::WriteText(models / "junk.onnx", "<html>not a model</html>\n");
  testing::WriteText(models / "junk.pt", "PK but not really a zip\n");
  auto validate = [&](const fs::path& model, const std::string& extra) {
    testing::WriteText(dir_ / "v.yaml", "workdir: work\nstages:\n  - id: triage\n    kind: classify\n"
                                        "    params: {source: data/img, model: " + model.string() + extra + "}\n");
    return testing::RunProcess({testing::MedpipeBinary(), "validate", (dir_ / "v.yaml").string()});
  };
  auto ok = validate(kModels / "tiny_cxr.pt", "");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  struct Case {
    fs::path model;
    std::string extra, says;
  };
  for (const Case& c : {Case{models / "missing.onnx", "", "file not found"},
                        Case{models / "junk.onnx", "", "junk.onnx: not a loadable model"},
                        Case{models / "junk.pt", "", "junk.pt: not a loadable model"},
                        Case{models / "state_dict.pt", "", "state_dict.pt: not a loadable model"},
                        Case{kModels / "tiny_cxr.pt", ", labels: [A, B, C]", "gives 18 outputs per image but 3 labels"},
                        Case{models / "unmarked.onnx", ", labels: [A, B]", "gives 18 outputs per image but 2 labels"}}) {
    auto p = validate(c.model, c.extra);
    EXPECT_NE(p.exit_code, 0) << c.model;
    EXPECT_NE(p.err.find("v.yaml:5:"), std::string::npos) << p.err;
    EXPECT_NE(p.err.find(c.says), std::string::npos) << p.err;
  }
}

// kill -9 in the middle of a classify of 120 images: the rerun takes every
// journaled batch from the journal, and the outputs equal an uninterrupted
// run's byte for byte.
TEST(ClassifyCrashTest, KillNineThenResumeGivesIdenticalOutputs) {
  TempDir data;
  fs::create_directories(data / "img");
  for (int i = 0; i < 120; ++i) {
    ASSERT_TRUE(cv::imwrite((data / "img" / ("c" + std::to_string(1000 + i) + ".png")).string(),
                            SyntheticImage(64 + i % 7, 72, i)));
  }
  auto pipeline = [&](const TempDir& run) {
    const fs::path p = run / "p.yaml";
    testing::WriteText(p, "workdir: work\nstages:\n  - id: triage\n    kind: classify\n    params: {source: " +
                              (data / "img").string() + ", model: " + (kModels / "tiny_cxr.pt").string() +
                              ", batch: 4}\n");
    return p.string();
  };
  TempDir ref;
  auto full = testing::RunProcess({testing::MedpipeBinary(), "run", pipeline(ref), "--threads", "2"});
  ASSERT_EQ(full.exit_code, 0) << full.err;
  const auto expected = testing::Snapshot(ref / "work");

  TempDir run;
  const std::string p = pipeline(run);
  const fs::path stage_dir = run / "work/triage";
  pid_t pid = testing::SpawnProcess({testing::MedpipeBinary(), "run", p, "--threads", "2"},
                                    {"MEDPIPE_DEBUG_ITEM_DELAY_MS=30"});
  bool hit = false;
  for (int i = 0; i < 60000 && !hit; ++i) {
    if (testing::JournalLines(stage_dir) >= 10) hit = true;
    int status;
    if (!hit && ::waitpid(pid, &status, WNOHANG) == pid) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ::kill(pid, SIGKILL);
  testing::WaitProcess(pid);
  ASSERT_TRUE(hit) << "the run ended before the kill point";
  const size_t journaled = testing::JournalLines(stage_dir);
  EXPECT_FALSE(ReadCommit(stage_dir).ok());

  auto again = testing::RunProcess({testing::MedpipeBinary(), "run", p, "--threads", "2"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(testing::Snapshot(run / "work"), expected);
  Result<CommitRecord> commit = ReadCommit(stage_dir);
  ASSERT_TRUE(commit.ok());
  EXPECT_GE(commit->items.resumed, static_cast<int64_t>(journaled));
  EXPECT_EQ(commit->items.resumed + commit->items.done, commit->items.total);
}

}  // namespace
}  // namespace medpipe
