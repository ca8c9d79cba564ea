#include <fmt/format.h>
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <rapidjson/document.h>

#include <cmath>
#include <random>
#include <set>

#include "dataset/coco_io.h"
#include "stages/augment_transform.h"
#include "stages/link_images.h"
#include "stages/registry.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;

// ---- The transform math, against the analytic maps ----

BoxResult Box(const CopyPlan& plan, int w, int h, std::initializer_list<double> b, double min_vis = 0.3) {
  double box[4];
  std::copy(b.begin(), b.end(), box);
  return TransformBox(BoxAffine(plan, w, h), box, w, h, min_vis);
}

TEST(AugmentTransform, HflipMirrorsBoxesExactly) {
  CopyPlan p;
  p.hflip = true;
  BoxResult r = Box(p, 100, 80, {10.25, 5, 20.5, 30});
  ASSERT_TRUE(r.kept);
  EXPECT_EQ(r.bbox[0], 100 - 10.25 - 20.5);  // x' = W - x - w
  EXPECT_EQ(r.bbox[1], 5);
  EXPECT_EQ(r.bbox[2], 20.5);
  EXPECT_EQ(r.bbox[3], 30);
}

TEST(AugmentTransform, QuarterTurnAboutTheCentreOfASquareImage) {
  CopyPlan p;
  p.angle = 90;  // counterclockwise on screen: (x, y) -> (y, W - x)
  BoxResult r = Box(p, 100, 100, {10, 20, 20, 40});
  ASSERT_TRUE(r.kept);
  EXPECT_EQ(r.bbox[0], 20);
  EXPECT_EQ(r.bbox[1], 70);
  EXPECT_EQ(r.bbox[2], 40);
  EXPECT_EQ(r.bbox[3], 20);
  p.angle = -90;  // clockwise: (x, y) -> (H - y, x)
  r = Box(p, 100, 100, {10, 20, 20, 40});
  EXPECT_EQ(r.bbox[0], 40);
  EXPECT_EQ(r.bbox[1], 10);
  EXPECT_EQ(r.bbox[2], 40);
  EXPECT_EQ(r.bbox[3], 20);
}

TEST(AugmentTransform, FortyFiveDegreesGrowsTheBoundingBoxBySqrt2) {
  CopyPlan p;
  p.angle = 45;
  BoxResult r = Box(p, 100, 100, {40, 40, 20, 20});
  ASSERT_TRUE(r.kept);
  EXPECT_NEAR(r.bbox[0], 50 - 10 * std::sqrt(2.0), 1e-9);
  EXPECT_NEAR(r.bbox[2], 20 * std::sqrt(2.0), 1e-9);
  EXPECT_NEAR(r.bbox[3], 20 * std::sqrt(2.0), 1e-9);
}

TEST(AugmentTransform, ScaleAboutTheCentre) {
  CopyPlan p;
  p.scale = 2;
  BoxResult r = Box(p, 100, 60, {40, 20, 20, 10});  // centre (50, 30)
  ASSERT_TRUE(r.kept);
  EXPECT_DOUBLE_EQ(r.bbox[0], 30);
  EXPECT_DOUBLE_EQ(r.bbox[1], 10);
  EXPECT_DOUBLE_EQ(r.bbox[2], 40);
  EXPECT_DOUBLE_EQ(r.bbox[3], 20);
  p.scale = 0.5;
  r = Box(p, 100, 60, {0, 0, 100, 60});
  EXPECT_DOUBLE_EQ(r.bbox[0], 25);
  EXPECT_DOUBLE_EQ(r.bbox[1], 15);
  EXPECT_DOUBLE_EQ(r.bbox[2], 50);
  EXPECT_DOUBLE_EQ(r.bbox[3], 30);
}

TEST(AugmentTransform, TranslationClipsAndMinVisibilityDrops) {
  CopyPlan p;
  p.tx = 0.2;  // 20 px right in a 100 px image
  p.ty = -0.1;
  BoxResult half = Box(p, 100, 100, {70, 30, 20, 20});  // to x in [90, 110]: half inside
  ASSERT_TRUE(half.kept);
  EXPECT_DOUBLE_EQ(half.bbox[0], 90);
  EXPECT_DOUBLE_EQ(half.bbox[1], 20);
  EXPECT_DOUBLE_EQ(half.bbox[2], 10);
  EXPECT_DOUBLE_EQ(half.bbox[3], 20);
  EXPECT_DOUBLE_EQ(half.visibility, 0.5);

  BoxResult mostly_out = Box(p, 100, 100, {78, 30, 20, 20});  // [98, 118]: 10% inside
  EXPECT_FALSE(mostly_out.kept);
  EXPECT_NEAR(mostly_out.visibility, 0.1, 1e-12);
  EXPECT_TRUE(Box(p, 100, 100, {78, 30, 20, 20}, 0.05).kept) << "a lower threshold keeps it";
  EXPECT_FALSE(Box(p, 100, 100, {85, 30, 10, 10}, 0.0).kept) << "entirely outside is dropped at any threshold";
}

// Polygon vertices as (x, y) pairs, rounded to 1e-9 so exact maps compare.
std::vector<std::pair<double, double>> Vertices(const std::string& json) {
  std::vector<std::pair<double, double>> out;
  rapidjson::Document d;
  d.Parse(json.c_str());
  if (d.HasParseError() || !d.IsArray()) return out;
  for (const auto& ring : d.GetArray()) {
    for (rapidjson::SizeType k = 0; k + 1 < ring.Size(); k += 2) {
      out.emplace_back(std::round(ring[k].GetDouble() * 1e9) / 1e9, std::round(ring[k + 1].GetDouble() * 1e9) / 1e9);
    }
  }
  return out;
}

TEST(AugmentTransform, PolygonsFollowTheBoxMapAndAreClipped) {
  CopyPlan p;
  p.angle = 90;  // (x, y) -> (y, W - x), as for the boxes
  SegmentationResult r = TransformSegmentation(BoxAffine(p, 100, 100), "[[10,20,30,20,30,60],[1,1,2,1,2,2]]", 100, 100);
  ASSERT_TRUE(r.polygons);
  using V = std::vector<std::pair<double, double>>;
  EXPECT_EQ(Vertices(r.json), (V{{20, 90}, {20, 70}, {60, 70}, {1, 99}, {1, 98}, {2, 98}}));
  CopyPlan f;
  f.hflip = true;  // x' = W - x
  EXPECT_EQ(Vertices(TransformSegmentation(BoxAffine(f, 64, 64), "[[10.5,2,20,2,20,8]]", 64, 64).json),
            (V{{53.5, 2}, {44, 2}, {44, 8}}));

  // 50 px right in a 100 px image: the square [40, 80] x [10, 40] is cut at x = 100.
  CopyPlan t;
  t.tx = 0.5;
  r = TransformSegmentation(BoxAffine(t, 100, 100), "[[40,10,80,10,80,40,40,40],[60,50,70,50,70,60]]", 100, 100);
  ASSERT_TRUE(r.polygons);
  V got = Vertices(r.json);
  using S = std::set<std::pair<double, double>>;
  EXPECT_EQ(S(got.begin(), got.end()), (S{{90, 10}, {100, 10}, {100, 40}, {90, 40}}))
      << "the second polygon is entirely outside: left out; " << r.json;
  for (const auto& [x, y] : got) EXPECT_TRUE(x >= 0 && x <= 100 && y >= 0 && y <= 100);
  EXPECT_EQ(TransformSegmentation(BoxAffine(t, 100, 100), "[[60,50,70,50,70,60]]", 100, 100).json, "");
  EXPECT_FALSE(TransformSegmentation(BoxAffine(t, 100, 100), "{\"counts\":[1,2],\"size\":[4,4]}", 100, 100).polygons)
      << "RLE is not a polygon list";
}

cv::Mat RandomImage(int rows, int cols, int type, uint64_t seed) {
  cv::Mat m(rows, cols, type);
  cv::RNG(seed).fill(m, cv::RNG::UNIFORM, 0, CV_MAT_DEPTH(type) == CV_16U ? 65536 : 256);
  return m;
}

bool SamePixels(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::countNonZero(cv::Mat(a != b).reshape(1)) == 0;
}

TEST(AugmentTransform, HflipPixelsEqualCvFlip) {
  CopyPlan p;
  p.hflip = true;
  for (int type : {CV_8UC1, CV_8UC3, CV_16UC1}) {
    cv::Mat img = RandomImage(23, 37, type, 5);
    cv::Mat want;
    cv::flip(img, want, 1);
    EXPECT_TRUE(SamePixels(ApplyPlan(p, img), want)) << "type " << type;
  }
}

TEST(AugmentTransform, QuarterTurnPixelsEqualCvRotate) {
  CopyPlan p;
  p.angle = 90;
  cv::Mat img = RandomImage(32, 32, CV_8UC1, 6);
  cv::Mat want;
  cv::rotate(img, want, cv::ROTATE_90_COUNTERCLOCKWISE);
  EXPECT_TRUE(SamePixels(ApplyPlan(p, img), want));
}

TEST(AugmentTransform, IdentityPlanKeepsPixelsAndToneCurveIsAnalytic) {
  cv::Mat img = RandomImage(16, 16, CV_8UC1, 7);
  EXPECT_TRUE(SamePixels(ApplyPlan(CopyPlan{}, img), img));

  cv::Mat ramp(1, 256, CV_8UC1);
  for (int v = 0; v < 256; ++v) ramp.at<uint8_t>(v) = static_cast<uint8_t>(v);
  CopyPlan p;
  p.brightness = 0.2;
  cv::Mat b = ApplyPlan(p, ramp);
  EXPECT_EQ(b.at<uint8_t>(0), 51);
  EXPECT_EQ(b.at<uint8_t>(250), 255) << "saturates";
  p = CopyPlan{};
  p.gamma = 2;
  cv::Mat g = ApplyPlan(p, ramp);
  EXPECT_EQ(g.at<uint8_t>(255), 255);
  EXPECT_EQ(g.at<uint8_t>(51), cvRound(std::pow(51 / 255.0, 2) * 255));
  p = CopyPlan{};
  p.contrast = 0;  // everything to mid-grey
  EXPECT_EQ(cv::countNonZero(ApplyPlan(p, ramp) != 128), 0);
}

TEST(AugmentTransform, NoiseComesFromThePlanSeedOnly) {
  cv::Mat img(64, 64, CV_16UC1, cv::Scalar(30000));
  CopyPlan p;
  p.noise_sigma = 0.01;
  p.noise_seed = 42;
  cv::Mat a = ApplyPlan(p, img);
  cv::Mat b = ApplyPlan(p, img);
  EXPECT_TRUE(SamePixels(a, b));
  cv::Scalar mean, sd;
  cv::meanStdDev(a, mean, sd);
  EXPECT_NEAR(sd[0], 0.01 * 65535, 0.1 * 0.01 * 65535);
  p.noise_seed = 43;
  EXPECT_FALSE(SamePixels(ApplyPlan(p, img), a));
}

TEST(AugmentTransform, PlansAreDeterministicWithinRangesAndRespectProbabilities) {
  AugmentTransforms t;
  EXPECT_EQ(SamplePlan(t, 1, "images/a.png", 1).Describe(), SamplePlan(t, 1, "images/a.png", 1).Describe());
  std::set<std::string> seen;
  for (int k = 1; k <= 200; ++k) {
    CopyPlan p = SamplePlan(t, 1, "images/a.png", k);
    seen.insert(p.Describe());
    EXPECT_LE(std::abs(p.angle), 10);
    EXPECT_TRUE(p.scale >= 0.9 && p.scale <= 1.1);
    EXPECT_LE(std::abs(p.tx), 0.05);
    EXPECT_TRUE(p.gamma >= 0.8 && p.gamma <= 1.2);
  }
  EXPECT_GT(seen.size(), 190u) << "copies differ";
  EXPECT_NE(SamplePlan(t, 1, "images/a.png", 1).Describe(), SamplePlan(t, 2, "images/a.png", 1).Describe());

  AugmentTransforms none;
  none.hflip = 0;
  for (RandomRange* r : {&none.rotate, &none.scale, &none.translate, &none.brightness, &none.contrast, &none.gamma,
                         &none.noise, &none.blur}) {
    r->p = 0;
  }
  EXPECT_EQ(SamplePlan(none, 1, "a.png", 1).Describe(), "none");
  AugmentTransforms all = none;
  all.hflip = 1;
  all.rotate = {1, 5, 5};
  all.scale = {1, 1.25, 1.25};
  all.blur = {1, 0.5, 0.5};
  EXPECT_EQ(SamplePlan(all, 1, "a.png", 1).Describe(), "hflip,rotate=5,scale=1.25,blur=0.5");
}

// ---- The stage, through the runner ----

// A test-only kind: splits by position, cycling through `cycle`.
class CycleSplit : public Stage {
 public:
  explicit CycleSplit(std::vector<std::string> cycle) : cycle_(std::move(cycle)) {}
  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset ds, ctx.ReadInputDataset(0));
    std::vector<LinkSpec> links;
    for (size_t i = 0; i < ds.images.size(); ++i) {
      ds.images[i].split = cycle_[i % cycle_.size()];
      links.push_back(LinkSpec{ds.images[i].file_name, ctx.inputs()[0].dir / ds.images[i].file_name});
    }
    MEDPIPE_RETURN_IF_ERROR(LinkImages(ctx, links).status());
    return ctx.WriteDataset(ds);
  }

 private:
  std::vector<std::string> cycle_;
};

const Registry& TestRegistry() {
  static const Registry* r = [] {
    auto* reg = new Registry;
    RegisterAnnotate(reg);
    RegisterAugment(reg);
    KindSpec spec;
    spec.name = "cycle_split";
    spec.version = 1;
    spec.min_inputs = spec.max_inputs = 1;
    spec.params = {{"cycle", ParamType::kStringList, "[train]", false, "", {}}};
    reg->Add(StageKind{spec, [](const StageDecl& d, uint64_t) -> Result<std::unique_ptr<Stage>> {
                         return std::unique_ptr<Stage>(new CycleSplit(d.params.GetStringList("cycle")));
                       }});
    return reg;
  }();
  return *r;
}

constexpr const char* kOnlyHflip =
    "{copies: 1, hflip: 1, rotate: {p: 0}, scale: {p: 0}, translate: {p: 0}, brightness: {p: 0}, "
    "contrast: {p: 0}, gamma: {p: 0}, noise: {p: 0}, blur: {p: 0}}";

// 8 images of 64x64 (2 patients x 4 slices) split train, valid, train, test,
// ...; every image has a box in the middle and one near the right edge.
class AugmentStageTest : public ::testing::Test {
 protected:
  void SetUp() override { MakeData(dir_.path()); }
  static void MakeData(const fs::path& dir) {
    testing::MakeExampleData(dir / "data", 2, 4);
    Dataset boxes;
    boxes.categories = {{1, "IPH", "h"}, {2, "SDH", "h"}};
    for (int p = 1; p <= 2; ++p) {
      for (int s = 1; s <= 4; ++s) {
        Image img;
        img.id = static_cast<int64_t>(boxes.images.size()) + 1;
        img.file_name = fmt::format("P{:04d}_{:03d}.png", p, s);
        img.width = img.height = 64;
        boxes.images.push_back(img);
        for (int k = 0; k < 2; ++k) {
          Annotation a;
          a.id = static_cast<int64_t>(boxes.annotations.size()) + 1;
          a.image_id = img.id;
          a.category_id = k + 1;
          a.bbox[0] = k ? 52 : 24, a.bbox[1] = 20, a.bbox[2] = k ? 11 : 16, a.bbox[3] = 12;
          a.area = a.bbox[2] * a.bbox[3];
          boxes.annotations.push_back(a);
        }
      }
    }
    testing::WriteText(dir / "data/boxes.json", SerializeCoco(boxes));
  }
  static testing::RunResult RunIn(const fs::path& dir, const std::string& params, int seed = 1, int threads = 0) {
    RunOptions options;
    options.threads = threads;
    return testing::RunYaml(TestRegistry(), dir,
                            fmt::format("workdir: work\nseed: {}\nstages:\n"
                                        "  - id: ann\n    kind: annotate\n"
                                        "    params: {{images: data/images, annotations: data/boxes.json}}\n"
                                        "  - id: sp\n    kind: cycle_split\n    inputs: [ann]\n"
                                        "    params: {{cycle: [train, valid, train, test]}}\n"
                                        "  - id: aug\n    kind: augment\n    inputs: [sp]\n    params: {}\n",
                                        seed, params),
                            options);
  }
  testing::RunResult Run(const std::string& params, int seed = 1) { return RunIn(dir_.path(), params, seed); }
  Dataset Output() {
    Result<Dataset> ds = ReadCoco(dir_ / "work/aug/dataset.json");
    EXPECT_TRUE(ds.ok()) << ds.status().ToString();
    return ds.ok() ? *ds : Dataset{};
  }
  TempDir dir_;
};

TEST_F(AugmentStageTest, TrainGetsCopiesValidAndTestPassThroughAsLinks) {
  auto r = Run("{}");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("aug").reason;
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), 4u * 4 + 4) << "4 train images with 3 copies each, 4 valid/test images";
  std::map<std::string, const Image*> by_name;
  for (const auto& img : ds.images) by_name[img.file_name] = &img;
  int copies = 0;
  for (const auto& img : ds.images) {
    const fs::path file = dir_ / ("work/aug/" + img.file_name);
    ASSERT_TRUE(fs::exists(file)) << img.file_name;
    if (img.split != "train") {
      EXPECT_TRUE(img.origin.empty());
      EXPECT_EQ(img.file_name.find("_aug"), std::string::npos);
      EXPECT_TRUE(fs::is_symlink(file));
      continue;
    }
    if (img.origin.empty()) {
      EXPECT_TRUE(fs::is_symlink(file)) << "originals are links";
      continue;
    }
    ++copies;
    EXPECT_FALSE(fs::is_symlink(file));
    ASSERT_TRUE(by_name.count(img.origin.image)) << img.origin.image;
    const Image& src = *by_name[img.origin.image];
    EXPECT_EQ(src.split, "train");
    EXPECT_EQ(img.patient_id, src.patient_id);
    EXPECT_EQ(img.source, src.source);
    EXPECT_EQ(img.labels, src.labels);
    EXPECT_FALSE(img.origin.transform.empty());
    const std::string stem = src.file_name.substr(0, src.file_name.size() - 4);
    EXPECT_EQ(img.file_name.rfind(stem + "_aug", 0), 0u) << img.file_name;
    cv::Mat px = cv::imread(file.string(), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(px.empty());
    EXPECT_EQ(px.type(), CV_8UC1) << "grey 8-bit in, grey 8-bit out";
    EXPECT_EQ(px.cols, 64);
  }
  EXPECT_EQ(copies, 12);
  for (size_t i = 0; i < ds.annotations.size(); ++i) EXPECT_EQ(ds.annotations[i].id, static_cast<int64_t>(i) + 1);
}

TEST_F(AugmentStageTest, HflipCopyIsTheMirroredImageWithMirroredBoxes) {
  ASSERT_EQ(Run(kOnlyHflip).summary.exit_code, 0);
  Dataset ds = Output();
  auto by_image = ds.AnnotationsByImage();
  int checked = 0;
  for (const auto& img : ds.images) {
    if (img.origin.empty()) continue;
    EXPECT_EQ(img.origin.transform, "hflip");
    cv::Mat src = cv::imread((dir_ / ("work/aug/" + img.origin.image)).string(), cv::IMREAD_UNCHANGED);
    cv::Mat got = cv::imread((dir_ / ("work/aug/" + img.file_name)).string(), cv::IMREAD_UNCHANGED);
    cv::Mat want;
    cv::flip(src, want, 1);
    EXPECT_TRUE(SamePixels(got, want)) << img.file_name;
    const auto& boxes = by_image[img.id];
    ASSERT_EQ(boxes.size(), 2u);
    EXPECT_EQ(ds.annotations[boxes[0]].bbox[0], 64 - 24 - 16);
    EXPECT_EQ(ds.annotations[boxes[1]].bbox[0], 64 - 52 - 11);
    EXPECT_EQ(ds.annotations[boxes[1]].bbox[2], 11);
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

TEST_F(AugmentStageTest, DroppedBoxesAreCounted) {
  // A shift right of 20-40% of 64 px pushes the edge box (x 52..63) out.
  const std::string params = "{hflip: 0, translate: {p: 1, fraction: 0.4}, rotate: {p: 0}, scale: {p: 0}}";
  ASSERT_EQ(Run(params).summary.exit_code, 0);
  Dataset ds = Output();
  auto by_image = ds.AnnotationsByImage();
  int64_t missing = 0;
  for (const auto& img : ds.images) {
    if (!img.origin.empty()) missing += 2 - static_cast<int64_t>(by_image[img.id].size());
  }
  EXPECT_GT(missing, 0);
  const std::string report = testing::ReadText(dir_ / "work/aug/report.json");
  EXPECT_NE(report.find(fmt::format("\"boxes_dropped\": {}", missing)), std::string::npos) << report;
  for (const auto& a : ds.annotations) {
    EXPECT_GE(a.bbox[0], 0);
    EXPECT_LE(a.bbox[0] + a.bbox[2], 64 + 1e-9);
  }
}

// Polygons go with their boxes: mirrored by an hflip copy, dropped with a
// box pushed out of the image.
TEST_F(AugmentStageTest, SegmentationsFollowTheirBoxes) {
  Result<Dataset> boxes = ReadCoco(dir_ / "data/boxes.json");
  ASSERT_TRUE(boxes.ok());
  for (auto& a : boxes->annotations) {
    // A triangle inside each box.
    const double x = a.bbox[0], y = a.bbox[1], w = a.bbox[2], h = a.bbox[3];
    a.segmentation = fmt::format("[[{},{},{},{},{},{}]]", x, y, x + w, y, x, y + h);
  }
  testing::WriteText(dir_ / "data/boxes.json", SerializeCoco(*boxes));
  ASSERT_EQ(Run(kOnlyHflip).summary.exit_code, 0);
  Dataset ds = Output();
  int checked = 0;
  for (const auto& a : ds.annotations) {
    ASSERT_FALSE(a.segmentation.empty());
    const Image& img = *std::find_if(ds.images.begin(), ds.images.end(), [&](const Image& i) { return i.id == a.image_id; });
    if (img.origin.empty()) continue;
    // The box [x, x + w] mirrored: the triangle's corners (x, y), (x + w, y), (x, y + h) go to W - x.
    const double x0 = 64 - a.bbox[0] - a.bbox[2], w = a.bbox[2], y = a.bbox[1], h = a.bbox[3];
    using V = std::vector<std::pair<double, double>>;
    EXPECT_EQ(Vertices(a.segmentation), (V{{64 - x0, y}, {64 - x0 - w, y}, {64 - x0, y + h}})) << a.segmentation;
    ++checked;
  }
  EXPECT_EQ(checked, 8);

  // A shift of 40% right drops the edge box and with it its polygon.
  fs::remove_all(dir_ / "work");
  ASSERT_EQ(Run("{hflip: 0, translate: {p: 1, fraction: 0.4}, rotate: {p: 0}, scale: {p: 0}}").summary.exit_code, 0);
  ds = Output();
  int copies_with_polygons = 0;
  for (const auto& a : ds.annotations) {
    for (const auto& [x, y] : Vertices(a.segmentation)) {
      EXPECT_GE(x, a.bbox[0] - 1e-9);
      EXPECT_LE(x, a.bbox[0] + a.bbox[2] + 1e-9);
      EXPECT_GE(y, a.bbox[1] - 1e-9);
      EXPECT_LE(y, a.bbox[1] + a.bbox[3] + 1e-9);
    }
    copies_with_polygons += !a.segmentation.empty();
  }
  EXPECT_EQ(copies_with_polygons, static_cast<int>(ds.annotations.size())) << "no box without its polygon";
  const std::string report = testing::ReadText(dir_ / "work/aug/report.json");
  EXPECT_NE(report.find("boxes_dropped"), std::string::npos) << report;
}

// merge, filter, split and export keep the polygons they are given.
TEST_F(AugmentStageTest, SegmentationsSurviveMergeFilterSplitAndExport) {
  Result<Dataset> boxes = ReadCoco(dir_ / "data/boxes.json");
  ASSERT_TRUE(boxes.ok());
  for (auto& a : boxes->annotations) a.segmentation = fmt::format("[[{},20,{},20,{},30]]", a.bbox[0], a.bbox[0] + 5, a.bbox[0]);
  testing::WriteText(dir_ / "data/boxes.json", SerializeCoco(*boxes));
  auto r = testing::RunYaml(BuiltinRegistry(), dir_.path(),
                            "workdir: work\nseed: 1\nstages:\n"
                            "  - {id: ann, kind: annotate, params: {images: data/images, annotations: data/boxes.json}}\n"
                            "  - {id: m, kind: merge, inputs: [ann], params: {categories: [IPH, SDH]}}\n"
                            "  - {id: f, kind: filter, inputs: [m], params: {categories: [IPH, SDH]}}\n"
                            "  - {id: s, kind: split, inputs: [f], params: {missing_patient: own_group}}\n"
                            "  - {id: x, kind: export, inputs: [s], params: {formats: [roboflow]}}\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason << r.Of("f").reason << r.Of("s").reason << r.Of("x").reason;
  for (const char* stage : {"m", "f", "s"}) {
    Result<Dataset> ds = ReadCoco(dir_ / "work" / stage / "dataset.json");
    ASSERT_TRUE(ds.ok());
    ASSERT_EQ(ds->annotations.size(), 16u) << stage;
    for (const auto& a : ds->annotations) {
      EXPECT_EQ(Vertices(a.segmentation).size(), 3u) << stage << ": " << a.segmentation;
    }
  }
  int exported = 0;
  for (const char* split : {"train", "valid", "test"}) {
    const fs::path f = dir_ / "work/x" / split / "_annotations.coco.json";
    if (!fs::exists(f)) continue;
    Result<Dataset> ds = ReadCoco(f);
    ASSERT_TRUE(ds.ok());
    for (const auto& a : ds->annotations) exported += Vertices(a.segmentation).size() == 3;
  }
  EXPECT_EQ(exported, 16) << "export writes every polygon";
}

TEST_F(AugmentStageTest, SameSeedSameBytesForAnyThreadCountOtherSeedDiffers) {
  TempDir other, reseeded;
  MakeData(other.path());
  MakeData(reseeded.path());
  ASSERT_EQ(RunIn(dir_.path(), "{}", 1, 1).summary.exit_code, 0);
  ASSERT_EQ(RunIn(other.path(), "{}", 1, 2).summary.exit_code, 0);
  ASSERT_EQ(RunIn(reseeded.path(), "{}", 2, 2).summary.exit_code, 0);
  auto a = testing::Snapshot(dir_ / "work/aug");
  auto b = testing::Snapshot(other / "work/aug");
  auto c = testing::Snapshot(reseeded / "work/aug");
  EXPECT_EQ(a.size(), 22u) << "20 images, dataset.json and report.json";
  EXPECT_TRUE(a == b) << "threads 1 and 2 give identical bytes";
  ASSERT_TRUE(c.count("images/P0001_001_aug1.png"));
  EXPECT_NE(a["images/P0001_001_aug1.png"], c["images/P0001_001_aug1.png"]);
  EXPECT_NE(a["dataset.json"], c["dataset.json"]);
}

TEST_F(AugmentStageTest, DeletedCopyIsRedoneAloneOnRerun) {
  ASSERT_EQ(Run("{}").summary.exit_code, 0);
  auto before = testing::Snapshot(dir_ / "work/aug");
  fs::remove(dir_ / "work/aug/images/P0001_003_aug2.png");
  auto r = Run("{}");
  EXPECT_EQ(r.Of("aug").state, StageOutcome::State::kRan);
  EXPECT_EQ(r.Of("aug").items.total, 8);
  EXPECT_EQ(r.Of("aug").items.done, 1);
  EXPECT_EQ(r.Of("aug").items.resumed, 7);
  EXPECT_TRUE(testing::Snapshot(dir_ / "work/aug") == before) << "the redone item gives the same bytes";

  // min_visibility only changes boxes: every item resumes.
  r = Run("{min_visibility: 0.9}");
  EXPECT_EQ(r.Of("aug").state, StageOutcome::State::kRan);
  EXPECT_EQ(r.Of("aug").items.resumed, 8);
}

TEST_F(AugmentStageTest, BadParamsAreConfigErrors) {
  for (const char* bad : {"{copies: 0}", "{hflip: 1.5}", "{rotate: {p: 2}}", "{rotate: {p: 0.5, deg: 3}}",
                          "{rotate: 10}", "{scale: {range: [1.2, 0.8]}}", "{scale: {range: 1.1}}",
                          "{gamma: {range: [0, 1]}}", "{noise: {sigma: [0.1, 2]}}", "{min_visibility: 1.5}",
                          "{png_filter: fast}", "{jpeg_quality: 0}", "{splits: []}", "{translate: {fraction: x}}"}) {
    EXPECT_THROW(Run(bad), std::runtime_error) << bad;
  }
}

TEST_F(AugmentStageTest, SixteenBitAndColourKeepTheirFormat) {
  // Replace two train sources: a 16-bit grey PNG and a colour PNG.
  cv::Mat deep = RandomImage(64, 64, CV_16UC1, 9);
  cv::Mat colour = RandomImage(64, 64, CV_8UC3, 10);
  ASSERT_TRUE(cv::imwrite((dir_ / "data/images/P0001_001.png").string(), deep));
  ASSERT_TRUE(cv::imwrite((dir_ / "data/images/P0001_003.png").string(), colour));
  ASSERT_EQ(Run(kOnlyHflip).summary.exit_code, 0);
  cv::Mat d = cv::imread((dir_ / "work/aug/images/P0001_001_aug1.png").string(), cv::IMREAD_UNCHANGED);
  cv::Mat c = cv::imread((dir_ / "work/aug/images/P0001_003_aug1.png").string(), cv::IMREAD_UNCHANGED);
  cv::Mat want_d, want_c;
  cv::flip(deep, want_d, 1);
  cv::flip(colour, want_c, 1);
  EXPECT_TRUE(SamePixels(d, want_d)) << "16-bit samples survive, channel order too";
  EXPECT_TRUE(SamePixels(c, want_c));
}

// A stage counter from the stage's report.json, 0 when absent.
int64_t ReportCounter(const fs::path& stage_dir, const std::string& key) {
  const std::string report = testing::ReadText(stage_dir / "report.json");
  const size_t at = report.find("\"" + key + "\": ");
  return at == std::string::npos ? 0 : std::stoll(report.substr(at + key.size() + 4));
}

TEST_F(AugmentStageTest, JpegStaysJpegAtItsQualityPngStaysPng) {
  // Make the first train image a JPEG.
  cv::Mat src = RandomImage(64, 64, CV_8UC1, 21);
  cv::GaussianBlur(src, src, cv::Size(9, 9), 3);
  ASSERT_TRUE(cv::imwrite((dir_ / "data/images/P0001_001.jpg").string(), src));
  fs::remove(dir_ / "data/images/P0001_001.png");
  std::string boxes = testing::ReadText(dir_ / "data/boxes.json");
  boxes.replace(boxes.find("P0001_001.png"), 13, "P0001_001.jpg");
  testing::WriteText(dir_ / "data/boxes.json", boxes);

  std::map<int, size_t> jpeg_size;
  for (int quality : {50, 95}) {
    ASSERT_EQ(Run(fmt::format("{{copies: 2, jpeg_quality: {}}}", quality)).summary.exit_code, 0);
    for (int k = 1; k <= 2; ++k) {
      const std::string jpg = testing::ReadText(dir_ / fmt::format("work/aug/images/P0001_001_aug{}.jpg", k));
      ASSERT_GT(jpg.size(), 3u);
      EXPECT_EQ(jpg.substr(0, 3), "\xFF\xD8\xFF") << "a JPEG source gives JPEG copies";
      cv::Mat d = cv::imread((dir_ / fmt::format("work/aug/images/P0001_001_aug{}.jpg", k)).string(),
                             cv::IMREAD_UNCHANGED);
      EXPECT_EQ(d.type(), CV_8UC1);
      EXPECT_EQ(d.cols, 64);
      jpeg_size[quality] += jpg.size();
      const std::string png = testing::ReadText(dir_ / fmt::format("work/aug/images/P0001_003_aug{}.png", k));
      EXPECT_EQ(png.substr(0, 8), "\x89PNG\r\n\x1a\n") << "a PNG source gives PNG copies";
    }
    Dataset ds = Output();
    EXPECT_EQ(std::count_if(ds.images.begin(), ds.images.end(),
                            [](const Image& i) { return i.file_name.find("P0001_001_aug") != std::string::npos; }),
              2);
  }
  EXPECT_LT(jpeg_size[50], jpeg_size[95]) << "jpeg_quality reaches the encoder";
}

TEST_F(AugmentStageTest, EveryCopyDiffersFromItsSourceAndRedrawsAreCounted) {
  // Rotation only, rarely drawn: most first draws are the identity.
  const std::string rare =
      "{copies: 6, hflip: 0, rotate: {p: 0.15, degrees: 20}, scale: {p: 0}, translate: {p: 0}, brightness: {p: 0}, "
      "contrast: {p: 0}, gamma: {p: 0}, noise: {p: 0}, blur: {p: 0}}";
  // One train image is black: no rotation changes it, so its copies stay
  // equal to it after the last redraw, and are reported.
  ASSERT_TRUE(cv::imwrite((dir_ / "data/images/P0002_001.png").string(), cv::Mat::zeros(64, 64, CV_8UC1)));
  testing::RunResult r = Run(rare);
  ASSERT_EQ(r.summary.exit_code, 0);
  int compared = 0;
  for (const char* stem : {"P0001_001", "P0001_003", "P0002_003"}) {
    cv::Mat src = cv::imread((dir_ / "data/images" / (std::string(stem) + ".png")).string(), cv::IMREAD_UNCHANGED);
    for (int k = 1; k <= 6; ++k) {
      cv::Mat copy = cv::imread((dir_ / fmt::format("work/aug/images/{}_aug{}.png", stem, k)).string(),
                                cv::IMREAD_UNCHANGED);
      ASSERT_FALSE(copy.empty());
      EXPECT_FALSE(SamePixels(src, copy)) << stem << " copy " << k;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 18);
  // With p = 0.15 per draw, 24 copies need far more than 24 draws.
  EXPECT_GT(ReportCounter(dir_ / "work/aug", "redraws"), 24);
  EXPECT_EQ(ReportCounter(dir_ / "work/aug", "copies_equal_to_source"), 6);
  // The recorded transforms are the ones applied: none is "none" for the
  // images that could change.
  for (const Image& img : Output().images) {
    if (!img.origin.empty() && img.file_name.find("P0002_001") == std::string::npos) {
      EXPECT_NE(img.origin.transform, "none") << img.file_name;
    }
  }
  // Same bytes on a second run in another folder, whatever the thread count.
  TempDir other;
  MakeData(other.path());
  ASSERT_TRUE(cv::imwrite((other / "data/images/P0002_001.png").string(), cv::Mat::zeros(64, 64, CV_8UC1)));
  ASSERT_EQ(RunIn(other.path(), rare, 1, 1).summary.exit_code, 0);
  EXPECT_EQ(testing::ReadText(dir_ / "work/aug/images/P0001_001_aug3.png"),
            testing::ReadText(other / "work/aug/images/P0001_001_aug3.png"));
}

TEST_F(AugmentStageTest, NoPossibleTransformIsAConfigError) {
  EXPECT_THROW(Run("{hflip: 0, rotate: {p: 0}, scale: {p: 0}, translate: {p: 0}, brightness: {p: 0}, "
                   "contrast: {p: 0}, gamma: {p: 0}, noise: {p: 0}, blur: {p: 0}}"),
               std::runtime_error);
  EXPECT_THROW(Run("{png_compression: isal}"), std::runtime_error);
}

TEST_F(AugmentStageTest, PngCompressionChoosesTheBackEndNotThePixels) {
  std::map<std::string, std::string> bytes;
  for (const std::string comp : {"fast", "small", "zlib"}) {
    ASSERT_EQ(Run("{png_compression: " + comp + "}").summary.exit_code, 0);
    bytes[comp] = testing::ReadText(dir_ / "work/aug/images/P0001_001_aug1.png");
    cv::Mat copy = cv::imread((dir_ / "work/aug/images/P0001_001_aug1.png").string(), cv::IMREAD_UNCHANGED);
    static cv::Mat first;
    if (first.empty()) first = copy;
    EXPECT_TRUE(SamePixels(first, copy)) << comp;
  }
  EXPECT_NE(bytes["fast"], bytes["small"]);
  EXPECT_NE(bytes["fast"], bytes["zlib"]);
}

}  // namespace
}  // namespace medpipe
