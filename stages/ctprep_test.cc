// ctprep and folds end to end on medpipe-ctvolgen's synthetic CT-RATE data
// (NIfTI + metadata + labels + DICOM series), and ctprep on the real CT-RATE
// validation labels (shared/data/public/labels_ct_rate, key AccessionNo).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <rapidjson/document.h>

#include <chrono>
#include <set>
#include <thread>
#include <sstream>

#include "dataset/coco_io.h"
#include "runner/checkpoint.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;

std::map<std::string, int64_t> Counters(const fs::path& stage_dir) {
  rapidjson::Document d;
  d.Parse(testing::ReadText(stage_dir / "report.json").c_str());
  std::map<std::string, int64_t> out;
  if (d.HasParseError() || !d.HasMember("counters")) return out;
  for (const auto& m : d["counters"].GetObject()) out[m.name.GetString()] = m.value.GetInt64();
  return out;
}

void Generate(const fs::path& dir, int patients) {
  testing::ProcessResult g = testing::RunProcess({MEDPIPE_CTVOLGEN, "--out", dir.string(), "--patients",
                                                  std::to_string(patients), "--size", "32", "--slices", "12",
                                                  "--dicom-patients", "2"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
}

const char* kPipeline = R"(workdir: work
seed: 3
stages:
  - id: prep
    kind: ctprep
    params:
      volumes: data/volumes
      dicoms: data/dicom
      metadata_csv: data/metadata.csv
      labels_csv: data/labels.csv
      spacing: [1.0, 1.0, 2.0]
      shape: [24, 24, 10]
      windows: [lung, mediastinum, bone]
      clahe: true
      nifti_output: true
  - id: folds
    kind: folds
    inputs: [prep]
    params: {folds: 3}
)";

testing::RunResult RunPipeline(const fs::path& dir, int threads, const std::string& yaml = kPipeline) {
  RunOptions o;
  o.threads = threads;
  return testing::RunYaml(BuiltinRegistry(), dir, yaml, o);
}

TEST(CtPrepStage, VolumesLabelsFoldsAndWeights) {
  TempDir dir;
  Generate(dir / "data", 9);
  auto r = RunPipeline(dir.path(), 2);
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("prep").reason << r.Of("folds").reason;
  Result<Dataset> ds = ReadCoco(dir / "work/prep/dataset.json");
  ASSERT_TRUE(ds.ok());
  // 9 patients: 3 with two scans, 2 with two reconstructions -> 9 + 3 + (2 + 2) = ... counted from the CSV:
  auto counters = Counters(dir / "work/prep");
  EXPECT_EQ(counters["volumes"], counters["prepared"]);
  EXPECT_EQ(counters.count("volumes_without_labels"), 0u);
  EXPECT_EQ(counters.count("label_rows_without_volume"), 0u);
  EXPECT_EQ(ds->categories.size(), 18u);
  std::set<std::string> inputs;
  for (const Image& img : ds->images) {
    inputs.insert(AttrToString(img.attributes.at("input")));
    EXPECT_EQ(AttrToString(img.attributes.at("shape")), "3x10x24x24");
    // The spacing reached is the target to within one voxel's rounding of
    // the size (the field of view is kept exactly).
    std::vector<double> after;
    std::istringstream sp(AttrToString(img.attributes.at("spacing_after")));
    for (std::string part; std::getline(sp, part, ',');) after.push_back(std::stod(part));
    ASSERT_EQ(after.size(), 3u);
    EXPECT_NEAR(after[0], 1.0, 0.03);
    EXPECT_NEAR(after[2], 2.0, 0.2);
    EXPECT_TRUE(fs::exists(dir / "work/prep" / img.file_name));
    EXPECT_TRUE(fs::exists(dir / "work/prep" / AttrToString(img.attributes.at("nifti"))));
    EXPECT_TRUE(fs::exists(dir / "work/prep" / AttrToString(img.attributes.at("preview"))));
    // The patient: train_<p>_<scan>_<recon> -> train_<p>.
    std::string volume = AttrToString(img.attributes.at("volume"));
    EXPECT_EQ(img.patient_id, volume.substr(0, volume.find('_', 6)));
  }
  EXPECT_EQ(inputs, (std::set<std::string>{"nifti", "dicom"}));
  // The DICOM copy of train_1_a_1 and its NIfTI give the same tensor (same HU,
  // same spacing; the generator wrote both from one phantom).
  EXPECT_EQ(testing::ReadText(dir / "work/prep/volumes/train_1_a_1.npy"),
            testing::ReadText(dir / "work/prep/volumes/train_1_a_3.npy"));

  // The .npy loads in numpy with the right shape and dtype.
  testing::WriteText(dir / "check.py", "import numpy as np, sys\na = np.load(sys.argv[1])\nprint(a.shape, a.dtype, float(a.min()) >= 0, float(a.max()) <= 1)\n");
  auto p = testing::RunProcess({"/usr/bin/python3", (dir / "check.py").string(),
                                (dir / "work/prep/volumes/train_2_a_1.npy").string()});
  EXPECT_EQ(p.out, "(3, 10, 24, 24) float16 True True\n") << p.err;

  // Folds: every volume in exactly one val part, no patient in two.
  std::map<std::string, std::set<int>> patient_folds;
  std::map<std::string, int> val_count;
  for (int k = 0; k < 3; ++k) {
    std::string val = testing::ReadText(dir / fmt::format("work/folds/folds/fold_{}/val.csv", k));
    std::istringstream in(val);
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line.substr(0, 29), "file_name,patient,Medical mat");
    while (std::getline(in, line)) {
      std::string file = line.substr(0, line.find(','));
      std::string rest = line.substr(line.find(',') + 1);
      ++val_count[file];
      patient_folds[rest.substr(0, rest.find(','))].insert(k);
    }
    EXPECT_TRUE(fs::exists(dir / fmt::format("work/folds/folds/fold_{}/class_weights.json", k)));
  }
  EXPECT_EQ(val_count.size(), ds->images.size());
  for (const auto& [file, n] : val_count) EXPECT_EQ(n, 1) << file;
  for (const auto& [patient, folds] : patient_folds) EXPECT_EQ(folds.size(), 1u) << patient;
  std::string all = testing::ReadText(dir / "work/folds/folds.csv");
  EXPECT_EQ(all.substr(0, 23), "file_name,patient,fold,");
  EXPECT_TRUE(fs::exists(dir / "work/folds/balance.json"));
}

TEST(CtPrepStage, SameBytesForOneAndTwoThreads) {
  TempDir a, b;
  Generate(a / "data", 5);
  Generate(b / "data", 5);
  ASSERT_EQ(RunPipeline(a.path(), 1).summary.exit_code, 0);
  ASSERT_EQ(RunPipeline(b.path(), 2).summary.exit_code, 0);
  auto sa = testing::Snapshot(a / "work");
  auto sb = testing::Snapshot(b / "work");
  EXPECT_GT(sa.size(), 20u);
  EXPECT_TRUE(sa == sb);
}

TEST(CtPrepStage, KillNineMidStageResumesByteIdentically) {
  TempDir ref, run;
  Generate(ref / "data", 8);
  Generate(run / "data", 8);
  testing::WriteText(ref / "pipeline.yaml", kPipeline);
  testing::WriteText(run / "pipeline.yaml", kPipeline);
  auto full = testing::RunProcess({testing::MedpipeBinary(), "run", (ref / "pipeline.yaml").string(), "--threads", "2"});
  ASSERT_EQ(full.exit_code, 0) << full.err;
  pid_t pid = testing::SpawnProcess({testing::MedpipeBinary(), "run", (run / "pipeline.yaml").string(), "--threads", "2"},
                                    {"MEDPIPE_DEBUG_ITEM_DELAY_MS=40"});
  bool hit = false;
  for (int i = 0; i < 20000 && !hit; ++i) {
    hit = testing::JournalLines(run / "work/prep") >= 4;
    int status;
    if (!hit && ::waitpid(pid, &status, WNOHANG) == pid) break;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  ::kill(pid, SIGKILL);
  testing::WaitProcess(pid);
  ASSERT_TRUE(hit) << "the run ended before the kill point";
  size_t journaled = testing::JournalLines(run / "work/prep");
  EXPECT_FALSE(ReadCommit(run / "work/prep").ok());
  auto again = testing::RunProcess({testing::MedpipeBinary(), "run", (run / "pipeline.yaml").string(), "--threads", "2"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(testing::Snapshot(ref / "work") == testing::Snapshot(run / "work"));
  Result<CommitRecord> commit = ReadCommit(run / "work/prep");
  ASSERT_TRUE(commit.ok());
  EXPECT_GE(commit->items.resumed, static_cast<int64_t>(journaled));
}

TEST(CtPrepStage, RealCtRateLabelsJoinByAccessionNo) {
  TempDir dir;
  Generate(dir / "gen", 3);
  // Three volumes named as the real validation CSV's AccessionNo values.
  fs::create_directories(dir / "vols");
  fs::copy_file(dir / "gen/volumes/train_1_a_1.nii.gz", dir / "vols/val_1.nii.gz");
  fs::copy_file(dir / "gen/volumes/train_2_a_1.nii.gz", dir / "vols/val_2.nii.gz");
  fs::copy_file(dir / "gen/volumes/train_3_a_1.nii.gz", dir / "vols/extra_9.nii.gz");
  auto r = RunPipeline(dir.path(), 2, fmt::format(R"(workdir: work
stages:
  - id: prep
    kind: ctprep
    params:
      volumes: vols
      labels_csv: {}/labels_ct_rate/ct_clip_text_classifier_val.csv
      label_key: AccessionNo
      preview_slices: 0
)", MEDPIPE_PUBLIC_DATA));
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("prep").reason;
  auto counters = Counters(dir / "work/prep");
  EXPECT_EQ(counters["prepared"], 3);
  EXPECT_EQ(counters["volumes_without_labels"], 1);        // extra_9
  EXPECT_EQ(counters["label_rows_without_volume"], 198);   // 200 rows, 2 matched
  Result<Dataset> ds = ReadCoco(dir / "work/prep/dataset.json");
  ASSERT_TRUE(ds.ok());
  ASSERT_EQ(ds->categories.size(), 18u) << "report_text is not a label column";
  EXPECT_EQ(ds->categories[0].name, "Medical material");
  // val_1: Medical material, Arterial wall calcification, Cardiomegaly, Coronary ..., Emphysema,
  // Atelectasis, Pleural effusion, Mosaic attenuation pattern.
  for (const Image& img : ds->images) {
    if (AttrToString(img.attributes.at("volume")) == "val_1") {
      EXPECT_EQ(img.labels.size(), 8u);
      EXPECT_EQ(img.patient_id, "val_1");
    }
  }
}

TEST(CtPrepStage, SlicesModeAndHoldout) {
  TempDir dir;
  Generate(dir / "data", 6);
  auto r = RunPipeline(dir.path(), 2, R"(workdir: work
seed: 5
stages:
  - id: prep
    kind: ctprep
    params:
      volumes: data/volumes
      labels_csv: data/labels.csv
      windows: [lung, mediastinum, bone]
      mode: slices
      central_slices: 3
  - id: split
    kind: folds
    inputs: [prep]
    params: {mode: holdout, ratios: {train: 0.6, valid: 0.2, test: 0.2}}
)");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("prep").reason << r.Of("split").reason;
  Result<Dataset> ds = ReadCoco(dir / "work/prep/dataset.json");
  ASSERT_TRUE(ds.ok());
  auto counters = Counters(dir / "work/prep");
  EXPECT_EQ(static_cast<int64_t>(ds->images.size()), 3 * counters["prepared"]);
  std::set<int64_t> zs;
  for (const Image& img : ds->images) {
    zs.insert(std::get<int64_t>(img.attributes.at("slice")));
    EXPECT_EQ(img.file_name.substr(0, 7), "slices/");
    EXPECT_EQ(img.width, 32);
  }
  EXPECT_EQ(zs, (std::set<int64_t>{4, 5, 6}));  // the central 3 of 12
  // Holdout: every slice of a patient in one split; weights from train.
  Result<Dataset> split = ReadCoco(dir / "work/split/dataset.json");
  ASSERT_TRUE(split.ok());
  std::map<std::string, std::set<std::string>> where;
  for (const Image& img : split->images) where[img.patient_id].insert(img.split);
  for (const auto& [patient, splits] : where) EXPECT_EQ(splits.size(), 1u) << patient;
  for (const char* f : {"holdout/train.csv", "holdout/valid.csv", "holdout/test.csv", "holdout/class_weights.json"}) {
    EXPECT_TRUE(fs::exists(dir / "work/split" / f)) << f;
  }
}

TEST(CtPrepStage, ConfigErrorsBeforeAnyWork) {
  TempDir dir;
  testing::WriteText(dir / "p.yaml", "workdir: work\nstages:\n  - id: prep\n    kind: ctprep\n    params:\n"
                                     "      volumes: v\n      windows: [lung, 40/0]\n");
  auto p = testing::RunProcess({testing::MedpipeBinary(), "validate", (dir / "p.yaml").string()});
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_NE((p.out + p.err).find("40/0"), std::string::npos) << p.out << p.err;
}

}  // namespace
}  // namespace medpipe
