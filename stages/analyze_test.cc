#include <fmt/format.h>
#include <rapidjson/document.h>

#include <gtest/gtest.h>

#include <sstream>

#include "dataset/coco_io.h"
#include "stages/link_images.h"
#include "tests/test_util.h"
#include "util/hash.h"

namespace medpipe {
namespace {

using testing::TempDir;


rapidjson::Document ReadJson(const fs::path& path) {
  rapidjson::Document doc;
  doc.Parse(testing::ReadText(path).c_str());
  EXPECT_FALSE(doc.HasParseError()) << path;
  return doc;
}

std::vector<std::string> Words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// The line of `table` whose label starts with `label`, split into words.
std::vector<std::string> Row(const std::string& table, const std::string& label) {
  std::istringstream in(table);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(label + " ", 0) == 0) return Words(line.substr(label.size()));
  }
  return {};
}

// train: P0001 slices 1-3 (EDH x2 on 1, IPH on 2, 3 negative) and an
// augmented copy of slice 1 (one EDH); valid: P0002 slices 1-3 (IPH on 1);
// test: P0003 slice 1 and slice 3 without a patient id, both negative; slice
// 2 of P0003 has no split. Sources v3 (P0001), roboflow (P0002), no_hem (P0003).
class AnalyzeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeExampleData(dir_ / "data", 3, 3);
    fs::copy_file(dir_ / "data/images/P0001_001.png", dir_ / "data/images/P0001_001_aug1.png");
    Dataset ds;
    ds.categories = {{1, "EDH", "h"}, {2, "IPH", "h"}, {3, "SDH", "h"}};
    auto image = [&](const std::string& name, const std::string& patient, const std::string& split,
                     const std::string& source) {
      Image img;
      img.id = static_cast<int64_t>(ds.images.size()) + 1;
      img.file_name = "images/" + name + ".png";
      img.patient_id = patient, img.split = split, img.source = source;
      img.width = img.height = 64;
      ds.images.push_back(img);
      return img.id;
    };
    auto box = [&](int64_t image, int64_t category) {
      Annotation a;
      a.id = static_cast<int64_t>(ds.annotations.size()) + 1;
      a.image_id = image, a.category_id = category;
      a.bbox[0] = a.bbox[1] = 2, a.bbox[2] = a.bbox[3] = 8;
      ds.annotations.push_back(a);
    };
    int64_t t1 = image("P0001_001", "P0001", "train", "v3");
    box(t1, 1), box(t1, 1);
    box(image("P0001_002", "P0001", "train", "v3"), 2);
    image("P0001_003", "P0001", "train", "v3");
    int64_t aug = image("P0001_001_aug1", "P0001", "train", "v3");
    ds.images.back().origin = Origin{"images/P0001_001.png", "hflip"};
    box(aug, 1);
    box(image("P0002_001", "P0002", "valid", "roboflow"), 2);
    image("P0002_002", "P0002", "valid", "roboflow");
    image("P0002_003", "P0002", "valid", "roboflow");
    image("P0003_001", "P0003", "test", "no_hem");
    image("P0003_002", "P0003", "", "no_hem");
    image("P0003_003", "", "test", "no_hem");
    testing::WriteText(dir_ / "data/ds.json", SerializeCoco(ds));
  }
  testing::RunResult Run(RunOptions o = {}) {
    return testing::RunYaml(testing::TestKinds(), dir_.path(),
                            "workdir: work\nstages:\n"
                            "  - id: d\n    kind: emit\n    params: {coco: data/ds.json}\n"
                            "  - id: a\n    kind: analyze\n    inputs: d\n",
                            o);
  }
  TempDir dir_;
};

TEST_F(AnalyzeTest, NumbersPerSplitAndTotal) {
  ASSERT_EQ(Run().summary.exit_code, 0);
  rapidjson::Document doc = ReadJson(dir_ / "work/a/analysis.json");
  ASSERT_TRUE(doc.IsObject());
  const auto& splits = doc["splits"];
  std::vector<std::string> names;
  for (auto& m : splits.GetObject()) names.push_back(m.name.GetString());
  EXPECT_EQ(names, (std::vector<std::string>{"train", "valid", "test", "unsplit"}));

  const auto& train = splits["train"];
  EXPECT_EQ(train["images"].GetInt(), 4);
  EXPECT_EQ(train["patients"].GetInt(), 1);
  EXPECT_EQ(train["negatives"].GetInt(), 1);
  EXPECT_DOUBLE_EQ(train["negative_share"].GetDouble(), 0.25);
  EXPECT_EQ(train["augmented"].GetInt(), 1);
  EXPECT_EQ(train["boxes"].GetInt(), 4);
  EXPECT_EQ(train["images_per_class"]["EDH"].GetInt(), 2);
  EXPECT_EQ(train["images_per_class"]["IPH"].GetInt(), 1);
  EXPECT_EQ(train["images_per_class"]["SDH"].GetInt(), 0);
  EXPECT_EQ(train["boxes_per_class"]["EDH"].GetInt(), 3);
  EXPECT_EQ(train["sources"]["v3"].GetInt(), 4);

  const auto& valid = splits["valid"];
  EXPECT_EQ(valid["images"].GetInt(), 3);
  EXPECT_EQ(valid["negatives"].GetInt(), 2);
  EXPECT_DOUBLE_EQ(valid["negative_share"].GetDouble(), 2.0 / 3);
  EXPECT_EQ(valid["augmented"].GetInt(), 0);

  const auto& test = splits["test"];
  EXPECT_EQ(test["images"].GetInt(), 2);
  EXPECT_EQ(test["patients"].GetInt(), 1);
  EXPECT_EQ(test["images_without_patient"].GetInt(), 1);
  EXPECT_DOUBLE_EQ(test["negative_share"].GetDouble(), 1.0);
  EXPECT_EQ(splits["unsplit"]["images"].GetInt(), 1);

  const auto& total = doc["total"];
  EXPECT_EQ(total["images"].GetInt(), 10);
  EXPECT_EQ(total["patients"].GetInt(), 3);
  EXPECT_EQ(total["negatives"].GetInt(), 6);
  EXPECT_DOUBLE_EQ(total["negative_share"].GetDouble(), 0.6);
  EXPECT_EQ(total["boxes"].GetInt(), 5);
  EXPECT_EQ(total["images_per_class"]["IPH"].GetInt(), 2);
  EXPECT_EQ(total["boxes_per_class"]["EDH"].GetInt(), 3);
  EXPECT_EQ(total["sources"]["no_hem"].GetInt(), 3);
  EXPECT_EQ(total["sources"]["roboflow"].GetInt(), 3);
}

TEST_F(AnalyzeTest, TableHasSplitColumnsAndCountersFollow) {
  ASSERT_EQ(Run().summary.exit_code, 0);
  std::string table = testing::ReadText(dir_ / "work/a/analysis.txt");
  std::istringstream in(table);
  std::string header;
  std::getline(in, header);
  EXPECT_EQ(Words(header), (std::vector<std::string>{"train", "valid", "test", "unsplit", "total"})) << table;
  EXPECT_EQ(Row(table, "images"), (std::vector<std::string>{"4", "3", "2", "1", "10"})) << table;
  EXPECT_EQ(Row(table, "negative share"), (std::vector<std::string>{"25.0%", "66.7%", "100.0%", "100.0%", "60.0%"}));
  EXPECT_EQ(Row(table, "boxes EDH"), (std::vector<std::string>{"3", "0", "0", "0", "3"}));
  EXPECT_EQ(Row(table, "images IPH"), (std::vector<std::string>{"1", "1", "0", "0", "2"}));
  EXPECT_EQ(Row(table, "source roboflow"), (std::vector<std::string>{"0", "3", "0", "0", "3"}));

  rapidjson::Document report = ReadJson(dir_ / "work/a/report.json");
  EXPECT_EQ(report["counters"]["images"].GetInt(), 10);
  EXPECT_EQ(report["counters"]["negatives"].GetInt(), 6);
  EXPECT_EQ(report["counters"]["images_valid"].GetInt(), 3);
  EXPECT_EQ(report["counters"]["negatives_train"].GetInt(), 1);
  // SDH has no box at all: a problem, not only a row of zeros.
  EXPECT_EQ(report["counters"]["categories_without_annotations"].GetInt(), 1);
  ASSERT_EQ(report["problems"].Size(), 1u);
  EXPECT_STREQ(report["problems"][0]["item"].GetString(), "category 'SDH'");
}

TEST_F(AnalyzeTest, SameBytesForOneOrTwoThreads) {
  std::map<std::string, std::string> snaps[2];
  for (int threads : {1, 2}) {
    RunOptions o;
    o.threads = threads;
    ASSERT_EQ(Run(o).summary.exit_code, 0);
    snaps[threads - 1] = testing::Snapshot(dir_ / "work/a");
    fs::remove_all(dir_ / "work");
  }
  EXPECT_EQ(snaps[0], snaps[1]);
}

TEST(AnalyzeAnnotateTest, AnnotateOutputIsAllUnsplitWithItsBoxes) {
  TempDir dir;
  testing::MakeExampleData(dir / "data", 2, 5);
  auto r = testing::RunYaml(BuiltinRegistry(), dir.path(),
                            "workdir: work\nstages:\n"
                            "  - id: ann\n    kind: annotate\n    params: {images: data/images, annotations: "
                            "data/boxes.coco.json, patient_pattern: '^(P\\d+)_'}\n"
                            "  - id: a\n    kind: analyze\n    inputs: ann\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  Result<Dataset> boxes = ReadCoco(dir / "data/boxes.coco.json");
  ASSERT_TRUE(boxes.ok());
  rapidjson::Document doc = ReadJson(dir / "work/a/analysis.json");
  EXPECT_EQ(doc["splits"].MemberCount(), 1u);
  EXPECT_EQ(doc["total"]["images"].GetInt(), 10);
  EXPECT_EQ(doc["total"]["patients"].GetInt(), 2);
  EXPECT_EQ(doc["total"]["boxes"].GetInt(), static_cast<int>(boxes->annotations.size()));
  EXPECT_EQ(doc["categories"].Size(), boxes->categories.size());
}

}  // namespace
}  // namespace medpipe
