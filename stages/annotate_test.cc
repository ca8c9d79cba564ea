#include <rapidjson/document.h>

#include <gtest/gtest.h>

#include "dataset/coco_io.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;
using State = StageOutcome::State;

class AnnotateTest : public ::testing::Test {
 protected:
  void SetUp() override { testing::MakeExampleData(dir_ / "data", 2, 3); }
  testing::RunResult Run(const std::string& params) {
    return testing::RunYaml(BuiltinRegistry(), dir_.path(),
                            "workdir: work\nstages:\n  - id: ann\n    kind: annotate\n    params:\n      images: "
                            "data/images\n" + params);
  }
  Dataset Output() {
    Result<Dataset> ds = ReadCoco(dir_ / "work/ann/dataset.json");
    EXPECT_TRUE(ds.ok()) << ds.status().ToString();
    return ds.ok() ? *ds : Dataset{};
  }
  TempDir dir_;
};

TEST_F(AnnotateTest, ListsImagesWithSizesPatientsAndLabels) {
  auto r = Run("      patient_pattern: '^(P\\d+)_'\n      labels: {'P0002_*': followup, '*': baseline}\n"
               "      labels_csv: data/labels.csv\n      categories: [IPH]\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), 6u);
  EXPECT_EQ(ds.images[0].file_name, "images/P0001_001.png");
  EXPECT_EQ(ds.images[0].width, 64);
  EXPECT_EQ(ds.images[0].patient_id, "P0001");
  EXPECT_EQ(ds.images[4].patient_id, "P0002");
  EXPECT_EQ(ds.images[0].source, "ann");
  ASSERT_GE(ds.images[4].labels.size(), 2u);
  EXPECT_EQ(ds.images[4].labels[0], "followup");
  EXPECT_EQ(ds.images[0].labels[0], "baseline");
  // The second label comes from the CSV and is one of its two values.
  EXPECT_TRUE(ds.images[0].labels[1] == "hemorrhage" || ds.images[0].labels[1] == "no_hemorrhage");
  EXPECT_TRUE(ds.annotations.empty()) << "no annotations file given: every image is a negative";
  ASSERT_EQ(ds.categories.size(), 1u);
  EXPECT_EQ(ds.categories[0].name, "IPH");
  EXPECT_TRUE(fs::is_symlink(dir_ / "work/ann/images/P0001_001.png"));
}

// A malformed labels CSV (a stray quote on line 7, short rows on lines 3 and
// 10) costs those rows only; the problems name file:line in file order.
TEST_F(AnnotateTest, MalformedCsvRowsCostOneRowEachAndAreListedInFileOrder) {
  // 12 rows for the 6 images (P0001_00{1,2,3}, P0002_00{1,2,3}) and 6 others.
  std::string csv = "file,label\n";
  const std::vector<std::string> rows = {
      "P0001_001.png,a",  // 2
      "short",            // 3: one field
      "P0001_002.png,b",  // 4
      "x1.png,c",         // 5
      "x2.png,c",         // 6
      "x3.png,\"c",       // 7: unterminated quote
      "P0001_003.png,d",  // 8
      "P0002_001.png,e",  // 9
      "a,b,c",            // 10: three fields
      "P0002_002.png,f",  // 11
      "P0002_003.png,g",  // 12
  };
  for (const auto& r : rows) csv += r + "\n";
  testing::WriteText(dir_ / "data/bad.csv", csv);
  auto r = Run("      labels_csv: data/bad.csv\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), 6u);
  std::vector<std::string> labels;
  for (const auto& img : ds.images) labels.push_back(img.labels.empty() ? "-" : img.labels[0]);
  EXPECT_EQ(labels, (std::vector<std::string>{"a", "b", "d", "e", "f", "g"}));

  rapidjson::Document doc;
  doc.Parse(testing::ReadText(dir_ / "work/ann/report.json").c_str());
  ASSERT_TRUE(doc.IsObject());
  EXPECT_EQ(doc["counters"]["csv_rows_malformed"].GetInt(), 3);
  std::vector<std::string> items;
  for (const auto& p : doc["problems"].GetArray()) items.push_back(p["item"].GetString());
  EXPECT_EQ(items, (std::vector<std::string>{"bad.csv:3", "bad.csv:7", "bad.csv:10"}));
}

TEST_F(AnnotateTest, AttachesBoxesFromACocoFile) {
  auto r = Run("      annotations: data/boxes.coco.json\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  Dataset ds = Output();
  Result<Dataset> src = ReadCoco(dir_ / "data/boxes.coco.json");
  ASSERT_TRUE(src.ok());
  EXPECT_EQ(ds.annotations.size(), src->annotations.size());
  EXPECT_EQ(ds.categories.size(), 6u);
  for (const auto& a : ds.annotations) EXPECT_GE(a.image_id, 1);
}

// Bad boxes at the door: a negative width, a zero height, one wholly outside and one
// overlapping the 64x64 image's edge; the default clips the last and drops
// the rest, each counted and listed with its file and annotation id.
class AnnotateBadBoxesTest : public AnnotateTest {
 protected:
  void WriteBoxes() {
    Dataset boxes;
    boxes.categories = {{1, "IPH", "h"}};
    Image img;
    img.id = 7, img.file_name = "P0001_001.png", img.width = img.height = 64;
    boxes.images.push_back(img);
    const double b[][4] = {{10, 10, -5, 4}, {1, 1, 4, 0}, {70, 70, 5, 5}, {50, 50, 20, 10}, {2, 2, 8, 8}};
    for (int k = 0; k < 5; ++k) {
      Annotation a;
      a.id = 101 + k, a.image_id = 7, a.category_id = 1;
      for (int j = 0; j < 4; ++j) a.bbox[j] = b[k][j];
      a.area = b[k][2] * b[k][3];
      boxes.annotations.push_back(a);
    }
    testing::WriteText(dir_ / "data/bad.coco.json", SerializeCoco(boxes));
  }
};

TEST_F(AnnotateBadBoxesTest, DefaultClipsWhatOverlapsAndDropsTheRest) {
  WriteBoxes();
  ASSERT_EQ(Run("      annotations: data/bad.coco.json\n").summary.exit_code, 0);
  Dataset ds = Output();
  ASSERT_EQ(ds.annotations.size(), 2u);
  EXPECT_EQ(ds.annotations[0].bbox[0], 50);
  EXPECT_EQ(ds.annotations[0].bbox[2], 14) << "clipped at the right edge";
  EXPECT_EQ(ds.annotations[0].bbox[3], 10);
  EXPECT_DOUBLE_EQ(ds.annotations[0].area, 140);
  EXPECT_EQ(ds.annotations[1].bbox[2], 8) << "a good box is untouched";
  std::string report = testing::ReadText(dir_ / "work/ann/report.json");
  EXPECT_NE(report.find("\"boxes_dropped\": 3"), std::string::npos) << report;
  EXPECT_NE(report.find("\"boxes_clipped\": 1"), std::string::npos) << report;
  EXPECT_NE(report.find("images/P0001_001.png: annotation 101"), std::string::npos) << report;
  EXPECT_NE(report.find("box [10, 10, -5, 4] has no positive width and height; box dropped"), std::string::npos);
  EXPECT_NE(report.find("annotation 102"), std::string::npos);
  EXPECT_NE(report.find("box [70, 70, 5, 5] lies outside the 64x64 image"), std::string::npos);
}

TEST_F(AnnotateBadBoxesTest, DropAndFailPolicies) {
  WriteBoxes();
  ASSERT_EQ(Run("      annotations: data/bad.coco.json\n      bad_boxes: drop\n").summary.exit_code, 0);
  ASSERT_EQ(Output().annotations.size(), 1u);
  EXPECT_NE(testing::ReadText(dir_ / "work/ann/report.json").find("\"boxes_dropped\": 4"), std::string::npos);
  auto r = Run("      annotations: data/bad.coco.json\n      bad_boxes: fail\n");
  EXPECT_EQ(r.summary.exit_code, 1);
  EXPECT_NE(r.Of("ann").reason.find("4 bad box(es)"), std::string::npos) << r.Of("ann").reason;
  EXPECT_NE(r.Of("ann").reason.find("images/P0001_001.png: annotation 101: box [10, 10, -5, 4]"), std::string::npos);
}

TEST_F(AnnotateTest, PatientPatternTriesTheBaseNameInSubfolders) {
  fs::create_directories(dir_ / "data/images/sub");
  fs::rename(dir_ / "data/images/P0002_001.png", dir_ / "data/images/sub/P0002_001.png");
  ASSERT_EQ(Run("      patient_pattern: '^(P\\d+)_'\n").summary.exit_code, 0);
  bool seen = false;
  for (const Image& img : Output().images) {
    if (img.file_name != "images/sub/P0002_001.png") continue;
    seen = true;
    EXPECT_EQ(img.patient_id, "P0002");
  }
  EXPECT_TRUE(seen);
}

TEST_F(AnnotateTest, CorruptImageIsAPerItemProblemAndTheRestGoOn) {
  testing::WriteText(dir_ / "data/images/broken.png", "\x89PNG\r\n\x1a\nthis is not really a png");
  testing::WriteText(dir_ / "data/images/notes.txt", "ignored: not an image extension");
  auto r = Run("      patient_pattern: '^(P\\d+)_'\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  EXPECT_EQ(r.Of("ann").items.failed, 1);
  EXPECT_EQ(Output().images.size(), 6u);
  std::string report = testing::ReadText(dir_ / "work/ann/report.json");
  EXPECT_NE(report.find("broken.png: corrupt PNG"), std::string::npos) << report;
}

TEST_F(AnnotateTest, NewSourceImageRerunsAndProcessesOnlyTheNewItem) {
  ASSERT_EQ(Run("").summary.exit_code, 0);
  fs::copy_file(dir_ / "data/images/P0001_001.png", dir_ / "data/images/P0003_001.png");
  auto r = Run("");
  EXPECT_EQ(r.Of("ann").state, State::kRan);
  EXPECT_EQ(r.Of("ann").reason, "source files changed");
  EXPECT_EQ(r.Of("ann").items.resumed, 6);
  EXPECT_EQ(r.Of("ann").items.done, 1);
  EXPECT_EQ(Output().images.size(), 7u);
}

TEST_F(AnnotateTest, BadPatientPatternIsAConfigErrorAtItsLine) {
  try {
    Run("      patient_pattern: '^(P\\d+'\n");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("pipeline.yaml:7:24: stage 'ann': params.patient_pattern: not a valid "
                                         "regular expression"),
              std::string::npos)
        << e.what();
  }
  try {
    Run("      patient_pattern: '^P\\d+'\n");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("needs a capture group"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace medpipe
