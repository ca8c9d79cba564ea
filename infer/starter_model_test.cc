// The starter network of `init --template cxr`: reproducible from its seed,
// loadable by infer's LoadModel and by PyTorch itself, and giving logits that
// depend on the image without saturating on a real radiograph.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

#include "infer/model.h"
#include "infer/model_info.h"
#include "infer/preprocess.h"
#include "infer/starter_model.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;

std::unique_ptr<Model> LoadStarter(const TempDir& tmp, uint64_t seed) {
  Result<std::string> bytes = StarterModelBytes(seed);
  EXPECT_TRUE(bytes.ok()) << bytes.status().message();
  const fs::path file = tmp / ("starter_" + std::to_string(seed) + ".pt");
  testing::WriteText(file, bytes.ok() ? *bytes : "");
  Result<std::unique_ptr<Model>> model = LoadModel(file, ModelOptions{});
  EXPECT_TRUE(model.ok()) << model.status().message();
  return model.ok() ? std::move(*model) : nullptr;
}

// The real MONOCHROME1 chest radiograph, xrv-preprocessed, and the same image
// shifted sideways by a tenth of its width (the rest of the row wrapped).
std::vector<float> RealRadiographs() {
  cv::Mat image;
  EXPECT_TRUE(DecodeImageFile(fs::path(MEDPIPE_PUBLIC_DATA) / "cxr_dicom/gdcm-CR-MONO1-10-chest.dcm", &image).ok());
  cv::Mat shifted;
  cv::hconcat(image.colRange(image.cols / 10, image.cols), image.colRange(0, image.cols / 10), shifted);
  Result<PreprocessOptions> o = PreprocessPreset("xrv");
  EXPECT_TRUE(o.ok());
  std::vector<float> x(2 * TensorSize(*o));
  EXPECT_TRUE(Preprocess(image, *o, x.data()).ok());
  EXPECT_TRUE(Preprocess(shifted, *o, x.data() + TensorSize(*o)).ok());
  return x;
}

// init's starter network says it is untrained (a TorchScript extra file),
// so every result made with it says "untrained model: levels mean nothing".
TEST(StarterModelTest, CarriesTheUntrainedMark) {
  Result<std::string> bytes = StarterModelBytes(7);
  ASSERT_TRUE(bytes.ok());
  TempDir tmp;
  testing::WriteText(tmp / "starter.pt", *bytes);
  Result<ModelInfo> info = InspectModel(tmp / "starter.pt");
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_TRUE(info->untrained);
  EXPECT_EQ(info->outputs, kStarterModelOutputs);
  EXPECT_NE(info->name.find("starter"), std::string::npos) << info->name;
  EXPECT_NE(info->name.find("untrained"), std::string::npos) << info->name;
}

TEST(StarterModelTest, TheSameSeedGivesTheSameBytesAnotherSeedOtherScores) {
  Result<std::string> a = StarterModelBytes(3), b = StarterModelBytes(3), c = StarterModelBytes(4);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);

  TempDir tmp;
  const std::vector<float> x = RealRadiographs();
  auto m3 = LoadStarter(tmp, 3), m4 = LoadStarter(tmp, 4);
  ASSERT_TRUE(m3 && m4);
  auto y3 = m3->Forward(x.data(), 2, 1, 224, 224), y4 = m4->Forward(x.data(), 2, 1, 224, 224);
  ASSERT_TRUE(y3.ok() && y4.ok());
  EXPECT_NE(*y3, *y4);
}

TEST(StarterModelTest, LogitsOnARealRadiographDependOnTheImageAndDoNotSaturate) {
  TempDir tmp;
  auto model = LoadStarter(tmp, 3);
  ASSERT_TRUE(model);
  const std::vector<float> x = RealRadiographs();
  auto y = model->Forward(x.data(), 2, 1, 224, 224);
  ASSERT_TRUE(y.ok()) << y.status().message();
  ASSERT_EQ(y->size(), 2u * kStarterModelOutputs);
  EXPECT_EQ(model->num_outputs(), kStarterModelOutputs);
  double lo = 1e9, hi = -1e9, moved = 0;
  for (int j = 0; j < kStarterModelOutputs; ++j) {
    for (int k = 0; k < 2; ++k) {
      const float v = (*y)[k * kStarterModelOutputs + j];
      ASSERT_TRUE(std::isfinite(v));
      lo = std::min<double>(lo, v), hi = std::max<double>(hi, v);
    }
    moved = std::max<double>(moved, std::abs((*y)[j] - (*y)[kStarterModelOutputs + j]));
  }
  // Sigmoid(+-4.6) is 0.01 / 0.99: the probabilities stay inside.
  EXPECT_GT(lo, -4.6);
  EXPECT_LT(hi, 4.6);
  EXPECT_GT(hi - lo, 1.0) << "the labels' logits spread";
  EXPECT_GT(moved, 0.2) << "shifting the image changes its logits";

  // The same image alone gives the same logits as in the batch: images do
  // not influence each other.
  auto one = model->Forward(x.data() + 224 * 224, 1, 1, 224, 224);
  ASSERT_TRUE(one.ok());
  for (int j = 0; j < kStarterModelOutputs; ++j) EXPECT_NEAR((*one)[j], (*y)[kStarterModelOutputs + j], 1e-5);

  // A flat image has no left-right difference: the logits are the bias, not NaN.
  std::vector<float> flat(224 * 224, 100.f);
  auto f = model->Forward(flat.data(), 1, 1, 224, 224);
  ASSERT_TRUE(f.ok());
  for (float v : *f) EXPECT_TRUE(std::isfinite(v));
}

// PyTorch reads the archive too and computes the same logits: the file is a
// standard TorchScript export, not something only medpipe understands.
TEST(StarterModelTest, PyTorchLoadsItAndAgrees) {
  TempDir tmp;
  auto model = LoadStarter(tmp, 3);
  ASSERT_TRUE(model);
  const std::vector<float> x = RealRadiographs();
  std::ofstream(tmp / "x.f32", std::ios::binary)
      .write(reinterpret_cast<const char*>(x.data()), static_cast<std::streamsize>(x.size() * sizeof(float)));
  const std::string script =
      "import sys, numpy as np, torch\n"
      "m = torch.jit.load(sys.argv[1]).eval()\n"
      "x = torch.from_numpy(np.fromfile(sys.argv[2], dtype='<f4').reshape(2, 1, 224, 224))\n"
      "with torch.no_grad():\n"
      "    y = m(x)\n"
      "print(' '.join(repr(float(v)) for v in y.flatten()))\n";
  testing::WriteText(tmp / "ref.py", script);
  auto r = testing::RunProcess({MEDPIPE_PYTHON, (tmp / "ref.py").string(), (tmp / "starter_3.pt").string(),
                                (tmp / "x.f32").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream in(r.out);
  std::vector<double> ref;
  for (double v; in >> v;) ref.push_back(v);
  auto y = model->Forward(x.data(), 2, 1, 224, 224);
  ASSERT_TRUE(y.ok());
  ASSERT_EQ(ref.size(), y->size());
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(ref[i], (*y)[i], 1e-4) << i;
}

}  // namespace
}  // namespace medpipe
