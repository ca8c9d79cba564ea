// inference_results: both summary.json shapes, the machine-type map (folder,
// then ManufacturerModelName), patients, bad records and files listed while
// the run goes on, and a non-JSON summary failing with its line and column.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "dataset/coco_io.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;

const fs::path kCines = fs::path(MEDPIPE_PUBLIC_DATA) / "us_echo_cine";

class InferenceResultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Six clips, one per machine folder (Affiniti50G_01 ... VIVIDS70_01).
    testing::ProcessResult r = testing::RunProcess(
        {MEDPIPE_ECHOGEN, "--out", (dir_ / "gen").string(), "--patients", "6", "--clips", "1", "--frames", "4",
         "--size", "32"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // The real public cines under a folder no pattern matches: their machine
    // comes from ManufacturerModelName, or is unknown.
    fs::create_directories(dir_ / "gen/raw_data/misc");
    fs::copy_file(kCines / "US-PAL-8-10x-echo.dcm", dir_ / "gen/raw_data/misc/pal.dcm");
  }
  testing::RunResult Run(const std::string& summary, const std::string& extra = "") {
    testing::WriteText(dir_ / "summary.json", summary);
    return testing::RunYaml(BuiltinRegistry(), dir_.path(),
                            "workdir: work\nstages:\n  - id: results\n    kind: inference_results\n"
                            "    params: {summary: summary.json, raw_data: gen/raw_data" + extra + "}\n");
  }
  Dataset Output() {
    Result<Dataset> ds = ReadCoco(dir_ / "work/results/dataset.json");
    EXPECT_TRUE(ds.ok()) << ds.status().ToString();
    return ds.ok() ? *ds : Dataset{};
  }
  std::string Report() { return testing::ReadText(dir_ / "work/results/report.json"); }
  // The clip file of generated clip n (the generator's id scheme).
  static std::string File(int n) { return fmt::format("{:08d}.dcm", 10000000 + n * 7919 % 9000000); }
  TempDir dir_;
};

TEST_F(InferenceResultsTest, ListShapeMachinesPatientsAndProblems) {
  std::string json = "[\n";
  const char* folders[] = {"Affiniti50G_01", "Affiniti70G_01", "EPIQ7_01", "VIVIDE95_01", "VIVIDS60_01", "VIVIDS70_01"};
  for (int n = 0; n < 6; ++n) {
    json += fmt::format(R"({{"file_path": "{}", "folder": "{}", "score": {}, "status": "PASS", "assessment": "ok", "extra": 7}},)",
                        File(n), folders[n], 0.9 + 0.01 * n) + "\n";
  }
  json += R"({"file_path": "pal.dcm", "folder": "misc", "score": "0.5", "status": "FAIL"},
{"file_path": "gone.dcm", "folder": "EPIQ7_01", "score": 0.1, "status": "FAIL"},
{"file_path": "x.dcm", "folder": "EPIQ7_01", "status": "FAIL"},
{"file_path": "../../etc/passwd", "score": 0.1, "status": "FAIL"},
{"file_path": "summary.json", "folder": "..", "score": 0.1, "status": "FAIL"}
])";
  ASSERT_EQ(Run(json).summary.exit_code, 0);
  Dataset out = Output();
  ASSERT_EQ(out.images.size(), 7u);
  const char* machines[] = {"affiniti50g", "affiniti70g", "epiq7", "vivid", "vivid", "vivid"};
  for (int n = 0; n < 6; ++n) {
    const Image& img = out.images[static_cast<size_t>(n)];
    EXPECT_EQ(img.file_name, fmt::format("clips/{}/{}", folders[n], File(n)));
    EXPECT_EQ(AttrToString(img.attributes.at("machine_type")), machines[n]) << folders[n];
    EXPECT_EQ(img.patient_id, fmt::format("ECHO{:03d}", n + 1));
    EXPECT_EQ(AttrToString(img.attributes.at("folder")), folders[n]);
    EXPECT_EQ(AttrToString(img.attributes.at("file_id")), File(n).substr(0, 8));
    EXPECT_EQ(std::get<int64_t>(img.attributes.at("extra")), 7) << "other fields are kept";
    EXPECT_EQ(std::get<int64_t>(img.attributes.at("frames")), 4);
    EXPECT_TRUE(fs::exists(dir_ / "work/results" / img.file_name));
    EXPECT_TRUE(fs::is_symlink(dir_ / "work/results" / img.file_name)) << "a link, not a copy";
  }
  const Image& pal = out.images[6];
  EXPECT_DOUBLE_EQ(std::get<double>(pal.attributes.at("score")), 0.5) << "numeric text is a score";
  EXPECT_EQ(AttrToString(pal.attributes.at("machine_type")), "unknown") << AttrToString(pal.attributes.at("model"));
  const std::string report = Report();
  EXPECT_NE(report.find("gone.dcm does not exist"), std::string::npos) << report;
  EXPECT_NE(report.find("no score"), std::string::npos) << report;
  EXPECT_NE(report.find("leaves the raw_data folder"), std::string::npos) << report;
  EXPECT_NE(report.find("\"missing_files\": 1"), std::string::npos) << report;
  EXPECT_NE(report.find("\"bad_records\": 3"), std::string::npos) << report;
}

TEST_F(InferenceResultsTest, ObjectKeyedByFileAndModelFallbackAndUnreadableClips) {
  testing::WriteText(dir_ / "gen/raw_data/EPIQ7_01/broken.dcm", "DICM? no");
  fs::create_directories(dir_ / "gen/raw_data/scanner7");
  fs::copy_file(dir_ / "gen/raw_data/EPIQ7_01" / File(2), dir_ / "gen/raw_data/scanner7/a.dcm");
  const std::string json = fmt::format(R"({{
  "EPIQ7_01/{}": {{"score": 0.97, "status": "PASS", "assessment": "Excellent quality"}},
  "scanner7/a.dcm": {{"score": 0.01, "status": "FAIL"}},
  "EPIQ7_01/broken.dcm": {{"score": 0.01, "status": "FAIL"}}
}})", File(2));
  ASSERT_EQ(Run(json).summary.exit_code, 0);
  Dataset out = Output();
  ASSERT_EQ(out.images.size(), 2u);
  EXPECT_EQ(AttrToString(out.images[0].attributes.at("folder")), "EPIQ7_01") << "from the key's first folder";
  EXPECT_EQ(AttrToString(out.images[1].attributes.at("machine_type")), "epiq7")
      << "folder 'scanner7' matches nothing; the model 'EPIQ 7G' does";
  EXPECT_NE(Report().find("broken.dcm"), std::string::npos);
  EXPECT_NE(Report().find("\"unreadable_files\": 1"), std::string::npos) << Report();
}

TEST_F(InferenceResultsTest, ModelFirstWhenAsked) {
  fs::create_directories(dir_ / "gen/raw_data/VIVIDE95_x");
  fs::copy_file(dir_ / "gen/raw_data/EPIQ7_01" / File(2), dir_ / "gen/raw_data/VIVIDE95_x/a.dcm");
  ASSERT_EQ(Run(R"([{"file": "VIVIDE95_x/a.dcm", "score": 1, "status": "PASS"}])", ", machine_from: model")
                .summary.exit_code,
            0);
  EXPECT_EQ(AttrToString(Output().images.at(0).attributes.at("machine_type")), "epiq7");
}

TEST_F(InferenceResultsTest, NotJsonFailsWithLineAndColumn) {
  testing::RunResult r = Run("[\n  {\"file\": \"a.dcm\", \"score\": 0.5,\n   \"status\": PASS}\n]\n");
  EXPECT_EQ(r.summary.exit_code, 1);
  const std::string& why = r.Of("results").reason;
  EXPECT_NE(why.find("summary.json:3:14: not valid JSON"), std::string::npos) << why;
}

}  // namespace
}  // namespace medpipe
