#include <sys/stat.h>

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "dataset/coco_io.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;

// A 3-image dataset: image 1 has IPH and EDH boxes, image 2 only EDH, image 3
// none. Categories EDH=1, IPH=3, SDH=6.
class FilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeExampleData(dir_ / "data", 1, 3);
    Dataset boxes;
    boxes.categories = {{1, "EDH", "h"}, {3, "IPH", "h"}, {6, "SDH", "h"}};
    for (int i = 1; i <= 3; ++i) {
      Image img;
      img.id = i;
      img.file_name = "P0001_00" + std::to_string(i) + ".png";
      img.width = img.height = 64;
      boxes.images.push_back(img);
    }
    auto box = [](int64_t id, int64_t image, int64_t category, double x, double y, double w) {
      Annotation a;
      a.id = id, a.image_id = image, a.category_id = category;
      a.bbox[0] = x, a.bbox[1] = y, a.bbox[2] = w, a.bbox[3] = w;
      a.area = w * w;
      return a;
    };
    boxes.annotations = {box(1, 1, 3, 1, 1, 5), box(2, 1, 1, 9, 9, 5), box(3, 2, 1, 2, 2, 4)};
    testing::WriteText(dir_ / "data/boxes.json", SerializeCoco(boxes));
  }
  testing::RunResult Run(const std::string& params) {
    return testing::RunYaml(BuiltinRegistry(), dir_.path(),
                            "workdir: work\nstages:\n"
                            "  - id: ann\n    kind: annotate\n    params: {images: data/images, annotations: "
                            "data/boxes.json}\n"
                            "  - id: f\n    kind: filter\n    inputs: [ann]\n    params: " + params + "\n");
  }
  Dataset Output() {
    Result<Dataset> ds = ReadCoco(dir_ / "work/f/dataset.json");
    EXPECT_TRUE(ds.ok()) << ds.status().ToString();
    return ds.ok() ? *ds : Dataset{};
  }
  TempDir dir_;
};

TEST_F(FilterTest, KeepsListedCategoriesRenumberedAndEmptiedImagesAsNegativesWhenAsked) {
  ASSERT_EQ(Run("{categories: [SDH, IPH], emptied_images: keep}").summary.exit_code, 0);
  Dataset ds = Output();
  ASSERT_EQ(ds.categories.size(), 2u);
  EXPECT_EQ(ds.categories[0].name, "SDH");
  EXPECT_EQ(ds.categories[0].id, 1);
  EXPECT_EQ(ds.categories[1].name, "IPH");
  EXPECT_EQ(ds.categories[1].id, 2);
  ASSERT_EQ(ds.images.size(), 3u);
  ASSERT_EQ(ds.annotations.size(), 1u);
  EXPECT_EQ(ds.annotations[0].category_id, 2);
  EXPECT_EQ(ds.annotations[0].image_id, 1);
  EXPECT_EQ(ds.annotations[0].bbox[0], 1);
}

// The default: an image whose only box was EDH showed a bleed; it must not
// become a negative of the smaller set.
TEST_F(FilterTest, DropsEmptiedImagesByDefaultButKeepsOriginalNegatives) {
  ASSERT_EQ(Run("{categories: [IPH], renumber: false}").summary.exit_code, 0);
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), 2u) << "image 2 lost its only box and is dropped; image 3 was a negative";
  EXPECT_EQ(ds.images[0].file_name, "images/P0001_001.png");
  EXPECT_EQ(ds.images[1].file_name, "images/P0001_003.png");
  EXPECT_EQ(ds.categories[0].id, 3);
  EXPECT_EQ(ds.annotations[0].category_id, 3);
}

TEST_F(FilterTest, ReportsTheNegativeSharePerSplitAfterFiltering) {
  ASSERT_EQ(Run("{categories: [IPH], emptied_images: keep}").summary.exit_code, 0);
  std::string report = testing::ReadText(dir_ / "work/f/report.json");
  // Unsplit input: images 2 (emptied, kept) and 3 are negatives of 3.
  EXPECT_NE(report.find("\"unsplit.negative_share_bp\": 6667"), std::string::npos) << report;
  EXPECT_NE(report.find("\"unsplit.negatives\": 2"), std::string::npos) << report;
  EXPECT_NE(testing::ReadText(dir_ / "work/.medpipe/run.log").find("negatives after filtering: unsplit 66.7% (2 of 3)"),
            std::string::npos);
}

// negative_share: as_input brings each split back to its input's share after
// the emptied images went, dropping a source negative with its copies.
TEST(FilterTrim, NegativeShareAsInputTrimsNegativesPerSplit) {
  TempDir dir;
  Dataset ds;
  ds.categories = {{1, "EDH", "h"}, {2, "IPH", "h"}};
  auto add = [&](const std::string& split, const std::string& name, int category, const std::string& origin = "") {
    Image img;
    img.id = static_cast<int64_t>(ds.images.size()) + 1;
    img.file_name = "images/" + name + ".png";
    img.split = split;
    if (!origin.empty()) img.origin.image = "images/" + origin + ".png";
    ds.images.push_back(img);
    if (category > 0) {
      Annotation a;
      a.id = static_cast<int64_t>(ds.annotations.size()) + 1;
      a.image_id = img.id, a.category_id = category;
      a.bbox[2] = a.bbox[3] = 4;
      ds.annotations.push_back(a);
    }
  };
  // train: 6 IPH, 2 EDH-only, 8 negatives (one of them with 2 copies): 50%.
  for (int i = 0; i < 6; ++i) add("train", "pos" + std::to_string(i), 2);
  for (int i = 0; i < 2; ++i) add("train", "edh" + std::to_string(i), 1);
  for (int i = 0; i < 5; ++i) add("train", "neg" + std::to_string(i), 0);
  add("train", "negc", 0), add("train", "negc_aug1", 0, "negc"), add("train", "negc_aug2", 0, "negc");
  // valid: 2 IPH, 2 negatives, nothing emptied: untouched.
  for (int i = 0; i < 2; ++i) add("valid", "vpos" + std::to_string(i), 2), add("valid", "vneg" + std::to_string(i), 0);
  fs::create_directories(dir / "data");
  testing::WriteText(dir / "data/ds.json", SerializeCoco(ds));
  auto r = testing::RunYaml(testing::TestKinds(), dir.path(),
                            "workdir: work\nstages:\n"
                            "  - {id: given, kind: emit, params: {coco: data/ds.json}}\n"
                            "  - {id: f, kind: filter, inputs: [given], params: {categories: [IPH], "
                            "negative_share: as_input}}\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("f").reason;
  Result<Dataset> out = ReadCoco(dir / "work/f/dataset.json");
  ASSERT_TRUE(out.ok());
  std::map<std::string, int> negatives, positives;
  std::set<std::string> names;
  for (const Image& img : out->images) names.insert(img.file_name);
  auto by_image = out->AnnotationsByImage();
  for (const Image& img : out->images) ++(by_image.count(img.id) ? positives : negatives)[img.split];
  EXPECT_EQ(positives["train"], 6);
  EXPECT_EQ(negatives["train"], 6) << "back to 50%";
  EXPECT_EQ(negatives["valid"], 2);
  for (const Image& img : out->images) {
    if (!img.origin.image.empty()) {
      EXPECT_TRUE(names.count(img.origin.image)) << img.file_name << " outlived its source";
    }
  }
  std::string report = testing::ReadText(dir / "work/f/report.json");
  EXPECT_NE(report.find("\"train.negatives_trimmed\": 2"), std::string::npos) << report;
  EXPECT_NE(report.find("\"train.negative_share_bp\": 5000"), std::string::npos) << report;
}

TEST_F(FilterTest, ImagesAreLinksToTheInputsNotCopies) {
  ASSERT_EQ(Run("{categories: [IPH]}").summary.exit_code, 0);
  fs::path out = dir_ / "work/f/images/P0001_001.png";
  ASSERT_TRUE(fs::is_symlink(out));
  EXPECT_TRUE(fs::read_symlink(out).is_relative());
  struct stat a, b;
  ASSERT_EQ(::stat(out.c_str(), &a), 0);
  ASSERT_EQ(::stat((dir_ / "data/images/P0001_001.png").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino) << "the link resolves to the original file";
}

TEST_F(FilterTest, SourcePixelsChangedInPlaceRerunDownstreamOfTheLinks) {
  ASSERT_EQ(Run("{categories: [IPH]}").summary.exit_code, 0);
  // Same name, new content: the links do not change, what they reach does.
  fs::copy_file(dir_ / "data/images/P0001_003.png", dir_ / "data/images/P0001_001.png",
                fs::copy_options::overwrite_existing);
  auto r = Run("{categories: [IPH]}");
  EXPECT_EQ(r.Of("ann").state, StageOutcome::State::kRan);
  EXPECT_EQ(r.Of("ann").reason, "source files changed");
  EXPECT_EQ(r.Of("ann").items.done, 1);
  EXPECT_EQ(r.Of("f").state, StageOutcome::State::kRan) << "a stage reading pixels behind the links must rerun";
  EXPECT_EQ(r.Of("f").reason, "input ann changed");
}

TEST_F(FilterTest, UnknownCategoryFailsTheStageListingTheKnownOnes) {
  auto r = Run("{categories: [IVH]}");
  EXPECT_EQ(r.summary.exit_code, 1);
  EXPECT_EQ(r.Of("f").reason, "category 'IVH' is not in input ann (it has: EDH, IPH, SDH)");
}

TEST_F(FilterTest, ParamErrorsAreConfigErrors) {
  EXPECT_THROW(Run("{categories: []}"), std::runtime_error);
  EXPECT_THROW(Run("{categories: [IPH, IPH]}"), std::runtime_error);
  EXPECT_THROW(Run("{categories: [IPH], emptied_images: maybe}"), std::runtime_error);
}

// An image refused for an unsafe file_name takes its kept boxes with it:
// they are counted and named, not lost quietly.
TEST(FilterUnsafeTest, RefusedImageCountsItsAnnotationsAsDropped) {
  TempDir dir;
  Dataset ds;
  ds.categories = {{1, "IPH", "h"}};
  for (const char* name : {"images/ok.png", "../outside.png"}) {
    Image img;
    img.id = static_cast<int64_t>(ds.images.size()) + 1;
    img.file_name = name;
    img.width = img.height = 64;
    ds.images.push_back(img);
    for (int k = 0; k < 2; ++k) {
      Annotation a;
      a.id = static_cast<int64_t>(ds.annotations.size()) + 1;
      a.image_id = img.id, a.category_id = 1;
      a.bbox[0] = a.bbox[1] = 1, a.bbox[2] = a.bbox[3] = 4;
      ds.annotations.push_back(a);
    }
  }
  testing::WriteText(dir / "data/ds.json", SerializeCoco(ds));
  testing::WriteText(dir / "data/images/ok.png", "x");
  auto r = testing::RunYaml(testing::TestKinds(), dir.path(),
                            "workdir: work\nstages:\n"
                            "  - {id: d, kind: emit, params: {coco: data/ds.json}}\n"
                            "  - {id: f, kind: filter, inputs: d, params: {categories: [IPH]}}\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("f").reason;
  std::string report = testing::ReadText(dir / "work/f/report.json");
  EXPECT_NE(report.find("\"annotations_dropped\": 2"), std::string::npos) << report;
  EXPECT_NE(report.find("image skipped with its 2 annotation(s)"), std::string::npos) << report;
}

}  // namespace
}  // namespace medpipe
