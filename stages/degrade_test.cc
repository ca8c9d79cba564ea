// degrade, echo_export and the whole configs/echo_quality.yaml on the
// example generator's cines: the seed's layout and CSV, bad inputs listed
// while the run goes on, derived files that reference their sources, the
// same bytes for any thread count; and a property test of the split keeping
// synthetic clips with their sources.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "cine/cine_io.h"
#include "dataset/coco_io.h"
#include "util/csv.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;

const char* const kSeedColumns[] = {"video_path", "quality_score", "filename", "machine_type", "score",    "status",
                                    "assessment", "folder",        "file_id",  "synthetic",    "source_sample"};

// The shipped config, pointed at a generated copy of the example data, with a
// smaller synthetic count.
std::string EchoConfig(const fs::path& data, const std::string& workdir, int count) {
  std::string yaml = testing::ReadText(fs::path(MEDPIPE_SOURCE_DIR) / "configs/echo_quality.yaml");
  auto replace = [&](const std::string& from, const std::string& to) {
    for (size_t at = yaml.find(from); at != std::string::npos; at = yaml.find(from, at + to.size())) {
      yaml.replace(at, from.size(), to);
    }
  };
  replace("../examples/data/echo", data.string());
  replace("workdir: ../examples/work/echo_quality", "workdir: " + workdir);
  replace("count: 300", fmt::format("count: {}", count));
  return yaml;
}

class EchoPipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    testing::ProcessResult r = testing::RunProcess(
        {MEDPIPE_ECHOGEN, "--out", (*dir_ / "data").string(), "--patients", "12", "--clips", "4", "--frames", "6",
         "--size", "48"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    RunOptions two;
    two.threads = 2;
    run_ = new testing::RunResult(
        testing::RunYaml(BuiltinRegistry(), dir_->path(), EchoConfig(*dir_ / "data", "work", 40), two));
  }
  static void TearDownTestSuite() {
    delete run_;
    delete dir_;
  }
  static fs::path Out() { return *dir_ / "work/dataset"; }
  static TempDir* dir_;
  static testing::RunResult* run_;
};
TempDir* EchoPipelineTest::dir_ = nullptr;
testing::RunResult* EchoPipelineTest::run_ = nullptr;

TEST_F(EchoPipelineTest, TheCsvHasTheSeedsColumnsAndOneRowPerExistingFile) {
  ASSERT_EQ(run_->summary.exit_code, 0);
  Result<CsvTable> csv = ReadCsv((Out() / "echo_annotations_enhanced.csv").string());
  ASSERT_TRUE(csv.ok());
  ASSERT_EQ(csv->header.size(), 12u);
  for (size_t c = 0; c < 11; ++c) EXPECT_EQ(csv->header[c], kSeedColumns[c]);
  EXPECT_EQ(csv->header[11], "split");
  EXPECT_TRUE(csv->errors.empty());
  std::set<std::string> paths;
  std::map<std::string, int> per_dir;
  for (const CsvRow& row : csv->rows) {
    const std::string& path = row.fields[0];
    EXPECT_TRUE(paths.insert(path).second) << "one row per file: " << path;
    Result<Cine> cine = ReadCine(Out() / path);  // exists, through the links, and decodes
    EXPECT_TRUE(cine.ok()) << path << ": " << cine.status().ToString();
    EXPECT_EQ(fs::path(path).filename().string(), row.fields[2]);
    const std::string dir = fs::path(path).parent_path().string();
    ++per_dir[dir];
    if (dir == "high_quality") {
      EXPECT_EQ(row.fields[1], "1");
      EXPECT_GE(std::stod(row.fields[4]), 0.95);
      EXPECT_EQ(row.fields[5], "PASS");
      EXPECT_EQ(path.rfind("high_quality/hq_" + row.fields[3] + "_", 0), 0u) << path;
      EXPECT_NE(path.find("_" + row.fields[8] + ".dcm"), std::string::npos) << path;
    } else if (dir == "low_quality/natural_failures") {
      EXPECT_EQ(row.fields[1], "0");
      EXPECT_LE(std::stod(row.fields[4]), 0.1);
      EXPECT_EQ(row.fields[5], "FAIL");
      EXPECT_EQ(path.rfind("low_quality/natural_failures/lq_" + row.fields[3] + "_", 0), 0u) << path;
    } else {
      ASSERT_EQ(dir, "low_quality/synthetic_degraded");
      EXPECT_EQ(row.fields[1], "0");
      EXPECT_EQ(row.fields[9], "True");
      EXPECT_FALSE(row.fields[10].empty());
      EXPECT_NE(row.fields[6].find("Synthetic degradation"), std::string::npos);
    }
    EXPECT_TRUE(row.fields[11] == "train" || row.fields[11] == "valid" || row.fields[11] == "test") << row.fields[11];
  }
  EXPECT_EQ(per_dir["low_quality/synthetic_degraded"], 40);
  EXPECT_GT(per_dir["high_quality"], 5);
  EXPECT_GT(per_dir["low_quality/natural_failures"], 3);
  // Every file of the layout is in the CSV.
  size_t files = 0;
  for (const char* d : {"high_quality", "low_quality/natural_failures", "low_quality/synthetic_degraded"}) {
    for (const auto& e : fs::directory_iterator(Out() / d)) {
      ++files;
      EXPECT_TRUE(paths.count(e.path().lexically_relative(Out()).string())) << e.path();
      EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(e.path()))) << "materialised, not symlinks";
    }
  }
  EXPECT_EQ(files, csv->rows.size());
  // Per-split files: the seed's 11 columns, together every row once.
  size_t split_rows = 0;
  for (const char* s : {"train", "valid", "test"}) {
    Result<CsvTable> part = ReadCsv((Out() / fmt::format("echo_annotations_{}.csv", s)).string());
    ASSERT_TRUE(part.ok()) << s;
    ASSERT_EQ(part->header.size(), 11u);
    for (const CsvRow& row : part->rows) EXPECT_TRUE(paths.count(row.fields[0]));
    split_rows += part->rows.size();
  }
  EXPECT_EQ(split_rows, csv->rows.size());
}

// The layout copied with `cp -r`, with the raw clips and every upstream
// stage folder gone: each clip the CSV names still decodes in the copy.
TEST_F(EchoPipelineTest, CopiedLayoutStandsAloneWhenTheSourcesAreGone) {
  ASSERT_EQ(run_->summary.exit_code, 0);
  TempDir elsewhere;
  const fs::path copy = elsewhere / "delivered";
  auto cp = testing::RunProcess({"/bin/cp", "-r", Out().string(), copy.string()});
  ASSERT_EQ(cp.exit_code, 0) << cp.err;
  // Moved aside, not deleted: the other tests of the suite share them.
  struct MovedAside {
    std::vector<std::pair<fs::path, fs::path>> moves;
    ~MovedAside() {
      for (const auto& [from, to] : moves) fs::rename(to, from);
    }
  } aside;
  for (const char* d : {"data", "work/results", "work/classes", "work/synthetic", "work/split"}) {
    const fs::path from = *dir_ / d, to = elsewhere / ("aside_" + fs::path(d).filename().string());
    fs::rename(from, to);
    aside.moves.emplace_back(from, to);
  }
  Result<CsvTable> csv = ReadCsv((copy / "echo_annotations_enhanced.csv").string());
  ASSERT_TRUE(csv.ok());
  ASSERT_FALSE(csv->rows.empty());
  for (const CsvRow& row : csv->rows) {
    Result<Cine> cine = ReadCine(copy / row.fields[0]);
    EXPECT_TRUE(cine.ok()) << row.fields[0] << ": " << cine.status().ToString();
  }
}

// materialize: symlink keeps the relative links on request.
TEST(EchoExportMaterialize, SymlinkOnRequestCopyAsAsked) {
  for (const char* mode : {"symlink", "copy"}) {
    TempDir dir;
    testing::ProcessResult r = testing::RunProcess({MEDPIPE_ECHOGEN, "--out", (dir / "data").string(), "--patients",
                                                    "12", "--clips", "4", "--frames", "3", "--size", "32"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string yaml = EchoConfig(dir / "data", "work", 4);
    const std::string stage = "kind: echo_export\n    inputs: split\n";
    size_t at = yaml.find(stage);
    ASSERT_NE(at, std::string::npos) << "the shipped config's echo_export entry changed";
    yaml.insert(at + stage.size(), fmt::format("    params: {{materialize: {}}}\n", mode));
    auto run = testing::RunYaml(BuiltinRegistry(), dir.path(), yaml);
    ASSERT_EQ(run.summary.exit_code, 0) << run.Of("dataset").reason;
    size_t files = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir / "work/dataset")) {
      if (e.path().extension() != ".dcm") continue;
      ++files;
      if (std::string(mode) == "symlink") {
        ASSERT_TRUE(fs::is_symlink(e.path())) << e.path();
        EXPECT_TRUE(fs::read_symlink(e.path()).is_relative());
      } else {
        EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(e.path()))) << e.path();
        EXPECT_EQ(fs::hard_link_count(e.path()), 1u) << "a copy, not a hard link";
      }
    }
    EXPECT_GT(files, 0u) << mode;
  }
}

TEST_F(EchoPipelineTest, SplitKeepsPatientsAndSyntheticClipsWithTheirSources) {
  ASSERT_EQ(run_->summary.exit_code, 0);
  Result<Dataset> ds = ReadCoco(Out() / "dataset.json");
  ASSERT_TRUE(ds.ok());
  std::map<std::string, std::set<std::string>> patient_splits;
  std::map<std::string, std::string> split_of_file_id;
  for (const Image& img : ds->images) {
    patient_splits[img.patient_id].insert(img.split);
    if (!img.attributes.count("synthetic")) split_of_file_id[AttrToString(img.attributes.at("file_id"))] = img.split;
  }
  for (const auto& [p, s] : patient_splits) EXPECT_EQ(s.size(), 1u) << "patient " << p;
  std::set<std::string> splits;
  for (const Image& img : ds->images) {
    splits.insert(img.split);
    if (!img.attributes.count("synthetic")) continue;
    const std::string src = AttrToString(img.attributes.at("source_sample"));
    ASSERT_TRUE(split_of_file_id.count(src)) << src;
    EXPECT_EQ(img.split, split_of_file_id[src]) << "a synthetic clip in its source's split";
  }
  EXPECT_EQ(splits.size(), 3u);
}

TEST_F(EchoPipelineTest, BadInputsAreListedAndTheRunGoesOn) {
  ASSERT_EQ(run_->summary.exit_code, 0);
  const std::string report = testing::ReadText(*dir_ / "work/results/report.json");
  for (const char* s : {"missing_0001.dcm does not exist", "missing_0002.dcm does not exist", "not_dicom.dcm",
                        "truncated.dcm", "no score", "\"missing_files\": 2", "\"unreadable_files\": 2"}) {
    EXPECT_NE(report.find(s), std::string::npos) << s << "\n" << report;
  }
}

TEST_F(EchoPipelineTest, DegradedFilesReferenceTheirSourcesAndSpreadOverMachines) {
  ASSERT_EQ(run_->summary.exit_code, 0);
  Result<Dataset> ds = ReadCoco(*dir_ / "work/synthetic/dataset.json");
  ASSERT_TRUE(ds.ok());
  std::map<std::string, int> per_machine;
  std::set<std::string> uids;
  for (const Image& img : ds->images) {
    if (!img.attributes.count("synthetic")) continue;
    ++per_machine[AttrToString(img.attributes.at("machine_type"))];
    Result<Cine> out = ReadCine(*dir_ / "work/synthetic" / img.file_name);
    Result<Cine> src = ReadCine(*dir_ / "work/synthetic" / AttrToString(img.attributes.at("source_file")));
    ASSERT_TRUE(out.ok() && src.ok());
    EXPECT_EQ(out->frames.size(), src->frames.size());
    EXPECT_EQ(out->frames[0].size(), src->frames[0].size());
    EXPECT_EQ(out->photometric, src->photometric) << "RGB stays RGB, grey stays grey";
    EXPECT_EQ(out->patient_id, src->patient_id);
    EXPECT_EQ(out->study_instance_uid, src->study_instance_uid);
    EXPECT_TRUE(uids.insert(out->sop_instance_uid).second);
    EXPECT_TRUE(uids.insert(out->series_instance_uid).second);
    EXPECT_NE(out->sop_instance_uid, src->sop_instance_uid);
  }
  ASSERT_EQ(per_machine.size(), 4u);
  for (const auto& [m, n] : per_machine) EXPECT_EQ(n, 10) << m << ": 40 samples over 4 machines";
}

TEST_F(EchoPipelineTest, SameBytesForOneThreadAsForTwo) {
  ASSERT_EQ(run_->summary.exit_code, 0);
  RunOptions one;
  one.threads = 1;
  testing::RunResult r =
      testing::RunYaml(BuiltinRegistry(), dir_->path(), EchoConfig(*dir_ / "data", "work1", 40), one);
  ASSERT_EQ(r.summary.exit_code, 0);
  for (const char* stage : {"synthetic", "dataset"}) {
    auto a = testing::Snapshot(*dir_ / "work" / stage), b = testing::Snapshot(*dir_ / "work1" / stage);
    EXPECT_EQ(a.size(), b.size()) << stage;
    for (const auto& [name, content] : a) {
      if (name == "report.json") continue;
      EXPECT_TRUE(b.count(name) && b[name] == content) << stage << "/" << name;
    }
  }
}

TEST(DegradeConfig, BadRangesAndKindsAreConfigErrorsAtTheParam) {
  TempDir dir;
  testing::WriteText(dir / "in/dataset.json", SerializeCoco(Dataset{}));
  for (const char* params : {"{noise_sigma: [0.5, 0.2]}", "{blur_kernel: [4, 4]}", "{kinds: [sharpen]}",
                             "{contrast_reduction: [0.3]}", "{sources: ['score >= high']}", "{count: -1}"}) {
    try {
      testing::RunYaml(testing::TestKinds(), dir.path(),
                       std::string("workdir: work\nstages:\n  - id: in\n    kind: emit\n    params: {coco: in/dataset.json}\n"
                                   "  - id: d\n    kind: degrade\n    inputs: [in]\n    params: ") + params + "\n");
      ADD_FAILURE() << params << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("pipeline.yaml:9:"), std::string::npos) << params << ": " << e.what();
    }
  }
}

// Property: over random datasets of patients (some without an id), clips and
// synthetic copies that carry their source's `clip` attribute and patient,
// the split stage never puts a patient in two splits and always puts a copy
// in its source's split.
TEST(EchoSplitProperty, NoPatientInTwoSplitsAndSyntheticWithSource) {
  for (int trial = 0; trial < 12; ++trial) {
    std::mt19937 gen(static_cast<unsigned>(trial));
    Dataset ds;
    int64_t id = 1;
    std::vector<size_t> originals;
    const int patients = 5 + static_cast<int>(gen() % 30);
    for (int p = 0; p < patients; ++p) {
      const int clips = 1 + static_cast<int>(gen() % 5);
      const bool anonymous = gen() % 6 == 0;
      for (int c = 0; c < clips; ++c) {
        Image img;
        img.id = id++;
        img.file_name = fmt::format("clips/p{}_c{}.dcm", p, c);
        img.patient_id = anonymous ? std::string() : fmt::format("P{}", p);
        img.attributes["clip"] = img.file_name;
        originals.push_back(ds.images.size());
        ds.images.push_back(img);
      }
    }
    const int copies = static_cast<int>(gen() % 60);
    for (int k = 0; k < copies; ++k) {
      const Image& src = ds.images[originals[gen() % originals.size()]];
      Image img = src;
      img.id = id++;
      img.file_name = fmt::format("synthetic/s{}.dcm", k);
      img.attributes["synthetic"] = true;
      img.attributes["source_file"] = src.file_name;
      ds.images.push_back(img);
    }
    TempDir dir;
    testing::WriteText(dir / "in/dataset.json", SerializeCoco(ds));
    testing::RunResult r = testing::RunYaml(
        testing::TestKinds(), dir.path(),
        fmt::format("workdir: work\nseed: {}\nstages:\n  - id: in\n    kind: emit\n    params: {{coco: in/dataset.json}}\n"
                    "  - id: split\n    kind: split\n    inputs: [in]\n    params: {{ratios: {{train: 0.7, valid: 0.15, "
                    "test: 0.15}}, missing_patient: own_group, group_attribute: clip}}\n",
                    trial));
    ASSERT_EQ(r.summary.exit_code, 0) << trial;
    Result<Dataset> out = ReadCoco(dir / "work/split/dataset.json");
    ASSERT_TRUE(out.ok());
    ASSERT_EQ(out->images.size(), ds.images.size());
    std::map<std::string, std::set<std::string>> patient_splits;
    std::map<std::string, std::string> split_of;
    for (const Image& img : out->images) {
      if (!img.patient_id.empty()) patient_splits[img.patient_id].insert(img.split);
      if (!img.attributes.count("synthetic")) split_of[img.file_name] = img.split;
    }
    for (const auto& [p, s] : patient_splits) EXPECT_EQ(s.size(), 1u) << "trial " << trial << " patient " << p;
    for (const Image& img : out->images) {
      if (img.attributes.count("synthetic")) {
        EXPECT_EQ(img.split, split_of.at(AttrToString(img.attributes.at("source_file")))) << "trial " << trial;
      }
    }
  }
}

}  // namespace
}  // namespace medpipe
