// Tests of the dataset model (dataset/): COCO parsing and serialisation, the
// Roboflow export layout read from the real public exports, image header
// probes and PNG encoding.
#include <gtest/gtest.h>

#include <cmath>
#include <png.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "dataset/box_check.h"
#include "dataset/coco_io.h"
#include "dataset/dataset.h"
#include "dataset/image_io.h"
#include "image/png.h"
#include "util/fs.h"
#include "tests/test_util.h"
#include "util/status.h"

namespace medpipe {
namespace {

const fs::path kWrist = fs::path(MEDPIPE_PUBLIC_DATA) / "coco_roboflow_wrist_xray";
const fs::path kBrain = fs::path(MEDPIPE_PUBLIC_DATA) / "coco_roboflow_brain_tumor_mri";

using ScratchDir = testing::TempDir;

void WriteBytes(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

std::string ReadBytes(const fs::path& path) {
  Result<std::string> r = ReadFile(path);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : std::string();
}

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// ---------------------------------------------------------------------------
// COCO JSON.

// The serialiser's own layout: compact, fields in fixed order, attributes by
// key, doubles with a fraction. Text already in this form must come back
// byte for byte. Every extra per-image field is set, ids beyond 2^53 check
// that no value goes through a double, and the file name needs escaping.
const char kCanonicalCoco[] =
    R"({"images":[)"
    R"({"id":1,"file_name":"train/p1_s01.png","width":512,"height":256,"patient_id":"P001","source":"rsna","split":"train","labels":["IPH","SDH"],"attributes":{"feedback":"false_positive","machine":"GE \"Revolution\"","score":0.875,"slice_thickness":5.5,"slices":40,"verified":true},"origin":{"image":"raw/p1_s01.png","transform":"hflip,rotate=7.5"}},)"
    R"({"id":9007199254740993,"file_name":"dir/\u00e9t\u00e9 \"q\".png","width":0,"height":0})"
    R"(],"annotations":[)"
    R"({"id":1,"image_id":1,"category_id":2,"bbox":[10.0,20.5,30.25,40.0],"area":1210.0,"iscrowd":0,"segmentation":[[10,20,40,20,40,60]]},)"
    R"({"id":2,"image_id":9007199254740993,"category_id":1,"bbox":[0.0,0.0,1.0,1.0],"area":1.0,"iscrowd":1,"segmentation":{"counts":[0,1],"size":[1,1]}},)"
    R"({"id":3,"image_id":1,"category_id":1,"bbox":[1.0,2.0,3.0,4.0],"area":12.0,"iscrowd":0})"
    R"(],"categories":[{"id":1,"name":"IPH","supercategory":"hemorrhage"},{"id":2,"name":"SDH","supercategory":""}]})"
    "\n";

TEST(DatasetTest, CocoRoundTripIsByteIdentical) {
  // rapidjson writes non-ASCII as raw UTF-8, so the expected text is the
  // input with its \u escapes decoded.
  std::string expected = kCanonicalCoco;
  const std::string escaped = R"(dir/\u00e9t\u00e9 \"q\".png)";
  expected.replace(expected.find(escaped), escaped.size(), "dir/\xC3\xA9t\xC3\xA9 \\\"q\\\".png");

  Result<Dataset> ds = ParseCoco(kCanonicalCoco, "canon.json");
  ASSERT_TRUE(ds.ok()) << ds.status().message();
  EXPECT_EQ(SerializeCoco(*ds), expected);
  // And the decoded form is a fixed point.
  Result<Dataset> again = ParseCoco(expected, "canon2.json");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(SerializeCoco(*again), expected);
}

TEST(DatasetTest, CocoExtraFieldsParsed) {
  Result<Dataset> r = ParseCoco(kCanonicalCoco, "canon.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Dataset& ds = *r;
  ASSERT_EQ(ds.images.size(), 2u);
  ASSERT_EQ(ds.annotations.size(), 3u);
  ASSERT_EQ(ds.categories.size(), 2u);
  const Image& img = ds.images[0];
  EXPECT_EQ(img.id, 1);
  EXPECT_EQ(img.file_name, "train/p1_s01.png");
  EXPECT_EQ(img.width, 512);
  EXPECT_EQ(img.height, 256);
  EXPECT_EQ(img.patient_id, "P001");
  EXPECT_EQ(img.source, "rsna");
  EXPECT_EQ(img.split, "train");
  EXPECT_EQ(img.labels, (std::vector<std::string>{"IPH", "SDH"}));
  ASSERT_EQ(img.attributes.size(), 6u);
  EXPECT_EQ(std::get<std::string>(img.attributes.at("feedback")), "false_positive");
  EXPECT_EQ(std::get<std::string>(img.attributes.at("machine")), "GE \"Revolution\"");
  EXPECT_DOUBLE_EQ(std::get<double>(img.attributes.at("score")), 0.875);
  EXPECT_DOUBLE_EQ(std::get<double>(img.attributes.at("slice_thickness")), 5.5);
  EXPECT_EQ(std::get<int64_t>(img.attributes.at("slices")), 40);
  EXPECT_EQ(std::get<bool>(img.attributes.at("verified")), true);
  EXPECT_EQ(AttrToString(img.attributes.at("slice_thickness")), "5.5");
  EXPECT_EQ(AttrToString(img.attributes.at("verified")), "true");
  EXPECT_EQ(img.origin.image, "raw/p1_s01.png");
  EXPECT_EQ(img.origin.transform, "hflip,rotate=7.5");
  EXPECT_TRUE(ds.images[1].origin.empty());
  EXPECT_EQ(ds.images[1].id, 9007199254740993);
  EXPECT_EQ(ds.images[1].file_name, "dir/\xC3\xA9t\xC3\xA9 \"q\".png");

  const Annotation& a = ds.annotations[0];
  EXPECT_EQ(a.image_id, 1);
  EXPECT_EQ(a.category_id, 2);
  EXPECT_DOUBLE_EQ(a.bbox[1], 20.5);
  EXPECT_DOUBLE_EQ(a.bbox[2], 30.25);
  EXPECT_DOUBLE_EQ(a.area, 1210.0);
  EXPECT_EQ(a.segmentation, "[[10,20,40,20,40,60]]");
  EXPECT_EQ(ds.annotations[1].segmentation, R"({"counts":[0,1],"size":[1,1]})");
  EXPECT_EQ(ds.annotations[1].iscrowd, 1);
  EXPECT_EQ(ds.annotations[1].image_id, 9007199254740993);
  EXPECT_TRUE(ds.annotations[2].segmentation.empty());

  EXPECT_EQ(ds.FindCategory("SDH"), &ds.categories[1]);
  EXPECT_EQ(ds.FindCategory("EDH"), nullptr);
  auto by_image = ds.AnnotationsByImage();
  EXPECT_EQ(by_image[1], (std::vector<size_t>{0, 2}));
  EXPECT_EQ(by_image[9007199254740993], (std::vector<size_t>{1}));
}

TEST(DatasetTest, CocoPrettyInputReachesAFixedPoint) {
  // Typical third-party COCO: pretty-printed, keys in another order, fields
  // medpipe does not model (info, licenses, date_captured), integer boxes
  // and a numeric patient id. One parse/serialise cycle normalises it; a
  // second changes nothing.
  const std::string pretty = R"({
  "info": {"year": "2021"},
  "licenses": [{"id": 1, "name": "Unknown"}],
  "categories": [{"supercategory": "none", "name": "fracture", "id": 0}],
  "images": [
    {"height": 416, "width": 416, "id": 0, "file_name": "a.jpg", "license": 1, "date_captured": "2021-03-16",
     "patient_id": 12345, "attributes": {"b": 2, "a": "x", "list": [1, 2]}}
  ],
  "annotations": [
    {"segmentation": [], "area": 8190, "bbox": [189, 228, 105, 78], "category_id": 0, "image_id": 0, "id": 0,
     "iscrowd": 0}
  ]
}
)";
  Result<Dataset> first = ParseCoco(pretty, "pretty.json");
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->images[0].patient_id, "12345");
  std::string once = SerializeCoco(*first);
  EXPECT_EQ(once,
            R"({"images":[{"id":0,"file_name":"a.jpg","width":416,"height":416,"patient_id":"12345",)"
            R"("attributes":{"a":"x","b":2,"list":[1,2]}}],"annotations":[{"id":0,"image_id":0,"category_id":0,)"
            R"("bbox":[189.0,228.0,105.0,78.0],"area":8190.0,"iscrowd":0,"segmentation":[]}],)"
            R"("categories":[{"id":0,"name":"fracture","supercategory":"none"}]})"
            "\n");
  Result<Dataset> second = ParseCoco(once, "once.json");
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(SerializeCoco(*second), once);
}

// Attributes holding arrays, objects or null are kept through a read and a
// write, nested strings escaped as JSON wants.
TEST(DatasetTest, ArrayAndObjectAttributesAreKept) {
  const std::string text =
      R"({"images":[{"id":1,"file_name":"a.png","attributes":{"boxes_by_reader":{"r1":[1,2.5],"r2":{"ok":true,)"
      R"("note":"say \"hi\"\n"}},"empty":[],"none":null,"tags":["a","b"]}}]})";
  Result<Dataset> ds = ParseCoco(text, "attrs.json");
  ASSERT_TRUE(ds.ok()) << ds.status().message();
  const auto& attrs = ds->images[0].attributes;
  ASSERT_EQ(attrs.size(), 4u);
  ASSERT_TRUE(std::holds_alternative<JsonText>(attrs.at("tags")));
  EXPECT_EQ(AttrToString(attrs.at("tags")), R"(["a","b"])");
  EXPECT_EQ(AttrToString(attrs.at("none")), "null");
  std::string once = SerializeCoco(*ds);
  EXPECT_NE(once.find(R"("attributes":{"boxes_by_reader":{"r1":[1,2.5],"r2":{"ok":true,"note":"say \"hi\"\n"}},)"
                      R"("empty":[],"none":null,"tags":["a","b"]})"),
            std::string::npos)
      << once;
  Result<Dataset> again = ParseCoco(once, "once.json");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->images[0].attributes, attrs);
  EXPECT_EQ(SerializeCoco(*again), once);
}

TEST(BoxCheckTest, VerdictsPerPolicy) {
  auto check = [](std::vector<double> b, BadBoxPolicy policy, int w = 100, int h = 50) {
    Annotation a;
    for (int j = 0; j < 4; ++j) a.bbox[j] = b[j];
    a.area = b[2] * b[3];
    BoxVerdict v = CheckBox(&a, w, h, policy);
    return std::make_pair(v, a);
  };
  EXPECT_EQ(check({0, 0, 100, 50}, BadBoxPolicy::kClip).first.kind, BoxVerdict::kOk);
  EXPECT_EQ(check({1, 1, NAN, 4}, BadBoxPolicy::kClip).first.kind, BoxVerdict::kDropped);
  EXPECT_EQ(check({INFINITY, 1, 3, 4}, BadBoxPolicy::kClip).first.reason, "box [inf, 1, 3, 4] is not finite");
  EXPECT_EQ(check({10, 10, -5, 4}, BadBoxPolicy::kClip).first.kind, BoxVerdict::kDropped);
  EXPECT_EQ(check({10, 10, 5, 0}, BadBoxPolicy::kClip).first.kind, BoxVerdict::kDropped);
  EXPECT_EQ(check({100, 0, 5, 5}, BadBoxPolicy::kClip).first.kind, BoxVerdict::kDropped) << "touches the edge only";
  EXPECT_EQ(check({-6, -6, 5, 5}, BadBoxPolicy::kClip).first.kind, BoxVerdict::kDropped);
  auto [v, a] = check({-10, 40, 30, 20}, BadBoxPolicy::kClip);
  EXPECT_EQ(v.kind, BoxVerdict::kClipped);
  EXPECT_EQ(v.reason, "box [-10, 40, 30, 20] extends past the 100x50 image; clipped to [0, 40, 20, 10]");
  EXPECT_DOUBLE_EQ(a.area, 200);
  EXPECT_EQ(check({-10, 40, 30, 20}, BadBoxPolicy::kDrop).first.kind, BoxVerdict::kDropped);
  EXPECT_EQ(check({-10, 40, 30, 20}, BadBoxPolicy::kFail).first.kind, BoxVerdict::kDropped);
  // Rounding overshoot within half a pixel is snapped silently.
  auto [snap, snapped] = check({90, 0, 10.3, 50}, BadBoxPolicy::kFail);
  EXPECT_EQ(snap.kind, BoxVerdict::kOk);
  EXPECT_DOUBLE_EQ(snapped.bbox[2], 10);
  // Unknown image size: only the box itself is checked.
  EXPECT_EQ(check({500, 500, 5, 5}, BadBoxPolicy::kClip, 0, 0).first.kind, BoxVerdict::kOk);
}

TEST(DatasetTest, RealRoboflowJsonRoundTrips) {
  // A real export (minified, polygon segmentation): one cycle normalises,
  // the second is byte-identical, and the polygons survive verbatim.
  Result<Dataset> ds = ReadCoco(kBrain / "val" / "_annotations.coco.json");
  ASSERT_TRUE(ds.ok()) << ds.status().message();
  // Counts from: /usr/bin/python3 -c 'import json;
  //   j=json.load(open(".../val/_annotations.coco.json"));
  //   print(len(j["images"]), len(j["annotations"]))'  -> 20 31
  EXPECT_EQ(ds->images.size(), 20u);
  EXPECT_EQ(ds->annotations.size(), 31u);
  // json.dumps(j["annotations"][0]["segmentation"], separators=(",", ":"))
  EXPECT_EQ(ds->annotations[0].segmentation,
            "[[39,146,43,157,50,169,71,174,78,171,90,165,97,156,106,147,102,140,94,133,83,126,79,120,69,120,56,"
            "124,49,128,43,138,39,146]]");
  std::string once = SerializeCoco(*ds);
  Result<Dataset> again = ParseCoco(once, "once.json");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(SerializeCoco(*again), once);
}

// Ultralytics and some Roboflow exports name the validation split `val`:
// every reader sees "valid", so no stage drops those images for the spelling.
TEST(DatasetTest, ValSplitIsReadAsValid) {
  Result<Dataset> ds = ParseCoco(
      R"({"images":[{"id":1,"file_name":"a.png","split":"val"},{"id":2,"file_name":"b.png","split":"validation"},)"
      R"({"id":3,"file_name":"c.png","split":"train"}],"annotations":[],"categories":[]})",
      "val.json");
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ(ds->images[0].split, "valid");
  EXPECT_EQ(ds->images[1].split, "valid");
  EXPECT_EQ(ds->images[2].split, "train");
  EXPECT_EQ(CanonicalSplit("test"), "test");
  EXPECT_TRUE(IsRoboflowSplit(CanonicalSplit("val")));
  EXPECT_FALSE(IsRoboflowSplit("fold1"));
}

TEST(DatasetTest, MalformedJsonNamesFileAndLine) {
  ScratchDir dir;
  const fs::path path = dir.path() / "broken.json";
  // The stray `x` is on line 4.
  WriteBytes(path,
             "{\n"
             "  \"images\": [{\"id\": 1, \"file_name\": \"a.png\"}],\n"
             "  \"annotations\": [\n"
             "    x\n"
             "  ]\n"
             "}\n");
  Result<Dataset> r = ReadCoco(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalid);
  EXPECT_TRUE(StartsWith(r.status().message(), path.string() + ": line 4: ")) << r.status().message();

  // Truncated mid-file: the error is at the last line.
  WriteBytes(path, "{\n  \"images\": [\n    {\"id\": 1,\n");
  r = ReadCoco(path);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(StartsWith(r.status().message(), path.string() + ": line 4: ")) << r.status().message();
}

TEST(DatasetTest, MalformedJsonLineNotShiftedByEscapedNewlines) {
  // In-situ parsing decodes "\n" escapes into real newline bytes before the
  // error offset, and LineOfOffset counts the mutated buffer.
  const std::string text =
      "{\"images\": [{\"id\": 1, \"file_name\": \"a.png\", \"source\": \"l1\\nl2\\nl3\\nl4\"}],\n"
      "  \"annotations\": [\n"
      "    x]}\n";
  Result<Dataset> r = ParseCoco(text, "esc.json");
  ASSERT_FALSE(r.ok());
  const std::string& msg = r.status().message();
  EXPECT_TRUE(StartsWith(msg, "esc.json: line 3: ")) << msg;
}

TEST(DatasetTest, CocoStructuralErrors) {
  struct Case {
    const char* json;
    const char* message;
  };
  const Case cases[] = {
      {R"({"images": [{"id": 1, "file_name": "a.png"}, {"id": 7, "width": 3}]})",
       "c.json: images[1] (id 7) has no file_name"},
      {R"({"images": [{"id": 1, "file_name": ""}]})", "c.json: images[0] (id 1) has no file_name"},
      {R"({"images": [{"file_name": "a.png"}]})", "c.json: images[0] has no numeric id"},
      {R"({"images": [{"id": "1", "file_name": "a.png"}]})", "c.json: images[0] has no numeric id"},
      {R"({"images": [3]})", "c.json: images[0] is not an object"},
      {R"({"annotations": []})", "c.json: no \"images\" array"},
      {R"([1, 2])", "c.json: not a COCO object"},
      {R"({"images": [], "annotations": [{"id": 1, "category_id": 1}]})", "c.json: annotations[0] has no image_id"},
      {R"({"images": [], "annotations": [{"id": 1, "image_id": 1}]})", "c.json: annotations[0] has no category_id"},
      {R"({"images": [], "annotations": [{"image_id": 1, "category_id": 1}]})",
       "c.json: annotations[0] has no numeric id"},
      {R"({"images": [], "annotations": [{"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}]})",
       "c.json: annotations[0] (id 4) has a bbox that is not [x, y, w, h]"},
      {R"({"images": [], "categories": [{"name": "x"}]})", "c.json: a category has no numeric id"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    Result<Dataset> r = ParseCoco(c.json, "c.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Status::Code::kInvalid);
    EXPECT_EQ(r.status().message(), c.message);
  }
}

TEST(DatasetTest, ReadCocoMissingFileIsNotFound) {
  Result<Dataset> r = ReadCoco("/nonexistent/medpipe/none.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/medpipe/none.json"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Roboflow exports. Every count below was computed independently with
//   /usr/bin/python3: for each split folder, j = json.load(open(
//   f"{dir}/{split}/_annotations.coco.json")); len(j["images"]),
//   len(j["annotations"]), j["categories"]; and os.listdir() of the folder
//   for the files the JSON does not list.

std::set<std::string> SplitsOf(const Dataset& ds) {
  std::set<std::string> out;
  for (const auto& img : ds.images) out.insert(img.split);
  return out;
}

size_t CountSplit(const Dataset& ds, const std::string& split) {
  size_t n = 0;
  for (const auto& img : ds.images) n += img.split == split;
  return n;
}

// Ids unique across splits, every annotation pointing at a listed image, and
// every file_name prefixed with its split folder and present on disk.
void ExpectConsistent(const Dataset& ds, const fs::path& root) {
  std::set<int64_t> image_ids, ann_ids;
  std::set<std::string> names;
  for (const auto& img : ds.images) {
    EXPECT_TRUE(image_ids.insert(img.id).second) << "duplicate image id " << img.id;
    EXPECT_TRUE(names.insert(img.file_name).second) << "duplicate file_name " << img.file_name;
    const std::string folder = img.file_name.substr(0, img.file_name.find('/'));
    EXPECT_EQ(folder == "val" ? std::string("valid") : folder, img.split) << img.file_name;
    EXPECT_TRUE(StatPath(root / img.file_name).exists) << img.file_name;
  }
  for (const auto& a : ds.annotations) {
    EXPECT_TRUE(ann_ids.insert(a.id).second) << "duplicate annotation id " << a.id;
    EXPECT_TRUE(image_ids.count(a.image_id)) << "annotation " << a.id << " -> missing image " << a.image_id;
  }
}

TEST(DatasetTest, ReadRoboflowWristXray) {
  Result<Dataset> r = ReadRoboflow(kWrist);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Dataset& ds = *r;
  // images: train 63, valid 18, test 9; annotations 71 + 15 + 7.
  EXPECT_EQ(ds.images.size(), 90u);
  EXPECT_EQ(ds.annotations.size(), 93u);
  EXPECT_EQ(CountSplit(ds, "train"), 63u);
  EXPECT_EQ(CountSplit(ds, "valid"), 18u);
  EXPECT_EQ(CountSplit(ds, "test"), 9u);
  EXPECT_EQ(SplitsOf(ds), (std::set<std::string>{"train", "valid", "test"}));
  // Roboflow's parent category 0 is kept as it is; remapping it is merge's job.
  ASSERT_EQ(ds.categories.size(), 4u);
  EXPECT_EQ(ds.categories[0].id, 0);
  EXPECT_EQ(ds.categories[0].name, "xrayconverttojson_coco");
  EXPECT_EQ(ds.categories[0].supercategory, "none");
  EXPECT_EQ(ds.categories[1].name, "Radius");
  EXPECT_EQ(ds.categories[2].name, "Scaphoid");
  EXPECT_EQ(ds.categories[3].name, "Ulna");
  ExpectConsistent(ds, kWrist);
  // Ids are renumbered 1..n in folder order (train, valid, test).
  EXPECT_EQ(ds.images.front().id, 1);
  EXPECT_EQ(ds.images.back().id, 90);
  EXPECT_EQ(ds.images[0].file_name, "train/139_wrist_png.rf.214966d1bf422f4f706c1ed252428b5e.jpg");
  EXPECT_EQ(ds.images[0].width, 416);
  EXPECT_EQ(ds.images[0].height, 416);
  // The first test annotation refers to test image id 2, the third test
  // image: 63 + 18 + 3 = 84 after renumbering.
  const Annotation& first_test = ds.annotations[71 + 15];
  EXPECT_EQ(first_test.id, 87);
  EXPECT_EQ(first_test.image_id, 84);
  EXPECT_EQ(ds.images[83].file_name, "test/4_png.rf.aee703809f57174f1df8033fb4f9f74b.jpg");
  EXPECT_DOUBLE_EQ(first_test.bbox[2], 110.5);
  EXPECT_DOUBLE_EQ(first_test.bbox[3], 44.5);
  // Empty polygon lists are kept as written.
  EXPECT_EQ(ds.annotations[0].segmentation, "[]");

  // Only listed images are in the dataset: train/ holds 27 .jpg files the
  // JSON does not list, and test/ a stray Thumbs.db.
  size_t train_jpgs = 0;
  for (const auto& e : fs::directory_iterator(kWrist / "train")) train_jpgs += e.path().extension() == ".jpg";
  EXPECT_EQ(train_jpgs, 63u + 27u);
  EXPECT_TRUE(StatPath(kWrist / "test" / "Thumbs.db").exists);
  for (const auto& img : ds.images) {
    EXPECT_EQ(img.file_name.find("Thumbs.db"), std::string::npos);
    EXPECT_NE(img.file_name, "train/0_png.rf.891bfae6037368208e64492fee2ce6e0.jpg");  // one of the 27
  }
}

TEST(DatasetTest, ReadRoboflowBrainTumorValFolder) {
  Result<Dataset> r = ReadRoboflow(kBrain);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Dataset& ds = *r;
  // images: train 154, val 20, test 4; annotations 198 + 31 + 4, each with a
  // polygon.
  EXPECT_EQ(ds.images.size(), 178u);
  EXPECT_EQ(ds.annotations.size(), 233u);
  EXPECT_EQ(CountSplit(ds, "train"), 154u);
  EXPECT_EQ(CountSplit(ds, "valid"), 20u);
  EXPECT_EQ(CountSplit(ds, "test"), 4u);
  // `val` is a synonym: the split is "valid", the file keeps its real folder.
  EXPECT_EQ(SplitsOf(ds), (std::set<std::string>{"train", "valid", "test"}));
  const Image& first_val = ds.images[154];
  EXPECT_EQ(first_val.id, 155);
  EXPECT_EQ(first_val.split, "valid");
  EXPECT_EQ(first_val.file_name, "val/199_jpg.rf.0b2abb6b1e385c4ad58c5a29d2a491fb.jpg");
  ASSERT_EQ(ds.categories.size(), 2u);
  EXPECT_EQ(ds.categories[0].id, 0);
  EXPECT_EQ(ds.categories[0].name, "Brain-Tumor");
  EXPECT_EQ(ds.categories[1].name, "object");
  ExpectConsistent(ds, kBrain);
  for (const auto& a : ds.annotations) {
    EXPECT_TRUE(StartsWith(a.segmentation, "[[")) << a.id;
    EXPECT_EQ(a.category_id, 1);
  }
  EXPECT_EQ(ds.annotations[0].segmentation,
            "[[59,112,61,119,66,121,72,120,76,118,80,114,79,108,74,105,68,105,63,107,59,112]]");
  // The first val annotation is on the first val image.
  EXPECT_EQ(ds.annotations[198].image_id, 155);
  for (const auto& img : ds.images) {
    EXPECT_EQ(img.width, 256);
    EXPECT_EQ(img.height, 256);
  }
}

TEST(DatasetTest, ReadRoboflowErrors) {
  ScratchDir dir;
  Result<Dataset> r = ReadRoboflow(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(StartsWith(r.status().message(), dir.path().string() + ": no train/")) << r.status().message();

  const std::string cats1 = R"("categories": [{"id": 0, "name": "a"}])";
  const std::string cats2 = R"("categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}])";
  WriteBytes(dir.path() / "train" / "_annotations.coco.json",
             "{\"images\": [{\"id\": 5, \"file_name\": \"x.jpg\"}], " + cats1 + "}");
  WriteBytes(dir.path() / "test" / "_annotations.coco.json",
             "{\"images\": [{\"id\": 5, \"file_name\": \"y.jpg\"}], " + cats2 + "}");
  r = ReadRoboflow(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalid);
  EXPECT_EQ(r.status().message(),
            (dir.path() / "test" / "_annotations.coco.json").string() + ": categories differ from the other splits'");

  WriteBytes(dir.path() / "test" / "_annotations.coco.json",
             "{\"images\": [{\"id\": 5, \"file_name\": \"y.jpg\"}], " + cats1 +
                 R"(, "annotations": [{"id": 3, "image_id": 6, "category_id": 0}]})");
  r = ReadRoboflow(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), (dir.path() / "test" / "_annotations.coco.json").string() +
                                      ": annotation 3 refers to image 6, which is not listed");

  // A malformed split file names that file.
  WriteBytes(dir.path() / "test" / "_annotations.coco.json", "{\"images\": [");
  r = ReadRoboflow(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(StartsWith(r.status().message(), (dir.path() / "test" / "_annotations.coco.json").string() + ": line 1"))
      << r.status().message();

  // Only train and test, with the same image id in both: renumbered apart.
  WriteBytes(dir.path() / "test" / "_annotations.coco.json",
             "{\"images\": [{\"id\": 5, \"file_name\": \"y.jpg\"}], " + cats1 + "}");
  r = ReadRoboflow(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->images.size(), 2u);
  EXPECT_EQ(r->images[0].id, 1);
  EXPECT_EQ(r->images[0].file_name, "train/x.jpg");
  EXPECT_EQ(r->images[1].id, 2);
  EXPECT_EQ(r->images[1].file_name, "test/y.jpg");
  EXPECT_EQ(r->images[1].split, "test");
}

// ---------------------------------------------------------------------------
// Image headers.

TEST(DatasetTest, ProbeRealJpegs) {
  Result<ImageHeader> h = ProbeImage(kWrist / "train" / "0_png.rf.891bfae6037368208e64492fee2ce6e0.jpg");
  ASSERT_TRUE(h.ok()) << h.status().message();
  // `file(1)`: JPEG, baseline, precision 8, 416x416, components 3.
  EXPECT_EQ(h->format, "jpeg");
  EXPECT_EQ(h->width, 416);
  EXPECT_EQ(h->height, 416);
  EXPECT_EQ(h->channels, 3);
  EXPECT_EQ(h->bit_depth, 8);

  h = ProbeImage(kBrain / "test" / "217_jpg.rf.3bd02c57a72f11dbb4275ccaad157d65.jpg");
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(h->format, "jpeg");
  EXPECT_EQ(h->width, 256);
  EXPECT_EQ(h->height, 256);

  // Every image a Roboflow JSON lists probes to the size it declares.
  Result<Dataset> ds = ReadRoboflow(kBrain);
  ASSERT_TRUE(ds.ok());
  for (const auto& img : ds->images) {
    Result<ImageHeader> p = ProbeImage(kBrain / img.file_name);
    ASSERT_TRUE(p.ok()) << p.status().message();
    EXPECT_EQ(p->width, img.width) << img.file_name;
    EXPECT_EQ(p->height, img.height) << img.file_name;
  }
}

TEST(DatasetTest, ProbeRejectsNonImages) {
  ScratchDir dir;
  // The real stray Thumbs.db from the wrist export.
  const fs::path thumbs = kWrist / "test" / "Thumbs.db";
  Result<ImageHeader> h = ProbeImage(thumbs);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), Status::Code::kInvalid);
  EXPECT_EQ(h.status().message(), thumbs.string() + ": neither PNG nor JPEG (8 bytes read)");

  const fs::path empty = dir.path() / "empty.png";
  WriteBytes(empty, "");
  h = ProbeImage(empty);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), Status::Code::kInvalid);
  EXPECT_EQ(h.status().message(), empty.string() + ": neither PNG nor JPEG (0 bytes read)");

  const fs::path missing = dir.path() / "missing.png";
  h = ProbeImage(missing);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(StartsWith(h.status().message(), missing.string() + ": cannot open")) << h.status().message();
}

TEST(DatasetTest, ProbeTruncatedAndCorruptFiles) {
  ScratchDir dir;
  const std::string jpeg = ReadBytes(kWrist / "train" / "0_png.rf.891bfae6037368208e64492fee2ce6e0.jpg");
  ASSERT_GT(jpeg.size(), 1000u);
  uint8_t px[16] = {0};
  Result<std::string> png = EncodePng(px, 4, 4, 1, 8, PngOptions{});
  ASSERT_TRUE(png.ok());

  struct Case {
    const char* name;
    std::string bytes;
    const char* reason;  // what follows "<path>: "
  };
  const Case cases[] = {
      // Signature plus half of IHDR.
      {"half_ihdr.png", png->substr(0, 20), "corrupt PNG: "},
      // Signature only.
      {"sig_only.png", png->substr(0, 8), "corrupt PNG: "},
      // A valid signature, then garbage where IHDR should be.
      {"bad_ihdr.png", png->substr(0, 8) + std::string(40, '\x7f'), "corrupt PNG: "},
      // The JFIF header but nothing up to the frame header.
      {"cut.jpg", jpeg.substr(0, 20), "corrupt JPEG: "},
      // SOI marker then zeros.
      {"zeros.jpg", std::string("\xFF\xD8\xFF", 3) + std::string(64, '\0'), "corrupt JPEG: "},
      // Too short for any magic.
      {"two.jpg", jpeg.substr(0, 2), "neither PNG nor JPEG (2 bytes read)"},
      {"text.png", "hello, world\n", "neither PNG nor JPEG (8 bytes read)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path path = dir.path() / c.name;
    WriteBytes(path, c.bytes);
    Result<ImageHeader> h = ProbeImage(path);
    ASSERT_FALSE(h.ok());
    EXPECT_EQ(h.status().code(), Status::Code::kInvalid);
    EXPECT_TRUE(StartsWith(h.status().message(), path.string() + ": " + c.reason)) << h.status().message();
  }
}

TEST(DatasetTest, ProbeTruncatedJpegIsQuiet) {
  // A probe failure is a per-item record; libjpeg's default warning handler
  // would also print "Premature end of JPEG file" to stderr, in the middle
  // of the progress display.
  ScratchDir dir;
  const std::string jpeg = ReadBytes(kWrist / "train" / "0_png.rf.891bfae6037368208e64492fee2ce6e0.jpg");
  const fs::path cut = dir.path() / "cut.jpg";
  WriteBytes(cut, jpeg.substr(0, 20));
  ::testing::internal::CaptureStderr();
  Result<ImageHeader> h = ProbeImage(cut);
  const std::string printed = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), Status::Code::kInvalid);
}

TEST(DatasetTest, ProbeReadsOnlyTheHeader) {
  // Documented contract: a JPEG cut inside its scan data still probes to its
  // size (only decoding finds the damage), so validate must decode.
  ScratchDir dir;
  const std::string jpeg = ReadBytes(kWrist / "train" / "0_png.rf.891bfae6037368208e64492fee2ce6e0.jpg");
  const fs::path half = dir.path() / "half.jpg";
  WriteBytes(half, jpeg.substr(0, jpeg.size() / 2));
  Result<ImageHeader> h = ProbeImage(half);
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(h->width, 416);
  EXPECT_EQ(h->height, 416);
}

// ---------------------------------------------------------------------------
// PNG encoding, checked by decoding with libpng directly.

struct Decoded {
  int width = 0, height = 0, channels = 0, bit_depth = 0, color_type = 0, interlace = 0;
  std::vector<uint8_t> bytes;  // rows as stored: 16-bit samples big-endian
};

struct MemReader {
  const std::string* data;
  size_t pos;
};

void ReadFromMemory(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<MemReader*>(png_get_io_ptr(png));
  if (r->pos + n > r->data->size()) png_error(png, "read past the end");
  std::memcpy(out, r->data->data() + r->pos, n);
  r->pos += n;
}

// Only trivially destructible locals: libpng longjmps out of errors.
bool DecodeRows(png_structp png, png_infop info, Decoded* out) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  out->width = static_cast<int>(png_get_image_width(png, info));
  out->height = static_cast<int>(png_get_image_height(png, info));
  out->channels = png_get_channels(png, info);
  out->bit_depth = png_get_bit_depth(png, info);
  out->color_type = png_get_color_type(png, info);
  out->interlace = png_get_interlace_type(png, info);
  size_t stride = png_get_rowbytes(png, info);
  out->bytes.resize(stride * static_cast<size_t>(out->height));
  for (int y = 0; y < out->height; ++y) png_read_row(png, out->bytes.data() + stride * y, nullptr);
  png_read_end(png, nullptr);
  return true;
}

bool DecodePng(const std::string& data, Decoded* out) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  MemReader reader{&data, 0};
  png_set_read_fn(png, &reader, ReadFromMemory);
  bool ok = DecodeRows(png, info, out);
  png_destroy_read_struct(&png, &info, nullptr);
  return ok;
}

// Native uint16 samples as PNG stores them (big-endian).
std::vector<uint8_t> BigEndian(const std::vector<uint16_t>& v) {
  std::vector<uint8_t> out;
  for (uint16_t s : v) {
    out.push_back(static_cast<uint8_t>(s >> 8));
    out.push_back(static_cast<uint8_t>(s & 0xFF));
  }
  return out;
}

TEST(DatasetTest, EncodePng8BitGrayRoundTrip) {
  const int w = 7, h = 5;  // odd sizes catch stride mistakes
  std::vector<uint8_t> px(w * h);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 37 + 3);
  Result<std::string> png = EncodePng(px.data(), w, h, 1, 8, PngOptions{});
  ASSERT_TRUE(png.ok()) << png.status().message();
  Decoded d;
  ASSERT_TRUE(DecodePng(*png, &d));
  EXPECT_EQ(d.width, w);
  EXPECT_EQ(d.height, h);
  EXPECT_EQ(d.channels, 1);
  EXPECT_EQ(d.bit_depth, 8);
  EXPECT_EQ(d.color_type, PNG_COLOR_TYPE_GRAY);
  EXPECT_EQ(d.interlace, PNG_INTERLACE_NONE);
  EXPECT_EQ(d.bytes, px);
}

TEST(DatasetTest, EncodePng16BitGrayRoundTrip) {
  // CT values after windowing to 16 bits: the byte order must be PNG's
  // big-endian, whatever the host's.
  const int w = 3, h = 2;
  std::vector<uint16_t> px = {0, 1, 256, 4095, 0xABCD, 65535};
  Result<std::string> png = EncodePng(px.data(), w, h, 1, 16, PngOptions{});
  ASSERT_TRUE(png.ok()) << png.status().message();
  Decoded d;
  ASSERT_TRUE(DecodePng(*png, &d));
  EXPECT_EQ(d.width, w);
  EXPECT_EQ(d.height, h);
  EXPECT_EQ(d.channels, 1);
  EXPECT_EQ(d.bit_depth, 16);
  EXPECT_EQ(d.bytes, BigEndian(px));
}

TEST(DatasetTest, EncodePngRgbRoundTrip) {
  const int w = 5, h = 3;
  std::vector<uint8_t> px(w * h * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(255 - i * 11);
  Result<std::string> png = EncodePng(px.data(), w, h, 3, 8, PngOptions{});
  ASSERT_TRUE(png.ok()) << png.status().message();
  Decoded d;
  ASSERT_TRUE(DecodePng(*png, &d));
  EXPECT_EQ(d.channels, 3);
  EXPECT_EQ(d.color_type, PNG_COLOR_TYPE_RGB);
  EXPECT_EQ(d.bytes, px);

  std::vector<uint16_t> px16(w * h * 3);
  for (size_t i = 0; i < px16.size(); ++i) px16[i] = static_cast<uint16_t>(i * 4099 + 1);
  png = EncodePng(px16.data(), w, h, 3, 16, PngOptions{});
  ASSERT_TRUE(png.ok()) << png.status().message();
  ASSERT_TRUE(DecodePng(*png, &d));
  EXPECT_EQ(d.channels, 3);
  EXPECT_EQ(d.bit_depth, 16);
  EXPECT_EQ(d.bytes, BigEndian(px16));
}

TEST(DatasetTest, EncodePngOptionsChangeBytesNotPixels) {
  const int w = 64, h = 64;
  std::vector<uint8_t> px(w * h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) px[y * w + x] = static_cast<uint8_t>((x / 8 + y / 8) % 2 ? 200 : 30);
  }
  const PngOptions store{PngCompressor::kZlib, kPngFilterNone, 0, 0};
  const PngOptions most{PngCompressor::kZlib, kPngAllFilters, 9, 0};
  Result<std::string> stored = EncodePng(px.data(), w, h, 1, 8, store);
  Result<std::string> best = EncodePng(px.data(), w, h, 1, 8, most);
  ASSERT_TRUE(stored.ok() && best.ok());
  // Level 0 stores raw deflate blocks: at least the pixels themselves.
  EXPECT_GE(stored->size(), px.size());
  EXPECT_LT(best->size(), stored->size() / 4);
  for (const std::string* bytes : {&*stored, &*best}) {
    Decoded d;
    ASSERT_TRUE(DecodePng(*bytes, &d));
    EXPECT_EQ(d.bytes, px);
  }
  // Same pixels and options, same bytes: outputs are reproducible.
  Result<std::string> again = EncodePng(px.data(), w, h, 1, 8, most);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *best);
}

TEST(DatasetTest, ProbeEncodedPng) {
  ScratchDir dir;
  struct Case {
    int width, height, channels, bit_depth;
  };
  for (const Case& c : {Case{7, 5, 1, 8}, Case{3, 9, 1, 16}, Case{4, 2, 3, 8}, Case{2, 3, 3, 16}}) {
    SCOPED_TRACE(std::to_string(c.channels) + "ch " + std::to_string(c.bit_depth) + "bit");
    std::vector<uint8_t> px(static_cast<size_t>(c.width) * c.height * c.channels * c.bit_depth / 8, 0x5A);
    Result<std::string> png = EncodePng(px.data(), c.width, c.height, c.channels, c.bit_depth, PngOptions{});
    ASSERT_TRUE(png.ok()) << png.status().message();
    const fs::path path = dir.path() / "img.png";
    WriteBytes(path, *png);
    Result<ImageHeader> h = ProbeImage(path);
    ASSERT_TRUE(h.ok()) << h.status().message();
    EXPECT_EQ(h->format, "png");
    EXPECT_EQ(h->width, c.width);
    EXPECT_EQ(h->height, c.height);
    EXPECT_EQ(h->channels, c.channels);
    EXPECT_EQ(h->bit_depth, c.bit_depth);
  }
}

TEST(DatasetTest, EncodePngRejectsBadArguments) {
  // A zero-sized image is refused with a status, not an abort.
  uint8_t px[1] = {0};
  Result<std::string> png = EncodePng(px, 0, 1, 1, 8, PngOptions{});
  ASSERT_FALSE(png.ok());
  EXPECT_EQ(png.status().code(), Status::Code::kInvalid);
  EXPECT_TRUE(StartsWith(png.status().message(), "PNG encoding failed: ")) << png.status().message();
}

}  // namespace
}  // namespace medpipe
