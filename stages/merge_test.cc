#include <rapidjson/document.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <set>

#include "dataset/coco_io.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;

struct TestImage {
  std::string file;
  std::string bytes;                            // file content; "" writes no file
  std::vector<int64_t> box_categories;          // one box per entry
  std::string patient;
  std::string split;
};

// Writes <dir>/coco.json and the image files (plain bytes: merge never decodes).
void WriteCocoSource(const fs::path& dir, std::vector<Category> categories, const std::vector<TestImage>& images) {
  Dataset ds;
  ds.categories = std::move(categories);
  for (const auto& t : images) {
    Image img;
    img.id = static_cast<int64_t>(ds.images.size()) + 10;  // not 1-based: merge renumbers
    img.file_name = t.file;
    img.width = img.height = 32;
    img.patient_id = t.patient;
    img.split = t.split;
    img.attributes["note"] = std::string("n-") + t.file;
    for (int64_t c : t.box_categories) {
      Annotation a;
      a.id = static_cast<int64_t>(ds.annotations.size()) + 100;
      a.image_id = img.id;
      a.category_id = c;
      a.bbox[0] = a.bbox[1] = 1, a.bbox[2] = a.bbox[3] = 4;
      a.area = 16;
      ds.annotations.push_back(a);
    }
    ds.images.push_back(img);
    if (!t.bytes.empty()) testing::WriteText(dir / t.file, t.bytes);
  }
  testing::WriteText(dir / "coco.json", SerializeCoco(ds));
}

std::map<std::string, int64_t> Counters(const fs::path& stage_dir) {
  rapidjson::Document doc;
  doc.Parse(testing::ReadText(stage_dir / "report.json").c_str());
  std::map<std::string, int64_t> out;
  if (!doc.IsObject() || !doc.HasMember("counters")) return out;
  for (const auto& m : doc["counters"].GetObject()) out[m.name.GetString()] = m.value.GetInt64();
  return out;
}

std::vector<std::pair<std::string, std::string>> Problems(const fs::path& stage_dir) {
  rapidjson::Document doc;
  doc.Parse(testing::ReadText(stage_dir / "report.json").c_str());
  std::vector<std::pair<std::string, std::string>> out;
  if (!doc.IsObject() || !doc.HasMember("problems")) return out;
  for (const auto& p : doc["problems"].GetArray()) out.emplace_back(p["item"].GetString(), p["reason"].GetString());
  return out;
}

// Every file named by the dataset is a relative symlink in the stage folder
// reaching a readable file.
void ExpectLinked(const fs::path& stage_dir, const Dataset& ds) {
  for (const auto& img : ds.images) {
    fs::path f = stage_dir / img.file_name;
    ASSERT_TRUE(fs::is_symlink(f)) << img.file_name;
    EXPECT_TRUE(fs::read_symlink(f).is_relative()) << img.file_name;
    EXPECT_TRUE(fs::is_regular_file(f)) << img.file_name << " does not resolve";
  }
}

void ExpectRenumbered(const Dataset& ds) {
  for (size_t i = 0; i < ds.images.size(); ++i) EXPECT_EQ(ds.images[i].id, static_cast<int64_t>(i) + 1);
  std::set<int64_t> image_ids;
  for (const auto& img : ds.images) image_ids.insert(img.id);
  for (size_t i = 0; i < ds.annotations.size(); ++i) {
    EXPECT_EQ(ds.annotations[i].id, static_cast<int64_t>(i) + 1);
    EXPECT_TRUE(image_ids.count(ds.annotations[i].image_id));
    EXPECT_GE(ds.annotations[i].category_id, 1);
    EXPECT_LE(ds.annotations[i].category_id, static_cast<int64_t>(ds.categories.size()));
  }
  for (size_t k = 0; k < ds.categories.size(); ++k) EXPECT_EQ(ds.categories[k].id, static_cast<int64_t>(k) + 1);
}

class MergeTest : public ::testing::Test {
 protected:
  // a/: IPH=1, bleed=2; b/: SDH=5, IPH=7. Both hold x.png and y.png.
  void SetUp() override {
    WriteCocoSource(dir_ / "a", {{1, "IPH", "h"}, {2, "bleed", "h"}},
                    {{"x.png", "ax", {1, 2}, "P1", "train"}, {"y.png", "ay", {}, "P2", ""}});
    WriteCocoSource(dir_ / "b", {{5, "SDH", "h"}, {7, "IPH", "h"}},
                    {{"x.png", "bx", {7}, "", "test"}, {"y.png", "by", {5, 5}, "P3", ""}});
  }
  testing::RunResult Run(const std::string& params, const std::string& before = "", RunOptions opt = {}) {
    return testing::RunYaml(BuiltinRegistry(), dir_.path(),
                            "workdir: work\nstages:\n" + before + "  - id: m\n    kind: merge\n    params:\n" + params,
                            opt);
  }
  Dataset Output() {
    Result<Dataset> ds = ReadCoco(dir_ / "work/m/dataset.json");
    EXPECT_TRUE(ds.ok()) << ds.status().ToString();
    return ds.ok() ? *ds : Dataset{};
  }
  static std::string Sources(const std::string& pa = "a_", const std::string& pb = "b_") {
    return "      sources:\n"
           "        - {path: a/coco.json, prefix: " + pa + ", source: va}\n"
           "        - {path: b/coco.json, prefix: " + pb + ", source: vb, format: coco}\n";
  }
  TempDir dir_;
};

TEST_F(MergeTest, OverlappingNamesUnderPrefixesRemappedAndRenumbered) {
  auto r = Run(Sources() + "      categories: [SDH, IPH]\n      category_map: {bleed: IPH}\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  Dataset ds = Output();
  ASSERT_EQ(ds.categories.size(), 2u);
  EXPECT_EQ(ds.categories[0].name, "SDH");
  EXPECT_EQ(ds.categories[1].name, "IPH");
  ASSERT_EQ(ds.images.size(), 4u);
  std::vector<std::string> names;
  for (const auto& img : ds.images) names.push_back(img.file_name);
  EXPECT_EQ(names, (std::vector<std::string>{"images/a_x.png", "images/a_y.png", "images/b_x.png", "images/b_y.png"}));
  EXPECT_EQ(ds.images[0].source, "va");
  EXPECT_EQ(ds.images[3].source, "vb");
  EXPECT_EQ(ds.images[0].patient_id, "P1");
  EXPECT_EQ(ds.images[0].split, "train");
  EXPECT_EQ(ds.images[2].split, "test");
  EXPECT_EQ(AttrToString(ds.images[2].attributes.at("note")), "n-x.png");
  EXPECT_EQ(ds.images[2].attributes.count("group"), 0u) << "not a Roboflow name";
  // a_x: IPH, bleed->IPH; b_x: IPH(7); b_y: SDH, SDH.
  ASSERT_EQ(ds.annotations.size(), 5u);
  std::vector<std::pair<int64_t, int64_t>> got;
  for (const auto& a : ds.annotations) got.emplace_back(a.image_id, a.category_id);
  EXPECT_EQ(got, (std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {1, 2}, {3, 2}, {4, 1}, {4, 1}}));
  ExpectRenumbered(ds);
  ExpectLinked(dir_ / "work/m", ds);
  EXPECT_EQ(testing::ReadText(dir_ / "work/m/images/b_x.png"), "bx");
  auto c = Counters(dir_ / "work/m");
  EXPECT_EQ(c["images.va"], 2);
  EXPECT_EQ(c["images.vb"], 2);
  EXPECT_EQ(c["categories_remapped"], 1);
  EXPECT_EQ(c["duplicates"], 0);
  EXPECT_EQ(c["annotations_dropped"], 0);
}

TEST_F(MergeTest, RerunSkipsAndAChangedSourceImageReruns) {
  const std::string params = Sources() + "      categories: [SDH, IPH]\n      category_map: {bleed: IPH}\n";
  ASSERT_EQ(Run(params).summary.exit_code, 0);
  EXPECT_EQ(Run(params).Of("m").state, StageOutcome::State::kSkipped);
  testing::WriteText(dir_ / "b/y.png", "ax");  // now the same bytes as a/x.png
  auto r = Run(params);
  EXPECT_EQ(r.Of("m").state, StageOutcome::State::kRan);
  EXPECT_EQ(r.Of("m").reason, "source files changed");
  EXPECT_EQ(Output().images.size(), 3u);
}

TEST_F(MergeTest, SamePrefixCollisionDropsTheSecondAsAProblem) {
  auto r = Run(Sources("s_", "s_") + "      categories: [SDH, IPH]\n      category_map: {bleed: IPH}\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), 2u);
  EXPECT_EQ(ds.images[0].source, "va");
  EXPECT_EQ(ds.images[1].source, "va");
  EXPECT_EQ(ds.annotations.size(), 2u) << "the dropped images' boxes go with them";
  EXPECT_EQ(testing::ReadText(dir_ / "work/m/images/s_x.png"), "ax");
  EXPECT_EQ(Counters(dir_ / "work/m")["name_collisions"], 2);
  auto problems = Problems(dir_ / "work/m");
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].first, "vb:x.png");
  EXPECT_NE(problems[0].second.find("va:x.png"), std::string::npos) << problems[0].second;
}

TEST_F(MergeTest, UnmappedCategoriesFailListingThemAll) {
  auto r = Run(Sources() + "      categories: [IPH]\n");
  EXPECT_EQ(r.summary.exit_code, 1);
  EXPECT_EQ(r.Of("m").state, StageOutcome::State::kFailed);
  EXPECT_NE(r.Of("m").reason.find("va: bleed, vb: SDH"), std::string::npos) << r.Of("m").reason;
  EXPECT_FALSE(fs::exists(dir_ / "work/m/dataset.json"));
}

TEST_F(MergeTest, UnmappedDropRemovesTheirAnnotationsAndCountsThem) {
  auto r = Run(Sources() + "      categories: [IPH]\n      unmapped: drop\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  Dataset ds = Output();
  EXPECT_EQ(ds.images.size(), 4u) << "images lose boxes, not their place";
  ASSERT_EQ(ds.annotations.size(), 2u);
  EXPECT_EQ(ds.annotations[0].image_id, 1);
  EXPECT_EQ(ds.annotations[1].image_id, 3);
  auto c = Counters(dir_ / "work/m");
  EXPECT_EQ(c["annotations_dropped"], 3);  // bleed once, SDH twice
  EXPECT_EQ(c["categories_dropped"], 2);
}

// A negative-width box in a source is not passed through with area 0.
TEST_F(MergeTest, BadBoxesAreDroppedAndListed) {
  Result<Dataset> a = ReadCoco(dir_ / "a/coco.json");
  ASSERT_TRUE(a.ok());
  a->annotations[0].bbox[0] = 10, a->annotations[0].bbox[1] = 10;
  a->annotations[0].bbox[2] = -5, a->annotations[0].bbox[3] = 4;  // annotation 100 of x.png
  testing::WriteText(dir_ / "a/coco.json", SerializeCoco(*a));
  auto r = Run(Sources() + "      categories: [IPH, bleed, SDH]\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  EXPECT_EQ(Counters(dir_ / "work/m")["boxes_dropped"], 1);
  EXPECT_EQ(Output().annotations.size(), 4u);
  bool listed = false;
  for (const auto& [item, reason] : Problems(dir_ / "work/m")) {
    listed |= item == "va:x.png: annotation 100" && reason.find("[10, 10, -5, 4]") != std::string::npos;
  }
  EXPECT_TRUE(listed);
  EXPECT_EQ(Run(Sources() + "      categories: [IPH, bleed, SDH]\n      bad_boxes: fail\n").summary.exit_code, 1);
}

TEST_F(MergeTest, DuplicatePixelsAcrossSourcesAreKeptOnceAndReported) {
  testing::WriteText(dir_ / "b/y.png", "ay");  // b/y.png has a/y.png's bytes
  auto r = Run(Sources() + "      categories: [SDH, IPH]\n      category_map: {bleed: IPH}\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), 3u);
  EXPECT_EQ(ds.images[2].file_name, "images/b_x.png");
  EXPECT_FALSE(fs::exists(dir_ / "work/m/images/b_y.png"));
  EXPECT_EQ(ds.annotations.size(), 3u) << "the dropped copy's boxes go with it";
  ExpectRenumbered(ds);
  EXPECT_EQ(Counters(dir_ / "work/m")["duplicates"], 1);
  auto problems = Problems(dir_ / "work/m");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].first, "vb:y.png");
  EXPECT_NE(problems[0].second.find("va:y.png"), std::string::npos) << problems[0].second;
}

TEST_F(MergeTest, FileNameLeavingTheFolderIsAPerItemProblem) {
  WriteCocoSource(dir_ / "c", {{1, "IPH", "h"}}, {{"ok.png", "ok", {1}, "", ""}, {"../secret.png", "s", {1}, "", ""}});
  auto r = Run("      sources: [{path: c/coco.json, prefix: c_}]\n      categories: [IPH]\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), 1u);
  EXPECT_EQ(ds.images[0].file_name, "images/c_ok.png");
  EXPECT_EQ(ds.images[0].source, "coco.json") << "no source tag: the file's name";
  EXPECT_FALSE(fs::exists(dir_ / "work/m/images/c_secret.png"));
  EXPECT_EQ(Counters(dir_ / "work/m")["unsafe_file_names"], 1);
  EXPECT_EQ(Counters(dir_ / "work/m")["annotations_dropped"], 1) << "the refused image's box is counted";
  auto problems = Problems(dir_ / "work/m");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].first, "coco.json:../secret.png");
  EXPECT_NE(problems[0].second.find("with its 1 annotation(s)"), std::string::npos) << problems[0].second;
}

TEST_F(MergeTest, MissingImageFileIsAPerItemProblem) {
  WriteCocoSource(dir_ / "c", {{1, "IPH", "h"}}, {{"gone.png", "", {1}, "", ""}, {"ok.png", "ok", {1}, "", ""}});
  auto r = Run("      sources: [{path: c/coco.json, source: c}]\n      categories: [IPH]\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), 1u);
  EXPECT_EQ(ds.images[0].file_name, "images/ok.png");
  EXPECT_EQ(Counters(dir_ / "work/m")["unreadable"], 1);
}

TEST_F(MergeTest, StageInputsTakePrefixAndSourceFromParams) {
  testing::MakeExampleData(dir_ / "data", 1, 2);
  const std::string ann = "  - id: ann\n    kind: annotate\n    params: {images: data/images, annotations: data/boxes.coco.json}\n";
  auto r = testing::RunYaml(BuiltinRegistry(), dir_.path(),
                       "workdir: work\nstages:\n" + ann +
                           "  - id: m\n    kind: merge\n    inputs: [ann]\n    params:\n"
                           "      input_prefixes: {ann: v3_}\n      input_sources: {ann: v3}\n" +
                           Sources() + "      categories: [EDH, HC, IPH, IVH, SAH, SDH]\n      category_map: {bleed: IPH}\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), 6u);
  EXPECT_EQ(ds.images[0].file_name, "images/v3_P0001_001.png") << "inputs come before sources";
  EXPECT_EQ(ds.images[0].source, "v3");
  EXPECT_EQ(ds.images[0].patient_id, "") << "annotate without a pattern gives none; not a Roboflow name";
  EXPECT_EQ(ds.images[2].file_name, "images/a_x.png");
  ExpectRenumbered(ds);
  ExpectLinked(dir_ / "work/m", ds);
  struct stat a, b;
  ASSERT_EQ(::stat((dir_ / "work/m/images/v3_P0001_001.png").c_str(), &a), 0);
  ASSERT_EQ(::stat((dir_ / "data/images/P0001_001.png").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino) << "the link reaches the original file through the input's link";
  EXPECT_EQ(Counters(dir_ / "work/m")["images.ann"], 2);
}

TEST_F(MergeTest, OutputIsIdenticalForOneAndTwoThreads) {
  testing::WriteText(dir_ / "b/y.png", "ay");
  WriteCocoSource(dir_ / "c", {{1, "IPH", "h"}}, {{"../bad.png", "s", {1}, "", ""}, {"z.png", "z", {1}, "", ""}});
  const std::string params = "      sources:\n"
                             "        - {path: a/coco.json, prefix: a_, source: va}\n"
                             "        - {path: b/coco.json, prefix: b_, source: vb}\n"
                             "        - {path: c/coco.json, prefix: a_, source: vc}\n"
                             "      categories: [SDH, IPH]\n      category_map: {bleed: IPH}\n";
  RunOptions one, two;
  one.threads = 1;
  two.threads = 2;
  ASSERT_EQ(Run(params, "", one).summary.exit_code, 0);
  auto first = testing::Snapshot(dir_ / "work/m");
  fs::remove_all(dir_ / "work");
  ASSERT_EQ(Run(params, "", two).summary.exit_code, 0);
  auto second = testing::Snapshot(dir_ / "work/m");
  EXPECT_EQ(first, second);
  EXPECT_EQ(first.size(), 6u) << "dataset.json, report.json and four links";
}

TEST_F(MergeTest, ParamErrorsAreConfigErrors) {
  auto message = [&](const std::string& params) {
    try {
      Run(params);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("      categories: [IPH]\n").find("needs stage inputs or external sources"), std::string::npos);
  EXPECT_NE(message(Sources() + "      categories: [IPH]\n      category_map: {bleed: XYZ}\n")
                .find("'bleed' maps to 'XYZ', which is not in categories"),
            std::string::npos);
  EXPECT_NE(message(Sources() + "      categories: [IPH, IPH]\n").find("listed twice"), std::string::npos);
  EXPECT_NE(message("      sources: [{pth: a/coco.json}]\n      categories: [IPH]\n").find("did you mean 'path'"),
            std::string::npos);
  EXPECT_NE(message("      sources: [{path: a/coco.json, format: yolo}]\n      categories: [IPH]\n")
                .find("'yolo' is not one of"),
            std::string::npos);
  EXPECT_NE(message("      sources: [{path: a/coco.json, prefix: ../x}]\n      categories: [IPH]\n")
                .find("prefix '../x'"),
            std::string::npos);
  EXPECT_NE(message(Sources() + "      input_prefixes: {ann: v3_}\n      categories: [IPH]\n")
                .find("'ann' is not an input of this stage"),
            std::string::npos);
  EXPECT_NE(message(Sources() + "      categories: [IPH]\n      unmapped: maybe\n").find("'maybe' is not one of"),
            std::string::npos);
}

// The real Roboflow exports in shared/data/public.
const fs::path kPublic = fs::path(MEDPIPE_PUBLIC_DATA);

class MergeRoboflowTest : public ::testing::Test {
 protected:
  testing::RunResult Run(const std::string& params) {
    return testing::RunYaml(BuiltinRegistry(), dir_.path(),
                            "workdir: work\nstages:\n  - id: m\n    kind: merge\n    params:\n" + params);
  }
  Dataset Output() {
    Result<Dataset> ds = ReadCoco(dir_ / "work/m/dataset.json");
    EXPECT_TRUE(ds.ok()) << ds.status().ToString();
    return ds.ok() ? *ds : Dataset{};
  }
  TempDir dir_;
};

TEST_F(MergeRoboflowTest, WristXrayDropsTheIdZeroParentAndUnlistedImages) {
  const fs::path wrist = kPublic / "coco_roboflow_wrist_xray";
  auto r = Run("      sources: [{path: '" + wrist.string() + "', prefix: wr_, source: wrist}]\n"
               "      categories: [radius, ulna, scaphoid]\n"
               "      category_map: {Radius: radius, Ulna: ulna, Scaphoid: scaphoid}\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), 90u) << "63 train + 18 valid + 9 test listed in the JSONs";
  std::map<std::string, int> per_split;
  for (const auto& img : ds.images) ++per_split[img.split];
  EXPECT_EQ(per_split, (std::map<std::string, int>{{"test", 9}, {"train", 63}, {"valid", 18}}));
  ASSERT_EQ(ds.categories.size(), 3u);
  std::map<int64_t, int> per_cat;
  for (const auto& a : ds.annotations) ++per_cat[a.category_id];
  EXPECT_EQ(per_cat, (std::map<int64_t, int>{{1, 66}, {2, 24}, {3, 3}}));  // radius, ulna, scaphoid
  ExpectRenumbered(ds);
  ExpectLinked(dir_ / "work/m", ds);

  // The 27 train JPEGs missing from train/_annotations.coco.json stay out
  // (some share a name with a listed test image, so compare what links reach).
  Result<Dataset> train = ReadCoco(wrist / "train/_annotations.coco.json");
  ASSERT_TRUE(train.ok());
  std::set<std::string> listed;
  for (const auto& img : train->images) listed.insert(img.file_name);
  std::set<fs::path> reached;
  size_t links = 0;
  for (const auto& e : fs::directory_iterator(dir_ / "work/m/images")) {
    ++links;
    reached.insert(fs::canonical(e.path()));
  }
  EXPECT_EQ(links, 90u) << "one link per listed image, nothing else (no Thumbs.db)";
  int unlisted = 0;
  for (const auto& e : fs::directory_iterator(wrist / "train")) {
    std::string name = e.path().filename().string();
    if (e.path().extension() != ".jpg" || listed.count(name)) continue;
    ++unlisted;
    EXPECT_FALSE(reached.count(fs::canonical(e.path()))) << name;
  }
  EXPECT_EQ(unlisted, 27);
  EXPECT_FALSE(reached.count(fs::canonical(wrist / "test/Thumbs.db")));

  auto c = Counters(dir_ / "work/m");
  EXPECT_EQ(c["images.wrist"], 90);
  EXPECT_EQ(c["categories_remapped"], 3) << "the export's splits share one category list";
  EXPECT_EQ(c["annotations_dropped"], 0);
  EXPECT_EQ(c["roboflow_parent_annotations"], 0);
  // The unlisted JPEGs are said, not only left out.
  EXPECT_EQ(c["unlisted_images"], 27);
  auto problems = Problems(dir_ / "work/m");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].first, "wrist:train/");
  EXPECT_EQ(problems[0].second.rfind("27 image file(s) in the folder are not in its _annotations.coco.json", 0), 0u)
      << problems[0].second;
}

// A typo in a target name (Ulnaa) with unmapped: drop: the 24 Ulna boxes are
// dropped, and both the dropped source category and the target nothing maps
// to are problems naming the other.
TEST_F(MergeRoboflowTest, TargetNothingMapsToIsAProblemWithTheClosestSourceName) {
  const fs::path wrist = kPublic / "coco_roboflow_wrist_xray";
  auto r = Run("      sources: [{path: '" + wrist.string() + "', source: wrist}]\n"
               "      categories: [Radius, Scaphoid, Ulnaa]\n      unmapped: drop\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  auto c = Counters(dir_ / "work/m");
  EXPECT_EQ(c["annotations_dropped"], 24);
  EXPECT_EQ(c["target_categories_unused"], 1);
  std::map<std::string, std::string> problems;
  for (const auto& [item, reason] : Problems(dir_ / "work/m")) problems[item] = reason;
  EXPECT_EQ(problems["category 'Ulnaa'"],
            "no source category maps to this target, so it has no annotations (did you mean 'Ulna'?)");
  EXPECT_EQ(problems["wrist: category 'Ulna'"],
            "not mapped to a target category; 24 annotation(s) dropped (closest target: 'Ulnaa'; map it in "
            "category_map)");
}

TEST_F(MergeRoboflowTest, WristUnmappedErrorListsRealCategoriesButNotTheParent) {
  const fs::path wrist = kPublic / "coco_roboflow_wrist_xray";
  auto r = Run("      sources: [{path: '" + wrist.string() + "', source: wrist}]\n      categories: [Radius, Ulna]\n");
  ASSERT_EQ(r.summary.exit_code, 1);
  const std::string& why = r.Of("m").reason;
  EXPECT_NE(why.find("wrist: Scaphoid"), std::string::npos) << why;
  EXPECT_EQ(why.find("xrayconverttojson_coco"), std::string::npos) << why;

  r = Run("      sources: [{path: '" + wrist.string() + "', source: wrist}]\n      categories: [Radius, Ulna]\n"
          "      unmapped: drop\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  EXPECT_EQ(Counters(dir_ / "work/m")["annotations_dropped"], 3);
  EXPECT_EQ(Output().annotations.size(), 90u);
}

TEST_F(MergeRoboflowTest, SymlinkedExportFolderRelativeToThePipelineIsAutoDetected) {
  fs::create_directory_symlink(kPublic / "coco_roboflow_wrist_xray", dir_ / "wrist");
  const std::string params = "      sources: [{path: wrist, prefix: w_}]\n      categories: [Radius, Ulna, Scaphoid]\n";
  auto r = Run(params);
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), 90u);
  EXPECT_EQ(ds.images[0].source, "wrist") << "no source tag: the folder's name";
  EXPECT_EQ(fs::read_symlink(dir_ / "work/m" / ds.images[0].file_name).string().rfind("../../../wrist/", 0), 0u)
      << "links go through the path as written, so the project folder can move";
  EXPECT_EQ(Run(params).Of("m").state, StageOutcome::State::kSkipped);
}

TEST_F(MergeRoboflowTest, BrainTumorValFolderAndAugmentedCopiesShareAGroup) {
  const fs::path brain = kPublic / "coco_roboflow_brain_tumor_mri";
  auto r = Run("      sources: [{path: '" + brain.string() + "', prefix: bt_, format: roboflow}]\n"
               "      categories: [tumor]\n      category_map: {object: tumor}\n      patient_from_group: true\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), 178u);
  std::map<std::string, int> per_split;
  std::map<std::string, std::set<std::string>> group_splits;
  std::map<std::string, int> group_size;
  for (const auto& img : ds.images) {
    ++per_split[img.split];
    ASSERT_TRUE(img.attributes.count("group")) << img.file_name;
    std::string g = AttrToString(img.attributes.at("group"));
    EXPECT_EQ(img.patient_id, g) << "no patient id: the group stands in";
    EXPECT_EQ(g.rfind("bt_", 0), 0u);
    EXPECT_EQ(img.file_name.rfind("images/" + g + "_jpg.rf.", 0), 0u) << img.file_name << " vs " << g;
    ++group_size[g];
  }
  EXPECT_EQ(per_split, (std::map<std::string, int>{{"test", 4}, {"train", 154}, {"valid", 20}}));
  int shared = 0;
  for (const auto& [g, n] : group_size) shared += n > 1;
  EXPECT_EQ(shared, 68) << "train stems with more than one copy";
  EXPECT_EQ(ds.annotations.size(), 233u);
  ExpectRenumbered(ds);
  auto c = Counters(dir_ / "work/m");
  EXPECT_EQ(c["images.coco_roboflow_brain_tumor_mri"], 178);
  EXPECT_EQ(c["patient_from_group"], 178);

  r = Run("      sources: [{path: '" + brain.string() + "', prefix: bt_}]\n"
          "      categories: [object]\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("m").reason;
  ds = Output();
  ASSERT_FALSE(ds.images.empty());
  EXPECT_EQ(ds.images[0].patient_id, "") << "by default a Roboflow upload name is not a patient id";
  EXPECT_TRUE(ds.images[0].attributes.count("group"));
}

}  // namespace
}  // namespace medpipe
