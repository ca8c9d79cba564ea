#include <fmt/format.h>
#include <rapidjson/document.h>

#include <gtest/gtest.h>
#include <jpeglib.h>

#include "dataset/coco_io.h"
#include "stages/link_images.h"
#include "tests/test_util.h"
#include "util/hash.h"

namespace medpipe {
namespace {

using testing::TempDir;


// A 64x64 gray baseline JPEG of a gradient.
std::string EncodeJpeg() {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* mem = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &mem, &size);
  c.image_width = c.image_height = 64;
  c.input_components = 1;
  c.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&c);
  jpeg_start_compress(&c, TRUE);
  unsigned char row[64];
  while (c.next_scanline < 64) {
    for (int x = 0; x < 64; ++x) row[x] = static_cast<unsigned char>((x * 4 + c.next_scanline * 3) % 256);
    JSAMPROW rows[1] = {row};
    jpeg_write_scanlines(&c, rows, 1);
  }
  jpeg_finish_compress(&c);
  std::string out(reinterpret_cast<char*>(mem), size);
  jpeg_destroy_compress(&c);
  free(mem);
  return out;
}

rapidjson::Document ReadJson(const fs::path& path) {
  rapidjson::Document doc;
  doc.Parse(testing::ReadText(path).c_str());
  EXPECT_FALSE(doc.HasParseError()) << path;
  return doc;
}

// Three patients of three 64x64 slices: P0001 in train, P0002 in valid, P0003
// in test; a box on slice 1 of each. Categories EDH=1, IPH=2.
class ValidateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeExampleData(dir_ / "data", 3, 3);
    ds_.categories = {{1, "EDH", "h"}, {2, "IPH", "h"}};
    const char* splits[] = {"train", "valid", "test"};
    for (int p = 1; p <= 3; ++p) {
      for (int s = 1; s <= 3; ++s) {
        int64_t id = AddImage(fmt::format("images/P000{}_00{}.png", p, s), fmt::format("P000{}", p), splits[p - 1]);
        if (s == 1) AddBox(id, p % 2 + 1, 10, 10, 20, 20);
      }
    }
  }
  int64_t AddImage(const std::string& file, const std::string& patient, const std::string& split) {
    Image img;
    img.id = static_cast<int64_t>(ds_.images.size()) + 1;
    img.file_name = file, img.patient_id = patient, img.split = split;
    img.width = img.height = 64;
    ds_.images.push_back(img);
    return img.id;
  }
  void AddBox(int64_t image, int64_t category, double x, double y, double w, double h) {
    Annotation a;
    a.id = static_cast<int64_t>(ds_.annotations.size()) + 1;
    a.image_id = image, a.category_id = category;
    a.bbox[0] = x, a.bbox[1] = y, a.bbox[2] = w, a.bbox[3] = h;
    a.area = w * h;
    ds_.annotations.push_back(a);
  }
  testing::RunResult Run(const std::string& params = "{}", const std::string& extra_inputs = "",
                         RunOptions options = {}) {
    testing::WriteText(dir_ / "data/ds.json", SerializeCoco(ds_));
    return testing::RunYaml(testing::TestKinds(), dir_.path(),
                            "workdir: work\nstages:\n"
                            "  - id: d\n    kind: emit\n    params: {coco: data/ds.json}\n"
                            "  - id: other\n    kind: emit\n    params: {coco: data/other.json}\n"
                            "  - id: v\n    kind: validate\n    inputs: [d" + extra_inputs + "]\n    params: " +
                                params + "\n",
                            options);
  }
  rapidjson::Document Validation() { return ReadJson(dir_ / "work/v/validation.json"); }
  // Expects exactly `check` to fail, with `n` failures, the first listed item
  // containing `text`.
  void ExpectOnly(const testing::RunResult& r, const std::string& check, int n, const std::string& text) {
    EXPECT_EQ(r.summary.exit_code, 1);
    EXPECT_EQ(r.Of("v").reason, fmt::format("validation failed: {} ({}); see v/validation.json", check, n));
    rapidjson::Document doc = Validation();
    ASSERT_TRUE(doc.IsObject());
    EXPECT_FALSE(doc["passed"].GetBool());
    for (auto& m : doc["checks"].GetObject()) {
      const std::string name = m.name.GetString();
      EXPECT_EQ(m.value["passed"].GetBool(), name != check) << name;
      if (name != check) continue;
      EXPECT_EQ(m.value["failures"].GetInt(), n);
      ASSERT_GE(m.value["items"].Size(), 1u);
      EXPECT_NE(std::string(m.value["items"][0].GetString()).find(text), std::string::npos)
          << m.value["items"][0].GetString();
    }
  }
  void SetUpOther() { testing::WriteText(dir_ / "data/other.json", SerializeCoco(Dataset{})); }
  TempDir dir_;
  Dataset ds_;
};

TEST_F(ValidateTest, CleanDatasetPassesAndPassesThroughAsLinks) {
  SetUpOther();
  auto r = Run();
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("v").reason;
  rapidjson::Document doc = Validation();
  EXPECT_TRUE(doc["passed"].GetBool());
  EXPECT_EQ(doc["images"].GetInt(), 9);
  EXPECT_EQ(doc["checks"].MemberCount(), 6u);
  for (auto& m : doc["checks"].GetObject()) EXPECT_TRUE(m.value["passed"].GetBool()) << m.name.GetString();
  Result<Dataset> out = ReadCoco(dir_ / "work/v/dataset.json");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(SerializeCoco(*out), SerializeCoco(ds_));
  fs::path link = dir_ / "work/v/images/P0002_003.png";
  ASSERT_TRUE(fs::is_symlink(link));
  EXPECT_TRUE(fs::read_symlink(link).is_relative());
  EXPECT_TRUE(fs::exists(link));
}

TEST_F(ValidateTest, PatientInTrainAndTestIsLeakage) {
  SetUpOther();
  ds_.images[8].patient_id = "P0001";  // images/P0003_003.png, in test
  ExpectOnly(Run(), "leakage", 1, "patient P0001: in test (1 image), train (3 images)");
}

// Patient ids that are only upload names (one per image) hide a patient the
// file names carry; patient_pattern checks leakage on those too.
TEST_F(ValidateTest, PatientPatternFindsLeaksThatGroupIdsHide) {
  SetUpOther();
  for (Image& img : ds_.images) img.patient_id = "rf" + std::to_string(img.id);
  ds_.images[8].split = "train";  // images/P0003_003.png: P0003 is now in train and test
  ASSERT_EQ(Run().summary.exit_code, 0) << "no patient id is in two splits";
  ExpectOnly(Run("{patient_pattern: '^(P\\d+)_'}"), "leakage", 1,
             "patient P0003 (from file names): in test (2 images), train (1 image)");
}

TEST_F(ValidateTest, AugmentedCopyInAnotherSplitThanItsSourceIsLeakage) {
  SetUpOther();
  ds_.images[3].origin = Origin{"images/P0001_001.png", "hflip"};  // a valid image derived from a train one
  ExpectOnly(Run(), "leakage", 1, "images/P0002_001.png: in valid but derived from images/P0001_001.png in train");
}

TEST_F(ValidateTest, BoxOutsideTheImageFailsButWithinToleranceDoesNot) {
  SetUpOther();
  AddBox(2, 1, 50, 10, 14.4, 10);  // ends at 64.4: inside the default 0.5 px tolerance
  AddBox(2, 1, 50, 10, 20, 10);    // ends at 70
  ExpectOnly(Run(), "boxes", 1, "annotation 5 (images/P0001_002.png): box [50, 10, 20, 10] extends past the 64x64");
  auto strict = Run("{box_tolerance: 0}");
  EXPECT_EQ(strict.Of("v").reason, "validation failed: boxes (2); see v/validation.json");
}

TEST_F(ValidateTest, NegativeWidthHasNoPositiveArea) {
  SetUpOther();
  AddBox(5, 2, 30, 30, -4, 10);
  ExpectOnly(Run(), "boxes", 1, "annotation 4 (images/P0002_002.png): box [30, 30, -4, 10] has no positive area");
}

TEST_F(ValidateTest, MissingFileFails) {
  SetUpOther();
  fs::remove(dir_ / "data/images/P0002_002.png");
  ExpectOnly(Run(), "files", 1, "images/P0002_002.png: cannot open");
}

TEST_F(ValidateTest, CorruptPngFailsTheHeaderCheck) {
  SetUpOther();
  testing::WriteText(dir_ / "data/images/P0002_002.png", std::string("\x89PNG\r\n\x1a\n", 8) + "not a png at all");
  ExpectOnly(Run(), "files", 1, "images/P0002_002.png: corrupt PNG");
}

TEST_F(ValidateTest, TruncatedPixelDataFailsOnlyAFullDecode) {
  SetUpOther();
  std::string png = testing::ReadText(dir_ / "data/images/P0002_002.png");
  testing::WriteText(dir_ / "data/images/P0002_002.png", png.substr(0, png.size() - 40));
  EXPECT_EQ(Run().summary.exit_code, 0) << "the header is intact";
  ExpectOnly(Run("{decode: full}"), "files", 1, "images/P0002_002.png: corrupt PNG");
}

TEST_F(ValidateTest, TruncatedJpegFailsOnlyAFullDecode) {
  SetUpOther();
  std::string jpeg = EncodeJpeg();
  testing::WriteText(dir_ / "data/images/scan.jpg", jpeg);
  AddImage("images/scan.jpg", "P0001", "train");
  EXPECT_EQ(Run("{decode: full}").summary.exit_code, 0) << "an intact JPEG decodes";
  testing::WriteText(dir_ / "data/images/scan.jpg", jpeg.substr(0, jpeg.size() / 2));
  EXPECT_EQ(Run().summary.exit_code, 0) << "the header is intact";
  ExpectOnly(Run("{decode: full}"), "files", 1, "images/scan.jpg: corrupt JPEG: Premature end of JPEG file");
}

TEST_F(ValidateTest, SizeDifferentFromTheFileFails) {
  SetUpOther();
  ds_.images[4].width = 32;
  ExpectOnly(Run(), "files", 1, "images/P0002_002.png: the dataset says 32x64, the file is 64x64");
}

TEST_F(ValidateTest, SamePixelsInTrainAndValidAreDuplicates) {
  SetUpOther();
  fs::copy_file(dir_ / "data/images/P0001_002.png", dir_ / "data/images/copy.png");
  AddImage("images/copy.png", "P0009", "valid");
  ExpectOnly(Run(), "duplicates", 1, "images/P0001_002.png: same bytes as valid:images/copy.png");
}

TEST_F(ValidateTest, SamePixelsInOneSplitAreOnlyNoted) {
  SetUpOther();
  fs::copy_file(dir_ / "data/images/P0001_002.png", dir_ / "data/images/copy.png");
  AddImage("images/copy.png", "P0001", "train");
  ASSERT_EQ(Run().summary.exit_code, 0);
  EXPECT_EQ(Validation()["notes"]["duplicates_within_a_split"].GetInt(), 1);
}

TEST_F(ValidateTest, ImagesOfAnotherInputMustNotReappear) {
  Dataset other;
  Image img;
  img.id = 1, img.file_name = "images/P0003_002.png", img.width = img.height = 64;
  other.images.push_back(img);
  testing::WriteText(dir_ / "data/other.json", SerializeCoco(other));
  ASSERT_EQ(Run().summary.exit_code, 0) << "without the second input nothing is compared";
  ExpectOnly(Run("{}", ", other"), "duplicates", 1, "images/P0003_002.png: same bytes as images/P0003_002.png in "
                                                    "input other");
}

TEST_F(ValidateTest, UndefinedCategoryAndDanglingImageId) {
  SetUpOther();
  AddBox(1, 7, 1, 1, 5, 5);
  ExpectOnly(Run(), "categories", 1, "annotation 4: category_id 7 is not defined");
  ds_.annotations.pop_back();
  AddBox(99, 1, 1, 1, 5, 5);
  ds_.annotations.back().id = 1;
  ExpectOnly(Run(), "ids", 2, "annotation 1: annotation id used twice");
}

TEST_F(ValidateTest, FailureMessageListsEveryFailedCheckAndFailOnChoosesTheFatalOnes) {
  SetUpOther();
  ds_.images[0].patient_id = "P0002";  // in train and valid
  AddBox(2, 1, 60, 60, 10, 10);
  AddBox(2, 1, 0, 0, 0, 5);
  AddBox(3, 9, 1, 1, 5, 5);
  auto r = Run();
  EXPECT_EQ(r.summary.exit_code, 1);
  EXPECT_EQ(r.Of("v").reason, "validation failed: leakage (1), boxes (2), categories (1); see v/validation.json");
  EXPECT_FALSE(fs::exists(dir_ / "work/v/.medpipe/commit.json"));
  std::string report = testing::ReadText(dir_ / "work/v/report.json");
  EXPECT_NE(report.find("boxes: box [0, 0, 0, 5] has no positive area"), std::string::npos) << report;

  auto lenient = Run("{fail_on: [leakage, files]}");
  EXPECT_EQ(lenient.Of("v").reason, "validation failed: leakage (1); see v/validation.json");
  auto report_only = Run("{fail_on: [files]}");
  EXPECT_EQ(report_only.summary.exit_code, 0);
  rapidjson::Document doc = Validation();
  EXPECT_TRUE(doc["passed"].GetBool());
  EXPECT_FALSE(doc["checks"]["boxes"]["passed"].GetBool());
  EXPECT_FALSE(doc["checks"]["boxes"]["fatal"].GetBool());
  EXPECT_EQ(doc["checks"]["boxes"]["failures"].GetInt(), 2);
}

TEST_F(ValidateTest, ListedFailuresAreCappedButAllCounted) {
  SetUpOther();
  for (int k = 0; k < 5; ++k) AddBox(2, 1, 0, 0, -1, 5);
  Run("{max_listed: 3}");
  rapidjson::Document doc = Validation();
  EXPECT_EQ(doc["checks"]["boxes"]["failures"].GetInt(), 5);
  EXPECT_EQ(doc["checks"]["boxes"]["items"].Size(), 3u);
  EXPECT_EQ(doc["checks"]["boxes"]["items_not_listed"].GetInt(), 2);
}

TEST_F(ValidateTest, RerunAfterAFailureResumesTheFileChecks) {
  SetUpOther();
  AddBox(2, 1, 0, 0, -1, 5);
  ASSERT_EQ(Run().summary.exit_code, 1);
  auto r = Run();
  EXPECT_EQ(r.Of("v").state, StageOutcome::State::kFailed);
  EXPECT_GE(r.Of("v").items.resumed, 9) << "the 9 files are not read again";
}

TEST_F(ValidateTest, SameBytesForOneOrTwoThreads) {
  SetUpOther();
  AddBox(2, 1, 0, 0, -1, 5);
  AddBox(3, 1, 60, 0, 10, 5);
  fs::copy_file(dir_ / "data/images/P0001_002.png", dir_ / "data/images/copy.png");
  AddImage("images/copy.png", "P0002", "test");
  std::map<std::string, std::string> snaps[2];
  for (int threads : {1, 2}) {
    RunOptions o;
    o.threads = threads;
    Run("{}", "", o);
    snaps[threads - 1] = testing::Snapshot(dir_ / "work/v");
    fs::remove_all(dir_ / "work");
  }
  EXPECT_EQ(snaps[0], snaps[1]);
  EXPECT_TRUE(snaps[0].count("validation.json"));
}

TEST(ValidateAnnotateTest, ExampleDataStraightFromAnnotatePasses) {
  TempDir dir;
  testing::MakeExampleData(dir / "data", 2, 4);
  auto r = testing::RunYaml(BuiltinRegistry(), dir.path(),
                            "workdir: work\nstages:\n"
                            "  - id: ann\n    kind: annotate\n    params: {images: data/images, annotations: "
                            "data/boxes.coco.json, patient_pattern: '^(P\\d+)_'}\n"
                            "  - id: v\n    kind: validate\n    inputs: ann\n    params: {decode: full}\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("v").reason;
  rapidjson::Document doc = ReadJson(dir / "work/v/validation.json");
  EXPECT_TRUE(doc["passed"].GetBool());
  EXPECT_EQ(doc["images"].GetInt(), 8);
  EXPECT_EQ(doc["notes"]["images_without_split"].GetInt(), 8) << "annotate sets no split";
}

const fs::path kPublic = fs::path(MEDPIPE_PUBLIC_DATA);

// The brain-MRI export's Roboflow copies, merged without patient ids and
// split with no group attribute: copies of one upload land in two splits.
// validate finds it from the file names alone.
TEST(ValidatePublicTest, RoboflowCopiesInTwoSplitsAreLeakageWhateverTheSplitWasTold) {
  TempDir dir;
  const fs::path brain = kPublic / "coco_roboflow_brain_tumor_mri";
  auto r = testing::RunYaml(
      BuiltinRegistry(), dir.path(),
      "workdir: work\nstages:\n"
      "  - id: m\n    kind: merge\n    params:\n"
      "      sources: [{path: '" + brain.string() + "', prefix: bt_}]\n"
      "      categories: [object]\n      patient_from_group: false\n"
      "  - id: s\n    kind: split\n    inputs: m\n    params: {missing_patient: own_group, group_attribute: ''}\n"
      "  - id: v\n    kind: validate\n    inputs: s\n");
  ASSERT_EQ(r.Of("s").state, StageOutcome::State::kRan) << r.Of("s").reason;
  EXPECT_EQ(r.Of("v").state, StageOutcome::State::kFailed);
  EXPECT_NE(r.Of("v").reason.find("leakage"), std::string::npos) << r.Of("v").reason;
  rapidjson::Document doc = ReadJson(dir / "work/v/validation.json");
  const auto& leakage = doc["checks"]["leakage"];
  EXPECT_GT(leakage["failures"].GetInt(), 0);
  ASSERT_GT(leakage["items"].Size(), 0u);
  EXPECT_EQ(std::string(leakage["items"][0].GetString()).rfind("Roboflow upload images/bt_", 0), 0u)
      << leakage["items"][0].GetString();

  // With the groups kept together (the defaults), no upload is in two splits.
  r = testing::RunYaml(BuiltinRegistry(), dir.path(),
                       "workdir: work\nstages:\n"
                       "  - id: m\n    kind: merge\n    params:\n"
                       "      sources: [{path: '" + brain.string() + "', prefix: bt_}]\n"
                       "      categories: [object]\n      patient_from_group: false\n"
                       "  - id: s\n    kind: split\n    inputs: m\n    params: {missing_patient: own_group}\n"
                       "  - id: v\n    kind: validate\n    inputs: s\n");
  EXPECT_EQ(r.summary.exit_code, 0) << r.Of("v").reason;
}

// The wrist export's train/ holds 27 JPEGs its JSON does not list, byte
// copies of its valid and test images: validate warns of each.
TEST(ValidatePublicTest, UnlistedCopiesOfAnotherSplitsImagesAreWarnings) {
  TempDir dir;
  const fs::path wrist = kPublic / "coco_roboflow_wrist_xray";
  auto r = testing::RunYaml(BuiltinRegistry(), dir.path(),
                            "workdir: work\nstages:\n"
                            "  - id: m\n    kind: merge\n    params:\n"
                            "      sources: [{path: '" + wrist.string() + "', source: wrist}]\n"
                            "      categories: [Radius, Scaphoid, Ulna]\n"
                            "  - id: v\n    kind: validate\n    inputs: m\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("v").reason;
  rapidjson::Document doc = ReadJson(dir / "work/v/report.json");
  EXPECT_EQ(doc["counters"]["unlisted_copies_of_other_splits"].GetInt(), 27);
  int warnings = 0;
  for (const auto& p : doc["problems"].GetArray()) {
    std::string item = p["item"].GetString(), reason = p["reason"].GetString();
    if (reason.rfind("warning: not in the dataset, but beside its train images", 0) != 0) continue;
    ++warnings;
    EXPECT_EQ(item.rfind(fs::canonical(wrist / "train").string(), 0), 0u) << item;
  }
  EXPECT_EQ(warnings, 27);
}

TEST(ValidateParamsTest, BadParamsAreConfigErrors) {
  TempDir dir;
  auto run = [&](const std::string& params) {
    testing::RunYaml(BuiltinRegistry(), dir.path(),
                     "workdir: work\nstages:\n  - id: ann\n    kind: annotate\n    params: {images: .}\n"
                     "  - id: v\n    kind: validate\n    inputs: ann\n    params: " + params + "\n");
  };
  try {
    run("{fail_on: [leakag]}");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown check 'leakag' (did you mean 'leakage'?)"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(run("{fail_on: [boxes, boxes]}"), std::runtime_error);
  EXPECT_THROW(run("{box_tolerance: -1}"), std::runtime_error);
  EXPECT_THROW(run("{decode: pixels}"), std::runtime_error);
  EXPECT_THROW(run("{max_listed: -2}"), std::runtime_error);
}

}  // namespace
}  // namespace medpipe
