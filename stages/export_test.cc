#include <fmt/format.h>
#include <rapidjson/document.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "dataset/coco_io.h"
#include "stages/link_images.h"
#include "tests/test_util.h"
#include "util/csv.h"
#include "util/hash.h"

namespace medpipe {
namespace {

using testing::TempDir;


const char kOddCategory[] = "SAH, \"acute\"";

// train: P0001_001 (EDH + the odd category), P0001_002 (negative), P0001_003
// (augmented from P0001_001), sub/P0001_002 (same basename as P0001_002: a
// collision); valid: P0002_001 (IPH) with commas and quotes in its patient id
// and source; test: P0003_001; P0003_002 has no split.
class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeExampleData(dir_ / "data", 3, 3);
    fs::create_directories(dir_ / "data/sub");
    fs::copy_file(dir_ / "data/images/P0001_003.png", dir_ / "data/sub/P0001_002.png");
    in_.categories = {{1, "EDH", "h"}, {2, kOddCategory, "h"}, {3, "IPH", "h"}};
    int64_t a = AddImage("images/P0001_001.png", "P0001", "train");
    AddBox(a, 1, 1, 2, 10, 12), AddBox(a, 2, 20.5, 21, 7, 8);
    in_.images.back().labels = {"hemorrhage", "reviewed"};
    AddImage("images/P0001_002.png", "P0001", "train");
    AddImage("images/P0001_003.png", "P0001", "train");
    in_.images.back().origin = Origin{"images/P0001_001.png", "hflip"};
    AddImage("sub/P0001_002.png", "P0001", "train");
    AddBox(AddImage("images/P0002_001.png", "P,\"2\"", "valid"), 3, 5, 5, 9, 9);
    in_.images.back().source = "roboflow, v3";
    AddImage("images/P0003_001.png", "P0003", "test");
    AddImage("images/P0003_002.png", "P0003", "");
  }
  int64_t AddImage(const std::string& file, const std::string& patient, const std::string& split) {
    Image img;
    img.id = static_cast<int64_t>(in_.images.size()) + 10;  // not 1..n: the export renumbers
    img.file_name = file, img.patient_id = patient, img.split = split, img.source = "v4";
    img.width = img.height = 64;
    in_.images.push_back(img);
    return img.id;
  }
  void AddBox(int64_t image, int64_t category, double x, double y, double w, double h) {
    Annotation a;
    a.id = static_cast<int64_t>(in_.annotations.size()) + 100;
    a.image_id = image, a.category_id = category;
    a.bbox[0] = x, a.bbox[1] = y, a.bbox[2] = w, a.bbox[3] = h;
    a.area = w * h;
    in_.annotations.push_back(a);
  }
  testing::RunResult Run(const std::string& params = "{}", const std::string& id = "x", RunOptions o = {}) {
    testing::WriteText(dir_ / "data/ds.json", SerializeCoco(in_));
    return testing::RunYaml(testing::TestKinds(), dir_.path(),
                            "workdir: work\nstages:\n"
                            "  - id: d\n    kind: emit\n    params: {coco: data/ds.json}\n"
                            "  - id: " + id + "\n    kind: export\n    inputs: d\n    params: " + params + "\n",
                            o);
  }
  TempDir dir_;
  Dataset in_;
};

TEST_F(ExportTest, RoboflowLayoutReadsBackAsTheInput) {
  auto r = Run("{}", "6class_coco");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("6class_coco").reason;
  const fs::path out = dir_ / "work/6class_coco";
  for (const char* split : {"train", "valid", "test"}) {
    EXPECT_TRUE(fs::exists(out / split / "_annotations.coco.json")) << split;
  }
  Result<Dataset> back = ReadRoboflow(out);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  std::vector<std::string> names;
  for (const auto& img : back->images) names.push_back(img.split + " " + img.file_name);
  EXPECT_EQ(names, (std::vector<std::string>{"train train/P0001_001.png", "train train/P0001_002.png",
                                             "train train/P0001_003.png", "valid valid/P0002_001.png",
                                             "test test/P0003_001.png"}));
  ASSERT_EQ(back->categories.size(), 3u);
  EXPECT_EQ(back->categories[1].name, kOddCategory);
  ASSERT_EQ(back->annotations.size(), 3u);
  EXPECT_EQ(back->annotations[1].image_id, back->images[0].id);
  EXPECT_EQ(back->annotations[1].category_id, 2);
  EXPECT_EQ(back->annotations[1].bbox[0], 20.5);
  EXPECT_EQ(back->annotations[1].bbox[3], 8);
  EXPECT_EQ(back->annotations[2].image_id, back->images[3].id);
  EXPECT_EQ(back->images[2].origin.image, "images/P0001_001.png");
  EXPECT_EQ(back->images[3].patient_id, "P,\"2\"");

  // Each split's file on its own: ids from 1, file names in the split folder.
  Result<Dataset> valid = ReadCoco(out / "valid/_annotations.coco.json");
  ASSERT_TRUE(valid.ok());
  ASSERT_EQ(valid->images.size(), 1u);
  EXPECT_EQ(valid->images[0].id, 1);
  EXPECT_EQ(valid->images[0].file_name, "P0002_001.png");
  ASSERT_EQ(valid->annotations.size(), 1u);
  EXPECT_EQ(valid->annotations[0].id, 1);
  EXPECT_EQ(valid->annotations[0].image_id, 1);

  // Images are hard links to the original files (one filesystem here).
  fs::path link = out / "train/P0001_001.png";
  ASSERT_FALSE(fs::is_symlink(link));
  ASSERT_TRUE(fs::is_regular_file(link));
  struct stat a, b;
  ASSERT_EQ(::stat(link.c_str(), &a), 0);
  ASSERT_EQ(::stat((dir_ / "data/images/P0001_001.png").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);

  // dataset.json names the exported files, each present in the stage folder.
  Result<Dataset> ds = ReadCoco(out / "dataset.json");
  ASSERT_TRUE(ds.ok());
  ASSERT_EQ(ds->images.size(), 5u);
  for (const auto& img : ds->images) EXPECT_TRUE(fs::exists(out / img.file_name)) << img.file_name;
}

TEST_F(ExportTest, CollisionsAndUnsplitImagesArePerItemProblems) {
  ASSERT_EQ(Run().summary.exit_code, 0);
  std::string report = testing::ReadText(dir_ / "work/x/report.json");
  rapidjson::Document doc;
  doc.Parse(report.c_str());
  ASSERT_TRUE(doc.IsObject());
  EXPECT_EQ(doc["counters"]["name_collisions"].GetInt(), 1);
  EXPECT_EQ(doc["counters"]["images_without_split"].GetInt(), 1);
  EXPECT_EQ(doc["counters"]["images"].GetInt(), 5);
  EXPECT_NE(report.find("train/P0001_002.png is already taken by another image"), std::string::npos) << report;
  EXPECT_NE(report.find("\"item\": \"images/P0003_002.png\""), std::string::npos) << report;
  EXPECT_FALSE(fs::exists(dir_ / "work/x/train/sub"));
}

TEST_F(ExportTest, CsvHasOneQuotedRowPerImage) {
  ASSERT_EQ(Run().summary.exit_code, 0);
  std::string text = testing::ReadText(dir_ / "work/x/dataset.csv");
  EXPECT_NE(text.find("\"EDH;SAH, \"\"acute\"\"\""), std::string::npos) << text;
  CsvTable t = ParseCsv(text, "dataset.csv");
  EXPECT_TRUE(t.errors.empty());
  EXPECT_EQ(t.header, (std::vector<std::string>{"split", "file", "patient_id", "source", "classes", "box_count",
                                                "width", "height", "augmented_from", "labels"}));
  ASSERT_EQ(t.rows.size(), 5u);
  EXPECT_EQ(t.rows[0].fields, (std::vector<std::string>{"train", "train/P0001_001.png", "P0001", "v4",
                                                        std::string("EDH;") + kOddCategory, "2", "64", "64", "",
                                                        "hemorrhage;reviewed"}));
  EXPECT_EQ(t.rows[1].fields[4], "");
  EXPECT_EQ(t.rows[1].fields[5], "0");
  EXPECT_EQ(t.rows[2].fields[8], "images/P0001_001.png");
  EXPECT_EQ(t.rows[3].fields, (std::vector<std::string>{"valid", "valid/P0002_001.png", "P,\"2\"", "roboflow, v3",
                                                        "IPH", "1", "64", "64", "", ""}));
  EXPECT_EQ(t.rows[4].fields[0], "test");
}

TEST_F(ExportTest, CsvAloneKeepsTheInputNamesAndEveryImage) {
  ASSERT_EQ(Run("{formats: [csv]}").summary.exit_code, 0);
  EXPECT_FALSE(fs::exists(dir_ / "work/x/train"));
  CsvTable t = ParseCsv(testing::ReadText(dir_ / "work/x/dataset.csv"), "dataset.csv");
  ASSERT_EQ(t.rows.size(), 7u);
  EXPECT_EQ(t.rows[3].fields[1], "sub/P0001_002.png");
  EXPECT_EQ(t.rows[6].fields[0], "");
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(dir_ / "work/x/sub/P0001_002.png")));
}

TEST_F(ExportTest, RoboflowAloneWritesNoCsv) {
  ASSERT_EQ(Run("{formats: [roboflow]}").summary.exit_code, 0);
  EXPECT_FALSE(fs::exists(dir_ / "work/x/dataset.csv"));
  EXPECT_TRUE(fs::exists(dir_ / "work/x/test/_annotations.coco.json"));
}

TEST_F(ExportTest, RoboflowWithoutAnySplitFailsTheStage) {
  for (auto& img : in_.images) img.split.clear();
  auto r = Run();
  EXPECT_EQ(r.summary.exit_code, 1);
  EXPECT_EQ(r.Of("x").reason,
            "no image of input d is in split train, valid or test; the roboflow format needs a split stage upstream");
}

TEST_F(ExportTest, SameBytesForOneOrTwoThreads) {
  std::map<std::string, std::string> snaps[2];
  for (int threads : {1, 2}) {
    RunOptions o;
    o.threads = threads;
    ASSERT_EQ(Run("{}", "x", o).summary.exit_code, 0);
    snaps[threads - 1] = testing::Snapshot(dir_ / "work/x");
    fs::remove_all(dir_ / "work");
  }
  EXPECT_EQ(snaps[0], snaps[1]);
  EXPECT_TRUE(snaps[0].count("train/_annotations.coco.json"));
}

// Every file_name of every split's COCO file under `root` is a regular file
// (not a link), read back as the bytes in `expected` (by basename).
void ExpectSelfContained(const fs::path& root, const std::map<std::string, std::string>& expected) {
  size_t checked = 0;
  for (std::string_view split : kSplitNames) {
    const fs::path json = root / std::string(split) / "_annotations.coco.json";
    if (!fs::exists(json)) continue;
    Result<Dataset> part = ReadCoco(json);
    ASSERT_TRUE(part.ok()) << part.status().ToString();
    for (const auto& img : part->images) {
      const fs::path file = root / std::string(split) / img.file_name;
      EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(file))) << file;
      auto it = expected.find(img.file_name);
      if (it != expected.end()) {
        EXPECT_EQ(testing::ReadText(file), it->second) << file;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 0u);
}

TEST_F(ExportTest, CopiedExportStandsAloneWhenTheWorkdirIsGone) {
  std::map<std::string, std::string> bytes;
  for (const auto& e : fs::directory_iterator(dir_ / "data/images")) {
    bytes[e.path().filename().string()] = testing::ReadText(e.path());
  }
  ASSERT_EQ(Run().summary.exit_code, 0);
  const fs::path copy = dir_ / "delivered";
  auto cp = testing::RunProcess({"/bin/cp", "-r", (dir_ / "work/x").string(), copy.string()});
  ASSERT_EQ(cp.exit_code, 0) << cp.err;
  fs::remove_all(dir_ / "work");
  fs::remove_all(dir_ / "data");
  ExpectSelfContained(copy, bytes);
}

TEST_F(ExportTest, CopyModeWritesIndependentFiles) {
  ASSERT_EQ(Run("{materialize: copy}").summary.exit_code, 0);
  struct stat a, b;
  ASSERT_EQ(::lstat((dir_ / "work/x/train/P0001_001.png").c_str(), &a), 0);
  ASSERT_EQ(::stat((dir_ / "data/images/P0001_001.png").c_str(), &b), 0);
  EXPECT_TRUE(S_ISREG(a.st_mode));
  EXPECT_NE(a.st_ino, b.st_ino);
  EXPECT_EQ(testing::ReadText(dir_ / "work/x/train/P0001_001.png"), testing::ReadText(dir_ / "data/images/P0001_001.png"));
}

TEST_F(ExportTest, SymlinkModeKeepsRelativeLinks) {
  ASSERT_EQ(Run("{materialize: symlink}").summary.exit_code, 0);
  fs::path link = dir_ / "work/x/train/P0001_001.png";
  ASSERT_TRUE(fs::is_symlink(link));
  EXPECT_TRUE(fs::read_symlink(link).is_relative());
}

// A filesystem that refuses hard links (as across filesystems): the export
// falls back to copies, and says nothing is wrong.
class NoHardlinkDisk : public Disk {
 public:
  Result<bool> HardlinkAtomic(const fs::path&, const fs::path&) override { return false; }
};

TEST_F(ExportTest, HardlinkFallsBackToCopiesWhereTheFilesystemRefuses) {
  NoHardlinkDisk disk;
  RunOptions o;
  o.disk = &disk;
  auto r = Run("{}", "x", o);
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("x").reason;
  struct stat a, b;
  ASSERT_EQ(::lstat((dir_ / "work/x/valid/P0002_001.png").c_str(), &a), 0);
  ASSERT_EQ(::stat((dir_ / "data/images/P0002_001.png").c_str(), &b), 0);
  EXPECT_TRUE(S_ISREG(a.st_mode));
  EXPECT_NE(a.st_ino, b.st_ino);
  EXPECT_EQ(testing::ReadText(dir_ / "work/x/valid/P0002_001.png"), testing::ReadText(dir_ / "data/images/P0002_001.png"));
}

// An upstream file rewritten (a new inode, as every stage writes) is
// re-materialised on the next run; a hard link would otherwise keep the old bytes.
TEST_F(ExportTest, RewrittenSourceIsExportedAgain) {
  ASSERT_EQ(Run().summary.exit_code, 0);
  const fs::path src = dir_ / "data/images/P0003_001.png";
  const std::string other = testing::ReadText(dir_ / "data/images/P0001_002.png");
  fs::remove(src);
  testing::WriteText(src, other);
  RunOptions o;
  o.force = {"d"};  // the upstream stage reruns, as one does after its input changed
  auto r = Run("{}", "x", o);
  ASSERT_EQ(r.summary.exit_code, 0);
  EXPECT_EQ(r.Of("x").state, StageOutcome::State::kRan);
  EXPECT_EQ(testing::ReadText(dir_ / "work/x/test/P0003_001.png"), other);
}

// Ultralytics and some Roboflow exports name the validation split `val`: it
// is exported as valid, not dropped.
TEST_F(ExportTest, ValSplitIsExportedAsValid) {
  for (auto& img : in_.images) {
    if (img.split == "valid") img.split = "val";
  }
  auto r = Run();
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("x").reason;
  Result<Dataset> valid = ReadCoco(dir_ / "work/x/valid/_annotations.coco.json");
  ASSERT_TRUE(valid.ok()) << valid.status().ToString();
  ASSERT_EQ(valid->images.size(), 1u);
  EXPECT_EQ(valid->images[0].file_name, "P0002_001.png");
  EXPECT_EQ(valid->annotations.size(), 1u);
  rapidjson::Document doc;
  doc.Parse(testing::ReadText(dir_ / "work/x/report.json").c_str());
  EXPECT_EQ(doc["counters"]["images_without_split"].GetInt(), 1);  // only the one with no split at all
  EXPECT_EQ(doc["counters"]["images_valid"].GetInt(), 1);
}

// One line of a YOLO label file, read by the test's own parser.
struct YoloBox {
  int cls = -1;
  double v[4] = {0, 0, 0, 0};  // cx, cy, w, h, normalised
};

// Reads a label file: exactly five fields a line, class an integer. Fails
// the test on anything else.
std::vector<YoloBox> ReadYoloLabels(const fs::path& file) {
  std::vector<YoloBox> boxes;
  std::ifstream in(file);
  EXPECT_TRUE(in.good()) << file;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    YoloBox b;
    std::string extra;
    EXPECT_TRUE(fields >> b.cls >> b.v[0] >> b.v[1] >> b.v[2] >> b.v[3]) << file << ": " << line;
    EXPECT_FALSE(fields >> extra) << file << ": " << line;
    boxes.push_back(b);
  }
  return boxes;
}

// The expected YOLO box of a COCO box: clipped to the image, normalised.
YoloBox Expected(int cls, const double bbox[4], double width, double height) {
  const double x0 = std::max(0.0, bbox[0]), y0 = std::max(0.0, bbox[1]);
  const double x1 = std::min(width, bbox[0] + bbox[2]), y1 = std::min(height, bbox[1] + bbox[3]);
  YoloBox b;
  b.cls = cls;
  b.v[0] = (x0 + x1) / 2 / width, b.v[1] = (y0 + y1) / 2 / height;
  b.v[2] = (x1 - x0) / width, b.v[3] = (y1 - y0) / height;
  return b;
}

// Categories listed out of id order: the class is the index in id order.
// P0003_001 (test) gets a box past the image's corner (clipped) and one wholly
// outside it (a problem, no line).
TEST_F(ExportTest, YoloLabelsMatchTheCocoBoxes) {
  in_.categories = {{3, "IPH", "h"}, {1, "EDH", "h"}, {2, kOddCategory, "h"}};
  const int64_t p3 = in_.images[5].id;
  ASSERT_EQ(in_.images[5].file_name, "images/P0003_001.png");
  AddBox(p3, 3, 50, 60, 20, 10);
  AddBox(p3, 1, 70, 70, 5, 5);
  in_.images[5].width = 80;  // not square: x and y are normalised apart
  auto r = Run("{formats: [yolo]}");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("x").reason;
  const fs::path out = dir_ / "work/x";
  const std::map<int64_t, int> cls = {{1, 0}, {2, 1}, {3, 2}};
  const std::map<std::string, std::string> split_dir = {{"train", "train"}, {"valid", "val"}, {"test", "test"}};

  size_t images = 0, lines = 0;
  for (const auto& img : in_.images) {
    if (img.file_name == "sub/P0001_002.png" || img.split.empty()) continue;  // collision, unsplit
    const std::string sd = split_dir.at(img.split);
    const std::string stem = fs::path(img.file_name).stem().string();
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(out / "images" / sd / (stem + ".png")))) << img.file_name;
    std::vector<YoloBox> expected;
    for (const auto& a : in_.annotations) {
      if (a.image_id != img.id) continue;
      YoloBox e = Expected(cls.at(a.category_id), a.bbox, img.width, img.height);
      if (e.v[2] > 0 && e.v[3] > 0) expected.push_back(e);  // a box wholly outside has no line
    }
    const fs::path label = out / "labels" / sd / (stem + ".txt");
    ASSERT_TRUE(fs::exists(label)) << label;
    std::vector<YoloBox> got = ReadYoloLabels(label);
    ASSERT_EQ(got.size(), expected.size()) << label;
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].cls, expected[k].cls) << label << " line " << k;
      for (int j = 0; j < 4; ++j) {
        EXPECT_NEAR(got[k].v[j], expected[k].v[j], 1e-6) << label << " line " << k << " field " << j;
        EXPECT_GE(got[k].v[j], 0.0);
        EXPECT_LE(got[k].v[j], 1.0);
      }
    }
    ++images, lines += got.size();
  }
  EXPECT_EQ(images, 5u);
  EXPECT_EQ(lines, 4u);
  // Negative images get an empty label file.
  EXPECT_TRUE(fs::exists(out / "labels/train/P0001_002.txt"));
  EXPECT_EQ(testing::ReadText(out / "labels/train/P0001_002.txt"), "");
  // The clipped box spans x 50..70 of 80, y 60..64 of 64, with 6 decimals.
  EXPECT_NE(testing::ReadText(out / "labels/test/P0003_001.txt").find("2 0.750000 0.968750 0.250000 0.062500\n"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(out / "train"));
  EXPECT_FALSE(fs::exists(out / "images/valid"));

  YAML::Node y = YAML::LoadFile((out / "data.yaml").string());
  EXPECT_FALSE(y["path"]) << "the root is data.yaml's folder";
  EXPECT_EQ(y["train"].as<std::string>(), "images/train");
  EXPECT_EQ(y["val"].as<std::string>(), "images/val");
  EXPECT_EQ(y["test"].as<std::string>(), "images/test");
  ASSERT_TRUE(y["names"].IsMap());
  EXPECT_EQ(y["names"].size(), 3u);
  EXPECT_EQ(y["names"][0].as<std::string>(), "EDH");
  EXPECT_EQ(y["names"][1].as<std::string>(), kOddCategory);
  EXPECT_EQ(y["names"][2].as<std::string>(), "IPH");

  std::string report = testing::ReadText(out / "report.json");
  rapidjson::Document doc;
  doc.Parse(report.c_str());
  ASSERT_TRUE(doc.IsObject());
  EXPECT_EQ(doc["counters"]["yolo_boxes_outside"].GetInt(), 1);
  EXPECT_EQ(doc["counters"]["yolo_boxes_clipped"].GetInt(), 1);
  EXPECT_EQ(doc["counters"]["name_collisions"].GetInt(), 1);
  EXPECT_NE(report.find("labels/train/P0001_002.txt is already taken by another image"), std::string::npos) << report;
  EXPECT_NE(report.find("has no area inside the 80x64 image"), std::string::npos) << report;

  // dataset.json names the files in images/.
  Result<Dataset> ds = ReadCoco(out / "dataset.json");
  ASSERT_TRUE(ds.ok());
  ASSERT_EQ(ds->images.size(), 5u);
  for (const auto& img : ds->images) EXPECT_TRUE(fs::exists(out / img.file_name)) << img.file_name;
  EXPECT_EQ(ds->images[3].file_name, "images/val/P0002_001.png");
}

// data.yaml lists only the splits present; with roboflow too, both layouts
// hold every image and dataset.json names the roboflow files.
TEST_F(ExportTest, YoloWithRoboflowAndWithoutATestSplit) {
  for (auto& img : in_.images) {
    if (img.split == "test") img.split = "train";
  }
  auto r = Run("{formats: [roboflow, yolo]}");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("x").reason;
  const fs::path out = dir_ / "work/x";
  YAML::Node y = YAML::LoadFile((out / "data.yaml").string());
  EXPECT_TRUE(y["train"]);
  EXPECT_TRUE(y["val"]);
  EXPECT_FALSE(y["test"]);
  EXPECT_FALSE(fs::exists(out / "labels/test"));
  for (const char* f : {"train/P0003_001.png", "images/train/P0003_001.png", "valid/P0002_001.png",
                        "images/val/P0002_001.png", "labels/train/P0003_001.txt"}) {
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(out / f))) << f;
  }
  EXPECT_EQ(ReadYoloLabels(out / "labels/val/P0002_001.txt").size(), 1u);
  Result<Dataset> ds = ReadCoco(out / "dataset.json");
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ds->images[0].file_name, "train/P0001_001.png");
}

// Where Ultralytics finds a split of a data.yaml, as check_det_dataset in
// ultralytics/data/utils.py does it: the root is `path:` when set, else the
// folder of the yaml file as it was given on the command line; a relative
// root that does not exist from the working directory is taken under
// DATASETS_DIR; the split is (root / entry), resolved. `cwd` stands for the
// process's working directory.
fs::path UltralyticsSplit(const fs::path& yaml_as_given, const fs::path& cwd, const fs::path& datasets_dir,
                          const std::string& split) {
  const fs::path yaml = yaml_as_given.is_absolute() ? yaml_as_given : cwd / yaml_as_given;
  YAML::Node y = YAML::LoadFile(yaml.string());
  std::string path_key = y["path"] ? y["path"].as<std::string>() : "";
  fs::path root = !path_key.empty() ? fs::path(path_key) : yaml_as_given.parent_path();
  if (!root.is_absolute()) root = fs::exists(cwd / root) ? cwd / root : datasets_dir / root;
  return fs::weakly_canonical(root / y[split].as<std::string>());
}

// The exported folder moved elsewhere (the workdir deleted): data.yaml's
// splits still reach its images, wherever training runs from.
TEST_F(ExportTest, YoloFolderMovedElsewhereStillResolves) {
  ASSERT_EQ(Run("{formats: [yolo]}").summary.exit_code, 0);
  const fs::path moved = dir_ / "elsewhere/delivered";
  fs::create_directories(moved.parent_path());
  fs::rename(dir_ / "work/x", moved);
  fs::remove_all(dir_ / "work");
  fs::remove_all(dir_ / "data");
  const fs::path datasets_dir = dir_ / "ultralytics_datasets";
  fs::create_directories(datasets_dir);
  // data.yaml given absolute; relative from its own folder; relative from the
  // folder above.
  const std::vector<std::pair<fs::path, fs::path>> calls = {
      {moved / "data.yaml", dir_.path()}, {"data.yaml", moved}, {"delivered/data.yaml", moved.parent_path()}};
  for (const auto& [yaml, cwd] : calls) {
    for (const char* split : {"train", "val", "test"}) {
      fs::path images = UltralyticsSplit(yaml, cwd, datasets_dir, split);
      EXPECT_EQ(images, fs::weakly_canonical(moved / "images" / split)) << yaml << " from " << cwd;
      ASSERT_TRUE(fs::is_directory(images)) << images;
      size_t files = 0;
      for (const auto& e : fs::directory_iterator(images)) files += fs::is_regular_file(e.path());
      EXPECT_GT(files, 0u) << images;
    }
  }
}

// The real wrist X-ray export through merge, split and export; the export,
// copied with cp -r and with the workdir gone, still passes the COCO checks.
TEST(ExportPublicTest, WristExportCopiedElsewherePassesCocoChecks) {
  TempDir dir;
  const fs::path wrist = fs::path(MEDPIPE_PUBLIC_DATA) / "coco_roboflow_wrist_xray";
  auto r = testing::RunYaml(
      BuiltinRegistry(), dir.path(),
      "workdir: work\nstages:\n"
      "  - id: m\n    kind: merge\n    params:\n"
      "      sources: [{path: '" + wrist.string() + "', prefix: wr_, source: wrist}]\n"
      "      categories: [Radius, Scaphoid, Ulna]\n"
      "      patient_from_group: true\n"  // the export has no patient ids: its uploads stand in
      "  - id: s\n    kind: split\n    inputs: m\n"
      "  - id: e\n    kind: export\n    inputs: s\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("e").reason;
  std::map<std::string, std::string> bytes;
  for (const char* split : {"train", "valid", "test"}) {
    for (const auto& f : fs::directory_iterator(wrist / split)) {
      bytes["wr_" + f.path().filename().string()] = testing::ReadText(f.path());
    }
  }
  const fs::path copy = dir / "delivered";
  auto cp = testing::RunProcess({"/bin/cp", "-r", (dir / "work/e").string(), copy.string()});
  ASSERT_EQ(cp.exit_code, 0) << cp.err;
  fs::remove_all(dir / "work");
  ExpectSelfContained(copy, bytes);
  Result<Dataset> back = ReadRoboflow(copy);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->images.size(), 90u);
}

TEST(ExportParamsTest, BadFormatsAreConfigErrors) {
  TempDir dir;
  auto run = [&](const std::string& params) {
    testing::RunYaml(BuiltinRegistry(), dir.path(),
                     "workdir: work\nstages:\n  - id: ann\n    kind: annotate\n    params: {images: .}\n"
                     "  - id: x\n    kind: export\n    inputs: ann\n    params: " + params + "\n");
  };
  try {
    run("{formats: [robofow]}");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown format 'robofow' (did you mean 'roboflow'?)"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(run("{formats: []}"), std::runtime_error);
  EXPECT_THROW(run("{formats: [csv, csv]}"), std::runtime_error);
  EXPECT_THROW(run("{formats: [parquet]}"), std::runtime_error);
  EXPECT_THROW(run("{formats: [yolo, yolo]}"), std::runtime_error);
  try {
    run("{formats: [yolov8]}");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("(formats: roboflow, csv, yolo)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace medpipe
