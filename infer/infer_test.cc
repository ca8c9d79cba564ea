// The infer library: both runtimes against PyTorch's logits on the tiny
// reference network, the xrv preprocessing against a NumPy/OpenCV
// reimplementation of torchxrayvision's, and the decision rules.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <fstream>

#include "infer/classifier.h"
#include "infer/decision.h"
#include "infer/model.h"
#include "infer/model_info.h"
#include "infer/preprocess.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;

// Built by CMake from scripts/make_reference_model.py --tiny --reference 8.
const fs::path kModels = MEDPIPE_TEST_MODELS;

std::vector<float> ReadFloats(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

void ExpectLogitsMatch(const std::string& file, double tolerance) {
  const std::vector<float> inputs = ReadFloats(kModels / "tiny_cxr.inputs.f32");
  const std::vector<float> expected = ReadFloats(kModels / "tiny_cxr.logits.f32");
  const int n = 8, plane = 224 * 224;
  ASSERT_EQ(inputs.size(), static_cast<size_t>(n) * plane);
  ASSERT_EQ(expected.size(), static_cast<size_t>(n) * 18);
  auto model = LoadModel(kModels / file, ModelOptions{2});
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  // Batch 8 at once, then each image alone (batch 1).
  auto all = (*model)->Forward(inputs.data(), n, 1, 224, 224);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), expected.size());
  EXPECT_EQ((*model)->num_outputs(), 18);
  double worst = 0;
  for (size_t i = 0; i < expected.size(); ++i) worst = std::max(worst, std::abs(double((*all)[i]) - expected[i]));
  EXPECT_LT(worst, tolerance) << file << " at batch 8";
  worst = 0;
  for (int k = 0; k < n; ++k) {
    auto one = (*model)->Forward(inputs.data() + static_cast<size_t>(k) * plane, 1, 1, 224, 224);
    ASSERT_TRUE(one.ok()) << one.status().ToString();
    for (int j = 0; j < 18; ++j) worst = std::max(worst, std::abs(double((*one)[j]) - expected[k * 18 + j]));
  }
  EXPECT_LT(worst, tolerance) << file << " at batch 1";
  // The logits spread over a few units: a test of more than saturation.
  float lo = *std::min_element(expected.begin(), expected.end());
  float hi = *std::max_element(expected.begin(), expected.end());
  EXPECT_GT(hi - lo, 1.0f);
}

TEST(InferModelTest, TorchScriptEqualsPyTorch) { ExpectLogitsMatch("tiny_cxr.pt", 1e-4); }

TEST(InferModelTest, OnnxThroughOpenCvEqualsPyTorch) { ExpectLogitsMatch("tiny_cxr.onnx", 1e-3); }

TEST(InferModelTest, LoadErrorsNameTheFile) {
  TempDir tmp;
  EXPECT_EQ(LoadModel(tmp / "missing.pt", {}).status().code(), Status::Code::kNotFound);
  testing::WriteText(tmp / "junk.pt", "not a zip");
  auto pt = LoadModel(tmp / "junk.pt", {});
  ASSERT_FALSE(pt.ok());
  EXPECT_NE(pt.status().message().find("junk.pt"), std::string::npos);
  testing::WriteText(tmp / "junk.onnx", "not protobuf");
  auto onnx = LoadModel(tmp / "junk.onnx", {});
  ASSERT_FALSE(onnx.ok());
  EXPECT_NE(onnx.status().message().find("prepare_onnx.py"), std::string::npos);
  testing::WriteText(tmp / "m.h5", "x");
  EXPECT_FALSE(LoadModel(tmp / "m.h5", {}).ok());
}

TEST(InferModelTest, WrongShapeIsAnErrorNotACrash) {
  auto model = LoadModel(kModels / "tiny_cxr.pt", ModelOptions{1});
  ASSERT_TRUE(model.ok());
  std::vector<float> x(3 * 32 * 32, 0.f);
  EXPECT_FALSE((*model)->Forward(x.data(), 1, 3, 32, 32).ok());
}

// The files of infer/test_models.py in `dir`.
void MakeTestModels(const fs::path& dir) {
  auto p = testing::RunProcess({MEDPIPE_PYTHON, std::string(MEDPIPE_SOURCE_DIR) + "/infer/test_models.py", dir.string(),
                                (kModels / "tiny_cxr.onnx").string()});
  ASSERT_EQ(p.exit_code, 0) << p.err;
}

std::string Sha256sum(const fs::path& file) {
  auto p = testing::RunProcess({"/usr/bin/sha256sum", file.string()});
  EXPECT_EQ(p.exit_code, 0) << p.err;
  return p.out.substr(0, 64);
}

// make_reference_model.py marks its seeded networks untrained, in both
// formats; the file's own SHA-256 and the declared outputs come along.
TEST(InferModelInfoTest, ReferenceModelsSayTheyAreUntrained) {
  for (const char* file : {"tiny_cxr.pt", "tiny_cxr.onnx"}) {
    Result<ModelInfo> info = InspectModel(kModels / file);
    ASSERT_TRUE(info.ok()) << info.status().message();
    EXPECT_TRUE(info->untrained) << file;
    EXPECT_EQ(info->Warning(), "untrained model: levels mean nothing");
    EXPECT_EQ(info->outputs, 18) << file;
    EXPECT_EQ(info->file, file);
    EXPECT_NE(info->name.find("untrained"), std::string::npos) << info->name;
    EXPECT_EQ(info->sha256, Sha256sum(kModels / file));
  }
}

// A model without marks is not called untrained; ONNX still declares its
// outputs through the graph's output shape.
TEST(InferModelInfoTest, UnmarkedModelsAreNotUntrainedAndNamedByFile) {
  TempDir tmp;
  MakeTestModels(tmp.path());
  Result<ModelInfo> onnx = InspectModel(tmp / "unmarked.onnx");
  ASSERT_TRUE(onnx.ok()) << onnx.status().message();
  EXPECT_FALSE(onnx->untrained);
  EXPECT_EQ(onnx->Warning(), "");
  EXPECT_EQ(onnx->name, "unmarked.onnx");
  EXPECT_EQ(onnx->outputs, 18);
  Result<ModelInfo> pt = InspectModel(tmp / "unmarked.pt");
  ASSERT_TRUE(pt.ok()) << pt.status().message();
  EXPECT_FALSE(pt->untrained);
  EXPECT_EQ(pt->outputs, 0);  // TorchScript does not tell without running
  EXPECT_TRUE(CheckDeclaredOutputs(*onnx, 18).ok());
  EXPECT_FALSE(CheckDeclaredOutputs(*onnx, 3).ok());
}

// What is not a model is refused by the structural check, naming the file;
// cut-off and flipped bytes of a real model never crash it.
TEST(InferModelInfoTest, WhatIsNotAModelIsRefusedWithoutLoading) {
  TempDir tmp;
  MakeTestModels(tmp.path());
  EXPECT_EQ(InspectModel(tmp / "missing.onnx").status().code(), Status::Code::kNotFound);
  testing::WriteText(tmp / "junk.onnx", "this is a text file, not a model\n");
  testing::WriteText(tmp / "junk.pt", "this is a text file, not a model\n");
  for (const char* file : {"junk.onnx", "junk.pt", "state_dict.pt"}) {
    Result<ModelInfo> info = InspectModel(tmp / file);
    ASSERT_FALSE(info.ok()) << file;
    EXPECT_NE(info.status().message().find(std::string(file) + ": not a loadable model"), std::string::npos)
        << info.status().message();
  }
  EXPECT_NE(InspectModel(tmp / "state_dict.pt").status().message().find("torch.jit.save"), std::string::npos);
  // A well-formed ONNX file passes the check (the load finds the rest).
  EXPECT_TRUE(InspectModel(tmp / "unknown_op.onnx").ok());

  const std::string bytes = testing::ReadText(kModels / "tiny_cxr.onnx");
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, bytes.size() / 3, bytes.size() - 1}) {
    ModelInfo info;
    EXPECT_FALSE(InspectOnnxBytes(std::string_view(bytes).substr(0, cut), &info).ok()) << cut;
  }
  std::string flipped = bytes;
  for (size_t k = 0; k < 2000; ++k) {
    flipped[(k * 7919) % flipped.size()] ^= static_cast<char>(0x5a + k);
    ModelInfo info;
    (void)InspectOnnxBytes(flipped, &info);  // any answer, no crash
  }
}

// A model that does not load, or gives other than one output per label,
// fails Classifier::Load as a whole (the stage and the server fail once).
TEST(InferClassifierTest, LoadFailsOnWhatCannotServeTheLabels) {
  TempDir tmp;
  MakeTestModels(tmp.path());
  ClassifierOptions o;
  o.preprocess = *PreprocessPreset("xrv");
  o.decision.labels = DefaultCxrLabels();
  o.model = kModels / "tiny_cxr.pt";
  Result<std::unique_ptr<Classifier>> ok = Classifier::Load(o);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_TRUE((*ok)->model_info().untrained);

  o.model = tmp / "unmarked.pt";
  auto fifths = Classifier::Load(o);
  ASSERT_FALSE(fifths.ok());
  EXPECT_NE(fifths.status().message().find("gives 5 outputs per image but 18 labels"), std::string::npos)
      << fifths.status().message();
  o.model = tmp / "unknown_op.onnx";
  auto unknown = Classifier::Load(o);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown_op.onnx"), std::string::npos) << unknown.status().message();
  o.model = kModels / "tiny_cxr.onnx";
  o.decision.labels = {"A", "B", "C"};
  auto three = Classifier::Load(o);
  ASSERT_FALSE(three.ok());
  EXPECT_NE(three.status().message().find("gives 18 outputs per image but 3 labels"), std::string::npos)
      << three.status().message();
}

// xrv preprocessing against torchxrayvision's recipe reimplemented in
// NumPy + cv2 (normalize, XRayCenterCrop, XRayResizer engine cv2), on the
// real MONOCHROME1 chest radiograph rendered by DCMTK and on a non-square
// crop of it.
TEST(InferPreprocessTest, XrvEqualsTorchXrayVisionRecipe) {
  TempDir tmp;
  cv::Mat image;
  ASSERT_TRUE(DecodeImageFile(fs::path(MEDPIPE_PUBLIC_DATA) / "cxr_dicom/gdcm-CR-MONO1-10-chest.dcm", &image).ok());
  ASSERT_EQ(image.cols, 440);
  cv::Mat wide = image(cv::Rect(0, 40, 440, 300)).clone();
  for (const cv::Mat& m : {image, wide}) {
    const fs::path png = tmp / "in.png";
    ASSERT_TRUE(cv::imwrite(png.string(), m));
    auto o = PreprocessPreset("xrv");
    ASSERT_TRUE(o.ok());
    std::vector<float> ours(TensorSize(*o));
    ASSERT_TRUE(Preprocess(m, *o, ours.data()).ok());
    const std::string script =
        "import sys, numpy as np, cv2\n"
        "img = cv2.imread(sys.argv[1], cv2.IMREAD_UNCHANGED).astype(np.float32)\n"
        "img = (2 * (img / 255.0) - 1.0) * 1024\n"  // xrv.datasets.normalize(img, 255)
        "y, x = img.shape\n"
        "c = min(x, y)\n"
        "img = img[y // 2 - c // 2:y // 2 - c // 2 + c, x // 2 - c // 2:x // 2 - c // 2 + c]\n"  // XRayCenterCrop
        "img = cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA)\n"  // XRayResizer, engine cv2
        "img.astype('<f4').tofile(sys.argv[2])\n";
    testing::WriteText(tmp / "ref.py", script);
    auto r = testing::RunProcess({MEDPIPE_PYTHON, (tmp / "ref.py").string(), png.string(), (tmp / "ref.f32").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<float> ref = ReadFloats(tmp / "ref.f32");
    ASSERT_EQ(ref.size(), ours.size());
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(double(ref[i]) - ours[i]));
    // One 8-bit level is 2048 / 255 = 8.03 in xrv units.
    EXPECT_LT(worst, 2048.0 / 255) << m.cols << "x" << m.rows;
  }
}

TEST(InferPreprocessTest, ImagenetIsRgbMeanStd) {
  cv::Mat bgr(10, 20, CV_8UC3, cv::Scalar(0, 128, 255));  // B, G, R
  auto o = PreprocessPreset("imagenet");
  ASSERT_TRUE(o.ok());
  o->size = 8;
  std::vector<float> t(TensorSize(*o));
  ASSERT_TRUE(Preprocess(bgr, *o, t.data()).ok());
  EXPECT_NEAR(t[0], (1.0 - 0.485) / 0.229, 1e-5);           // R plane
  EXPECT_NEAR(t[64], (128 / 255.0 - 0.456) / 0.224, 1e-5);  // G plane
  EXPECT_NEAR(t[128], (0 - 0.406) / 0.225, 1e-5);           // B plane
  EXPECT_FALSE(PreprocessPreset("vgg").ok());
}

TEST(InferPreprocessTest, DecodeRejectsWhatIsNotAnImageByContent) {
  cv::Mat m;
  EXPECT_FALSE(DecodeImageBytes("GIF89a....", &m).ok());
  EXPECT_FALSE(DecodeImageBytes(std::string("\x89PNG\r\n\x1a\n", 8) + "truncated", &m).ok());
  EXPECT_FALSE(DecodeImageBytes("", &m).ok());
  std::vector<uchar> png;
  cv::imencode(".png", cv::Mat(4, 4, CV_8UC1, cv::Scalar(7)), png);
  ASSERT_TRUE(DecodeImageBytes(std::string(png.begin(), png.end()), &m).ok());
  EXPECT_EQ(m.at<uchar>(0, 0), 7);
}

DecisionOptions Defaults() {
  DecisionOptions o;
  o.labels = DefaultCxrLabels();
  o.risk_map = DefaultRiskMap();
  return o;
}

std::vector<float> Logits(const std::map<std::string, double>& probs) {
  std::vector<float> s(18, -10.f);  // p ~ 4.5e-5
  const auto& labels = DefaultCxrLabels();
  for (const auto& [label, p] : probs) {
    auto i = std::find(labels.begin(), labels.end(), label) - labels.begin();
    s[i] = static_cast<float>(std::log(p / (1 - p)));
  }
  return s;
}

TEST(InferDecisionTest, Top1FollowsTheSeed) {
  DecisionOptions o = Defaults();
  ASSERT_TRUE(ValidateDecision(o).empty());
  Decision d = Decide(Logits({{"Pneumonia", 0.87}, {"Consolidation", 0.65}, {"Infiltration", 0.43}}), o);
  EXPECT_EQ(d.top_label, "Pneumonia");
  EXPECT_NEAR(d.top_prob, 0.87, 1e-6);
  EXPECT_EQ(d.level, "High");
  ASSERT_EQ(d.top_k.size(), 3u);
  EXPECT_EQ(d.top_k[1].label, "Consolidation");
  EXPECT_EQ(d.top_k[2].label, "Infiltration");
  // Infiltration is not in the seed's map: unmapped.
  EXPECT_EQ(Decide(Logits({{"Infiltration", 0.9}}), o).level, "Low");
  o.unmapped = "Medium";
  EXPECT_EQ(Decide(Logits({{"Infiltration", 0.9}}), o).level, "Medium");
}

TEST(InferDecisionTest, MaxRiskDoesNotHideASevereFinding) {
  DecisionOptions o = Defaults();
  o.threshold = 0.5;
  const auto scores = Logits({{"Effusion", 0.7}, {"Pneumothorax", 0.6}});
  EXPECT_EQ(Decide(scores, o).level, "Medium");  // top1: Effusion
  o.rule = "max_risk";
  Decision d = Decide(scores, o);
  EXPECT_EQ(d.level, "High");
  EXPECT_EQ(d.top_label, "Effusion");
  EXPECT_EQ(d.findings, (std::vector<std::string>{"Pneumothorax", "Effusion"}));
}

TEST(InferDecisionTest, ThresholdsAndNoFinding) {
  DecisionOptions o = Defaults();
  o.thresholds = {{"Effusion", 0.8}};
  o.threshold = 0.5;
  // Effusion is the top label but under its threshold; Fracture counts.
  Decision d = Decide(Logits({{"Effusion", 0.7}, {"Fracture", 0.55}}), o);
  EXPECT_EQ(d.top_label, "Effusion");
  EXPECT_EQ(d.level, "Low");
  EXPECT_EQ(d.findings, std::vector<std::string>{"Fracture"});
  d = Decide(Logits({{"Effusion", 0.7}, {"Fracture", 0.3}}), o);
  EXPECT_EQ(d.level, "no_finding");
  EXPECT_TRUE(d.findings.empty());
}

TEST(InferDecisionTest, OpThreshsMapEachThresholdToOneHalf) {
  DecisionOptions o = Defaults();
  o.op_threshs.assign(18, std::nan(""));
  o.op_threshs[0] = 0.2;  // Atelectasis
  Decision d = Decide(Logits({{"Atelectasis", 0.2}, {"Consolidation", 0.3}}), o);
  EXPECT_NEAR(d.probs[0], 0.5, 1e-6);
  EXPECT_NEAR(d.probs[1], 0.3, 1e-6);  // NaN: unchanged
  d = Decide(Logits({{"Atelectasis", 0.1}, {"Consolidation", 0.3}}), o);
  EXPECT_NEAR(d.probs[0], 0.25, 1e-6);
  d = Decide(Logits({{"Atelectasis", 0.6}}), o);
  EXPECT_NEAR(d.probs[0], 1 - 0.4 / 1.6, 1e-6);
  o.output = "probabilities";
  d = Decide(std::vector<float>(18, 0.1f), o);
  EXPECT_NEAR(d.probs[0], 0.25, 1e-6);
}

TEST(InferDecisionTest, ValidationNamesTheParam) {
  DecisionOptions o = Defaults();
  o.risk_map["Pneumonitis"] = "High";
  o.risk_map["Edema"] = "Critical";
  o.op_threshs = {0.5};
  o.rule = "worst";
  auto errors = ValidateDecision(o);
  std::set<std::string> params;
  for (const auto& e : errors) params.insert(e.param);
  EXPECT_EQ(params, (std::set<std::string>{"risk_map", "op_threshs", "rule"}));
  EXPECT_EQ(errors.size(), 4u);
  o = Defaults();
  o.levels = {"High", "../x"};
  o.unmapped = "High";
  o.risk_map = {};
  EXPECT_EQ(ValidateDecision(o).size(), 1u);
}

}  // namespace
}  // namespace medpipe
