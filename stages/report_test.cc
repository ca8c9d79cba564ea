#include <fmt/format.h>
#include <rapidjson/document.h>

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include <regex>
#include <set>

#include "dataset/coco_io.h"
#include "report/html.h"
#include "runner/checkpoint.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;

// The cells of the data table `id` in `html`: (row, col) -> value, the
// data-value attribute when there is one, else the text. Values are
// unescaped.
std::map<std::pair<std::string, std::string>, std::string> TableCells(const std::string& html, const std::string& id) {
  std::map<std::pair<std::string, std::string>, std::string> out;
  const size_t start = html.find("<table class=\"data\" id=\"tbl-" + id + "\" data-table=\"" + id + "\">");
  if (start == std::string::npos) return out;
  const std::string table = html.substr(start, html.find("</table>", start) - start);
  auto unescape = [](std::string s) {
    for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&amp;", "&"}}) {
      for (size_t p; (p = s.find(from)) != std::string::npos;) s.replace(p, from.size(), to);
    }
    return s;
  };
  static const std::regex cell(R"re(<td data-row="([^"]*)" data-col="([^"]*)"(?: data-value="([^"]*)")?>([^<]*)</td>)re");
  for (auto it = std::sregex_iterator(table.begin(), table.end(), cell); it != std::sregex_iterator(); ++it) {
    const auto& m = *it;
    out[{unescape(m[1]), unescape(m[2])}] = unescape(m[3].matched ? m[3].str() : m[4].str());
  }
  return out;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

rapidjson::Document ReadJson(const fs::path& path) {
  rapidjson::Document doc;
  doc.Parse(testing::ReadText(path).c_str());
  EXPECT_FALSE(doc.HasParseError()) << path;
  return doc;
}

struct Builder {
  Dataset ds;
  int64_t Image(const std::string& name, const std::string& patient, const std::string& split,
                const std::string& source = "s") {
    medpipe::Image img;
    img.id = static_cast<int64_t>(ds.images.size()) + 1;
    img.file_name = "images/" + name + ".png";
    img.patient_id = patient, img.split = split, img.source = source;
    img.width = img.height = 64;
    ds.images.push_back(img);
    return img.id;
  }
  void Box(int64_t image, int64_t category, double w = 8, double h = 8) {
    Annotation a;
    a.id = static_cast<int64_t>(ds.annotations.size()) + 1;
    a.image_id = image, a.category_id = category;
    a.bbox[0] = a.bbox[1] = 2, a.bbox[2] = w, a.bbox[3] = h;
    ds.annotations.push_back(a);
  }
};

// A dataset like the analyze test's: three splits, an augmented copy, an
// image without a split, one without a patient, three sources.
class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeExampleData(dir_ / "data", 3, 3);
    fs::copy_file(dir_ / "data/images/P0001_001.png", dir_ / "data/images/P0001_001_aug1.png");
    Builder b;
    b.ds.categories = {{1, "EDH", "h"}, {2, "IPH", "h"}, {3, "SDH", "h"}};
    int64_t t1 = b.Image("P0001_001", "P0001", "train", "v3");
    b.Box(t1, 1), b.Box(t1, 1, 20, 30);
    b.Box(b.Image("P0001_002", "P0001", "train", "v3"), 2, 40, 12);
    b.Image("P0001_003", "P0001", "train", "v3");
    int64_t aug = b.Image("P0001_001_aug1", "P0001", "train", "v3");
    b.ds.images.back().origin = Origin{"images/P0001_001.png", "hflip"};
    b.Box(aug, 1);
    b.Box(b.Image("P0002_001", "P0002", "valid", "roboflow"), 2);
    b.Image("P0002_002", "P0002", "valid", "roboflow");
    b.Image("P0002_003", "P0002", "valid", "roboflow");
    b.Image("P0003_001", "P0003", "test", "no_hem");
    b.Image("P0003_002", "P0003", "", "no_hem");
    b.Image("P0003_003", "", "test", "no_hem");
    testing::WriteText(dir_ / "data/ds.json", SerializeCoco(b.ds));
  }
  testing::RunResult Run(const std::string& report_params = "{}", RunOptions o = {}, const std::string& work = "work") {
    return testing::RunYaml(testing::TestKinds(), dir_.path(),
                            "workdir: " + work +
                                "\nstages:\n"
                                "  - id: d\n    kind: emit\n    params: {coco: data/ds.json}\n"
                                "  - id: v\n    kind: validate\n    inputs: d\n"
                                "  - id: a\n    kind: analyze\n    inputs: v\n"
                                "  - id: r\n    kind: report\n    inputs: [v, a]\n    params: " +
                                report_params + "\n",
                            o);
  }
  TempDir dir_;
};

TEST_F(ReportTest, SplitTableEqualsAnalyzeJson) {
  ASSERT_EQ(Run().summary.exit_code, 0);
  const std::string html = testing::ReadText(dir_ / "work/r/report.html");
  auto cells = TableCells(html, "splits");
  ASSERT_FALSE(cells.empty());
  rapidjson::Document doc = ReadJson(dir_ / "work/a/analysis.json");
  size_t compared = 0;
  auto check = [&](const std::string& col, const rapidjson::Value& split) {
    for (const auto& m : split.GetObject()) {
      const std::string key = m.name.GetString();
      if (m.value.IsObject()) {
        for (const auto& sub : m.value.GetObject()) {
          auto it = cells.find({key + "/" + sub.name.GetString(), col});
          ASSERT_NE(it, cells.end()) << key << "/" << sub.name.GetString() << " " << col;
          EXPECT_EQ(it->second, std::to_string(sub.value.GetInt64())) << key << "/" << sub.name.GetString() << " " << col;
          ++compared;
        }
        continue;
      }
      auto it = cells.find({key, col});
      ASSERT_NE(it, cells.end()) << key << " " << col;
      if (m.value.IsDouble()) {
        EXPECT_DOUBLE_EQ(std::stod(it->second), m.value.GetDouble()) << key << " " << col;
      } else {
        EXPECT_EQ(it->second, std::to_string(m.value.GetInt64())) << key << " " << col;
      }
      ++compared;
    }
  };
  for (const auto& split : doc["splits"].GetObject()) check(split.name.GetString(), split.value);
  check("total", doc["total"]);
  EXPECT_GT(compared, 60u);
  EXPECT_NE(html.find("agree with a's analysis.json"), std::string::npos);
  // One bar per split in the classes chart, in analyze's order.
  EXPECT_EQ(Count(html, "<g class=\"bar\" data-bar="), 4u);
  EXPECT_LT(html.find("data-bar=\"train\""), html.find("data-bar=\"unsplit\""));
  // Boxes: EDH has 3 boxes on 2 images.
  auto boxes = TableCells(html, "box_stats");
  EXPECT_EQ((boxes[{"EDH", "boxes"}]), "3");
  EXPECT_EQ((boxes[{"EDH", "images"}]), "2");
  // Patients never cross splits here: the overlap matrix is diagonal.
  auto overlap = TableCells(html, "patient_overlap");
  EXPECT_EQ((overlap[{"train", "train"}]), "1");
  EXPECT_EQ((overlap[{"train", "valid"}]), "0");
  EXPECT_NE(html.find("No patient is in two splits"), std::string::npos);
  // Every validation check has its row.
  auto checks = TableCells(html, "validation_v");
  for (const char* c : {"leakage", "boxes", "files", "duplicates", "categories", "ids"}) {
    EXPECT_EQ((checks[{c, "failures"}]), "0") << c;
  }
}

TEST_F(ReportTest, GalleryThumbnailsAreFilesInsideTheReportAndResume) {
  ASSERT_EQ(Run().summary.exit_code, 0);
  const std::string html = testing::ReadText(dir_ / "work/r/report.html");
  static const std::regex img(R"re(<img src="([^"]*)")re");
  std::set<std::string> srcs;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), img); it != std::sregex_iterator(); ++it) {
    srcs.insert((*it)[1]);
  }
  // train: EDH, IPH, negatives; valid: IPH, negatives; test: negatives;
  // unsplit: negatives; and the augmented copy beside its source: 10 images.
  EXPECT_EQ(srcs.size(), 10u);
  for (const auto& s : srcs) {
    EXPECT_TRUE(std::regex_match(s, std::regex(R"(thumbs/[0-9a-f]{20}\.jpg)"))) << s;
    EXPECT_GT(fs::file_size(dir_ / "work/r" / s), 100u) << s;
  }
  EXPECT_NE(html.find("+1 augmented"), std::string::npos);
  EXPECT_EQ(testing::JournalLines(dir_ / "work/r"), srcs.size());

  // A new title redoes the page, not one thumbnail.
  testing::RunResult again = Run("{title: Second}");
  ASSERT_EQ(again.summary.exit_code, 0);
  EXPECT_EQ(again.Of("r").items.resumed, static_cast<int64_t>(srcs.size()));
  EXPECT_EQ(again.Of("r").items.done, 0);
  EXPECT_NE(testing::ReadText(dir_ / "work/r/report.html").find("<title>Second</title>"), std::string::npos);
}

TEST_F(ReportTest, SameBytesForAnyThreadCount) {
  RunOptions one, four;
  one.threads = 1, four.threads = 4;
  ASSERT_EQ(Run("{run_times: false}", one, "w1").summary.exit_code, 0);
  ASSERT_EQ(Run("{run_times: false}", four, "w4").summary.exit_code, 0);
  auto a = testing::Snapshot(dir_ / "w1/r"), b = testing::Snapshot(dir_ / "w4/r");
  EXPECT_EQ(a.size(), b.size());
  for (const auto& [rel, bytes] : a) {
    if (rel == "report.json") continue;
    EXPECT_TRUE(b.count(rel) && b[rel] == bytes) << rel;
  }
}

TEST_F(ReportTest, InlineThumbnailsAreDataUris) {
  ASSERT_EQ(Run("{inline_thumbs: true, thumb_format: png}").summary.exit_code, 0);
  const std::string html = testing::ReadText(dir_ / "work/r/report.html");
  EXPECT_EQ(Count(html, "<img src=\"thumbs/"), 0u);
  EXPECT_EQ(Count(html, "<img src=\"data:image/png;base64,iVBORw0KGgo"), 10u);
}

// Names from the data are text, never markup, and never paths.
TEST(ReportHostileTest, NamesAreEscapedAndStayInsideTheReport) {
  TempDir dir;
  testing::MakeExampleData(dir / "data", 1, 2);
  const std::string evil_file = "images/<script>alert(1)<\\script>\"q'.png";
  fs::copy_file(dir / "data/images/P0001_001.png", dir / "data" / evil_file);
  Builder b;
  b.ds.categories = {{1, "<script>alert('cat')</script>", ""}, {2, "\" onmouseover=\"alert(2)", ""}};
  b.ds.images.push_back(Image{1, evil_file, 64, 64, "\"><img src=x onerror=alert(3)>", "<b>src</b>", "train", {}, {}, {}});
  b.Box(1, 1), b.Box(1, 2);
  b.ds.images.push_back(Image{2, "../../escape.png", 64, 64, "P2", "s", "train", {}, {}, {}});
  b.Box(2, 1);
  b.ds.images.push_back(Image{3, "images/P0001_002.png", 64, 64, "P3", "s", "../../valid", {}, {}, {}});
  testing::WriteText(dir / "data/ds.json", SerializeCoco(b.ds));
  testing::RunResult r = testing::RunYaml(testing::TestKinds(), dir.path(),
                                          "workdir: work\nstages:\n"
                                          "  - id: d\n    kind: emit\n    params: {coco: data/ds.json}\n"
                                          "  - id: v\n    kind: validate\n    inputs: d\n    params: {fail_on: []}\n"
                                          "  - id: r\n    kind: report\n    inputs: [v, d]\n");
  ASSERT_EQ(r.Of("r").state, StageOutcome::State::kRan) << r.Of("r").reason;
  const std::string html = testing::ReadText(dir / "work/r/report.html");
  // Only the page's own script element; no injected element or attribute.
  EXPECT_EQ(Count(html, "<script"), 1u);
  EXPECT_EQ(Count(html, "<img src=x"), 0u);
  EXPECT_EQ(Count(html, "onmouseover=\""), 0u);
  EXPECT_EQ(Count(html, "<b>src"), 0u);
  EXPECT_NE(html.find("&lt;script&gt;alert(&#39;cat&#39;)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find(report::Escape(evil_file)), std::string::npos);
  // The unsafe file name is reported, and no thumbnail is made for it.
  EXPECT_NE(html.find("file name leaves the dataset folder"), std::string::npos);
  // Everything the report wrote is in its folder, under hashed names.
  for (auto it = fs::recursive_directory_iterator(dir / "work/r"); it != fs::recursive_directory_iterator(); ++it) {
    const std::string rel = it->path().lexically_relative(dir / "work/r").string();
    if (rel.rfind(".medpipe", 0) == 0 || it->is_directory()) continue;
    EXPECT_TRUE(std::regex_match(rel, std::regex(R"(report\.html|report\.json|thumbs/[0-9a-f]{20}\.jpg)"))) << rel;
  }
  EXPECT_FALSE(fs::exists(dir / "escape.png"));
  EXPECT_FALSE(fs::exists(dir / "valid"));
}

// Every failing check is listed with its images: a thumbnail and the reason
// when the image decodes, the reason and why there is no thumbnail when not.
TEST(ReportValidationTest, FailingImagesShownWithReasons) {
  TempDir dir;
  testing::MakeExampleData(dir / "data", 2, 2);
  Builder b;
  b.ds.categories = {{1, "IPH", ""}};
  b.Box(b.Image("P0001_001", "P0001", "train"), 1, 80, 8);  // past the 64-pixel edge
  b.Image("P0001_002", "P0001", "valid");                     // leakage: P0001 in two splits
  b.Image("P9999_001", "P9999", "train");                     // no such file
  testing::WriteText(dir / "data/ds.json", SerializeCoco(b.ds));
  testing::RunResult r = testing::RunYaml(testing::TestKinds(), dir.path(),
                                          "workdir: work\nstages:\n"
                                          "  - id: d\n    kind: emit\n    params: {coco: data/ds.json}\n"
                                          "  - id: v\n    kind: validate\n    inputs: d\n    params: {fail_on: []}\n"
                                          "  - id: r\n    kind: report\n    inputs: [v]\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  const std::string html = testing::ReadText(dir / "work/r/report.html");
  auto checks = TableCells(html, "validation_v");
  EXPECT_EQ((checks[{"boxes", "failures"}]), "1");
  EXPECT_EQ((checks[{"files", "failures"}]), "1");
  EXPECT_EQ((checks[{"leakage", "failures"}]), "1");
  const size_t boxes = html.find("<h3>v / boxes</h3>");
  ASSERT_NE(boxes, std::string::npos);
  const std::string box_part = html.substr(boxes, html.find("</div>", boxes) - boxes);
  EXPECT_NE(box_part.find("<figure><img src=\"thumbs/"), std::string::npos) << box_part;
  EXPECT_NE(box_part.find("extends past the 64x64 image"), std::string::npos);
  const size_t files = html.find("<h3>v / files</h3>");
  ASSERT_NE(files, std::string::npos);
  EXPECT_NE(html.find("<b>images/P9999_001.png</b>", files), std::string::npos);
  EXPECT_NE(html.find("no thumbnail:", files), std::string::npos);
  EXPECT_NE(html.find("1 patient is in more than one split"), std::string::npos);
  EXPECT_NE(html.find("<li>P0001: train, valid</li>"), std::string::npos);
}

// A real Roboflow export (wrist X-rays, 416x416 JPEGs): every thumbnail is
// made, 160 pixels on its longer side, with the class's colour on the box's
// top edge; the counts agree with analyze's.
TEST(ReportRealDataTest, WristXrayThumbnailsShowTheirBoxes) {
  const fs::path wrist = fs::path(MEDPIPE_PUBLIC_DATA) / "coco_roboflow_wrist_xray";
  TempDir dir;
  testing::RunResult r = testing::RunYaml(
      testing::TestKinds(), dir.path(),
      "workdir: work\nstages:\n"
      "  - id: m\n    kind: merge\n    params:\n"
      "      sources: [{path: '" + wrist.string() + "', prefix: wr_, source: wrist}]\n"
      "      categories: [radius, ulna, scaphoid]\n"
      "      category_map: {Radius: radius, Ulna: ulna, Scaphoid: scaphoid}\n"
      "  - id: a\n    kind: analyze\n    inputs: [m]\n"
      "  - id: r\n    kind: report\n    inputs: [m, a]\n    params: {thumb_format: png}\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  EXPECT_EQ(r.Of("r").items.failed, 0);
  const std::string html = testing::ReadText(dir / "work/r/report.html");
  EXPECT_NE(html.find("These counts agree with a's analysis.json."), std::string::npos);
  Result<Dataset> ds = ReadCoco(dir / "work/m/dataset.json");
  ASSERT_TRUE(ds.ok());

  // The first radius image of train.
  const size_t group = html.find("<h4>radius</h4>");
  ASSERT_NE(group, std::string::npos);
  static const std::regex img(R"re(<img src="(thumbs/[0-9a-f]{20}\.png)" alt="([^"]*)")re");
  std::smatch m;
  const std::string rest = html.substr(group);
  ASSERT_TRUE(std::regex_search(rest, m, img));
  cv::Mat thumb = cv::imread((dir / "work/r" / m[1].str()).string(), cv::IMREAD_COLOR);
  ASSERT_FALSE(thumb.empty());
  EXPECT_EQ(std::max(thumb.cols, thumb.rows), 160);
  const Image* image = nullptr;
  for (const auto& i : ds->images) {
    if (i.file_name == m[2].str()) image = &i;
  }
  ASSERT_NE(image, nullptr) << m[2];
  const double scale = 160.0 / std::max(image->width, image->height);
  int checked = 0;
  for (const auto& a : ds->annotations) {
    if (a.image_id != image->id || a.category_id != 1) continue;
    const int x = static_cast<int>(std::lround((a.bbox[0] + a.bbox[2] / 2) * scale));
    const int y = static_cast<int>(std::lround(a.bbox[1] * scale));
    bool found = false;
    for (int dy = -1; dy <= 1 && !found; ++dy) {
      for (int dx = -1; dx <= 1 && !found; ++dx) {
        if (y + dy < 0 || y + dy >= thumb.rows || x + dx < 0 || x + dx >= thumb.cols) continue;
        const cv::Vec3b p = thumb.at<cv::Vec3b>(y + dy, x + dx);  // BGR; radius is ClassColour(0) = (78, 121, 167)
        found = std::abs(p[0] - 167) < 40 && std::abs(p[1] - 121) < 40 && std::abs(p[2] - 78) < 40;
      }
    }
    EXPECT_TRUE(found) << "box " << a.id << " at " << x << "," << y;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(ReportAttributesTest, FoldRiskMachineAndProbabilitySections) {
  TempDir dir;
  testing::MakeExampleData(dir / "data", 2, 2);
  Builder b;
  b.ds.categories = {{1, "IPH", ""}};
  const char* names[] = {"P0001_001", "P0001_002", "P0002_001", "P0002_002"};
  for (int k = 0; k < 4; ++k) {
    int64_t id = b.Image(names[k], names[k], k < 2 ? "train" : "valid");
    Image& img = b.ds.images.back();
    img.attributes["fold"] = int64_t{k % 2};
    img.attributes["risk_level"] = std::string(k == 0 ? "high" : "low");
    img.attributes["machine_type"] = std::string(k < 3 ? "GE" : "Siemens");
    img.attributes["prob_IPH"] = 0.25 * k;
    if (k != 3) b.Box(id, 1);
    if (k == 1) img.labels = {"fracture"};
  }
  testing::WriteText(dir / "data/ds.json", SerializeCoco(b.ds));
  testing::RunResult r = testing::RunYaml(testing::TestKinds(), dir.path(),
                                          "workdir: work\nstages:\n"
                                          "  - id: d\n    kind: emit\n    params: {coco: data/ds.json}\n"
                                          "  - id: r\n    kind: report\n    inputs: [d]\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  const std::string html = testing::ReadText(dir / "work/r/report.html");
  auto folds = TableCells(html, "folds");
  EXPECT_EQ((folds[{"0", "images"}]), "2");
  EXPECT_EQ((folds[{"0", "IPH"}]), "2");   // images 0 and 2
  EXPECT_EQ((folds[{"1", "IPH"}]), "1");   // image 1 (image 3 is negative)
  EXPECT_EQ((folds[{"1", "fracture"}]), "1");
  auto risk = TableCells(html, "risk_level");
  EXPECT_EQ((risk[{"high", "train"}]), "1");
  EXPECT_EQ((risk[{"low", "valid"}]), "2");
  auto machine = TableCells(html, "machine_type");
  EXPECT_EQ((machine[{"GE", "train"}]), "2");
  EXPECT_EQ((machine[{"Siemens", "valid"}]), "1");
  auto probs = TableCells(html, "probabilities");
  EXPECT_EQ((probs[{"IPH", "images"}]), "4");
  EXPECT_NE(html.find("class=\"heat\""), std::string::npos);

  // Without those attributes the section is left out.
  TempDir plain;
  testing::MakeExampleData(plain / "data", 1, 1);
  testing::WriteText(plain / "data/ds.json", testing::ReadText(plain / "data/boxes.coco.json"));
  testing::RunResult p = testing::RunYaml(testing::TestKinds(), plain.path(),
                                          "workdir: work\nstages:\n"
                                          "  - id: d\n    kind: emit\n    params: {coco: data/ds.json}\n"
                                          "  - id: r\n    kind: report\n    inputs: [d]\n");
  ASSERT_EQ(p.summary.exit_code, 0);
  EXPECT_EQ(testing::ReadText(plain / "work/r/report.html").find("id=\"attributes\""), std::string::npos);
}

// A classify pipeline's report (the tiny reference network over a folder of
// images): what the dataset has, labels per split and risk levels, in
// place of box tables and a "negatives 100%" that only say no image has a
// box. The title is the pipeline's name, and the console line names the
// file once ("report: wrote ...", not "report: report: ...").
TEST(ReportImageLevelTest, ClassifyPipelineShowsLabelsAndRiskLevels) {
  TempDir dir;
  testing::MakeExampleData(dir / "data", 3, 2);
  testing::RunResult r = testing::RunYaml(
      testing::TestKinds(), dir.path(),
      "name: chest-triage\nworkdir: work\nstages:\n"
      "  - id: triage\n    kind: classify\n    params: {source: data/images, threshold: 0.5, model: " +
          (fs::path(MEDPIPE_TEST_MODELS) / "tiny_cxr.pt").string() +
          "}\n"
          "  - id: report\n    kind: report\n    inputs: [triage]\n");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("triage").reason << r.Of("report").reason;
  Result<Dataset> ds = ReadCoco(dir / "work/triage/dataset.json");
  ASSERT_TRUE(ds.ok());
  ASSERT_EQ(ds->images.size(), 6u);
  std::map<std::string, int64_t> per_label, per_level;
  int64_t without = 0;
  for (const Image& img : ds->images) {
    for (const auto& l : img.labels) per_label[l]++;
    if (img.labels.empty()) ++without;
    per_level[std::get<std::string>(img.attributes.at("risk_level"))]++;
  }
  ASSERT_FALSE(per_label.empty());

  const std::string html = testing::ReadText(dir / "work/report/report.html");
  EXPECT_NE(html.find("<title>chest-triage</title>"), std::string::npos);
  auto labels = TableCells(html, "labels");
  for (const auto& [label, n] : per_label) {
    EXPECT_EQ((labels[{label, "total"}]), std::to_string(n)) << label;
  }
  EXPECT_EQ((labels[{"no label", "total"}]), std::to_string(without));
  auto risk = TableCells(html, "risk_level");
  for (const auto& [level, n] : per_level) EXPECT_EQ((risk[{level, "unsplit"}]), std::to_string(n)) << level;
  auto splits = TableCells(html, "splits");
  EXPECT_EQ((splits[{"images_with_labels", "total"}]), std::to_string(6 - without));
  EXPECT_EQ(splits.count({"negative_share", "total"}), 0u);
  EXPECT_EQ(splits.count({"boxes", "total"}), 0u);
  EXPECT_EQ(html.find("tbl-box_stats"), std::string::npos);
  EXPECT_EQ(html.find("tbl-boxes_per_image"), std::string::npos);
  EXPECT_EQ(html.find("negative share"), std::string::npos);
  EXPECT_EQ(html.find("<h4>negatives</h4>"), std::string::npos);

  const std::string log = testing::ReadText(dir / "work" / kMetaDir / "run.log");
  EXPECT_EQ(log.find("report: report:"), std::string::npos) << log;
  EXPECT_NE(log.find("report: wrote " + (dir / "work/report/report.html").string()), std::string::npos) << log;
}

// A box dataset keeps its box tables and negative share; without a `name`
// the title is the file's stem, as the pipeline's name is.
TEST(ReportImageLevelTest, BoxDatasetKeepsBoxTablesTitleFromTheFile) {
  TempDir dir;
  testing::MakeExampleData(dir / "data", 1, 2);
  testing::WriteText(dir / "data/ds.json", testing::ReadText(dir / "data/boxes.coco.json"));
  testing::RunResult r = testing::RunYaml(testing::TestKinds(), dir.path(),
                                          "workdir: work\nstages:\n"
                                          "  - id: d\n    kind: emit\n    params: {coco: data/ds.json}\n"
                                          "  - id: r\n    kind: report\n    inputs: [d]\n");
  ASSERT_EQ(r.summary.exit_code, 0);
  const std::string html = testing::ReadText(dir / "work/r/report.html");
  EXPECT_NE(html.find("<title>pipeline</title>"), std::string::npos);  // testing::RunYaml writes pipeline.yaml
  EXPECT_NE(html.find("tbl-box_stats"), std::string::npos);
  EXPECT_EQ(TableCells(html, "splits").count({"negative_share", "total"}), 1u);
  EXPECT_EQ(html.find("tbl-labels"), std::string::npos);
}

// The demo's workflow (configs/hemorrhage_v4.yaml on small synthetic data)
// through the real binary, its report opened in headless Chromium from
// file:// by tests/report_browser.py (Selenium + chromium-driver): the split
// table, every image loaded, one bar per split, no request but file:// and
// data:. The screenshot stays in <build>/artifacts/report_demo.png.
TEST(ReportBrowserTest, DemoRunReportInChromium) {
  if (!fs::exists("/usr/bin/chromium")) GTEST_SKIP() << "chromium is not installed";
  TempDir dir;
  const fs::path d = dir / "data";
  auto run = [](std::vector<std::string> argv) {
    testing::ProcessResult r = testing::RunProcess(argv);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  };
  run({MEDPIPE_EXAMPLEGEN, "--out", (d / "v3").string(), "--classes", "IPH,IVH,SAH,SDH", "--prefix", "V3",
       "--patients", "12", "--slices", "6", "--size", "96", "--seed", "11"});
  run({MEDPIPE_EXAMPLEGEN, "--out", (d / "roboflow").string(), "--roboflow", "--patients", "10", "--slices", "6",
       "--size", "96", "--seed", "12"});
  run({MEDPIPE_CTGEN, "--out", (d / "ct").string(), "--patients", "30", "--slices", "4", "--size", "64", "--seed",
       "13"});
  std::string text = testing::ReadText(fs::path(MEDPIPE_SOURCE_DIR) / "configs/hemorrhage_v4.yaml");
  auto replace = [&](const std::string& from, const std::string& to) {
    for (size_t pos; (pos = text.find(from)) != std::string::npos;) text.replace(pos, from.size(), to);
  };
  replace("../examples/data/v4", d.string());
  replace("workdir: ../examples/work/hemorrhage_v4", "workdir: work");
  testing::WriteText(dir / "v4.yaml", text);
  run({testing::MedpipeBinary(), "run", (dir / "v4.yaml").string(), "--threads", "2"});
  const fs::path html = dir / "work/report/report.html";
  ASSERT_TRUE(fs::exists(html));

  const fs::path shot = fs::path(MEDPIPE_BINARY).parent_path() / "artifacts/report_demo.png";
  fs::remove(shot);
  testing::ProcessResult r = testing::RunProcess(
      {"/usr/bin/python3", std::string(MEDPIPE_SOURCE_DIR) + "/tests/report_browser.py", html.string(), shot.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\"splits\": [\"train\", \"valid\", \"test\"]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"bars\": 3"), std::string::npos) << r.out;
  EXPECT_GT(fs::exists(shot) ? fs::file_size(shot) : 0, 10000u);
}

TEST(ReportEscapeTest, EscapesMarkupAndControlBytes) {
  EXPECT_EQ(report::Escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(report::Escape(std::string("a\x01" "b", 3)), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(report::Escape("tab\tnew\nline"), "tab\tnew\nline");
}

}  // namespace
}  // namespace medpipe
