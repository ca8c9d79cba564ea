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
#include "volume/dicom_write.h"
#include "volume/nifti_io.h"

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

std::string CtPrepYaml(const std::string& params) {
  return "workdir: work\nstages:\n  - id: prep\n    kind: ctprep\n    params:\n      preview_slices: 0\n" + params;
}

std::map<std::string, const Image*> ByVolume(const Dataset& ds) {
  std::map<std::string, const Image*> out;
  for (const Image& img : ds.images) out[AttrToString(img.attributes.at("volume"))] = &img;
  return out;
}

// A .nii.gz cut to 50% or 90% of its length is a per-item problem naming
// the file and what is missing, never a volume with blank slices.
TEST(CtPrepStage, TruncatedNiftiIsAProblemNotABlankVolume) {
  TempDir dir;
  Generate(dir / "data", 4);
  for (auto [name, keep] : {std::pair{"train_1_a_1", 0.5}, {"train_2_a_1", 0.9}}) {
    fs::path f = dir / "data/volumes" / (std::string(name) + ".nii.gz");
    std::string bytes = testing::ReadText(f);
    testing::WriteText(f, bytes.substr(0, static_cast<size_t>(bytes.size() * keep)));
  }
  auto r = RunPipeline(dir.path(), 2, CtPrepYaml("      volumes: data/volumes\n      metadata_csv: data/metadata.csv\n"));
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("prep").reason;
  auto counters = Counters(dir / "work/prep");
  EXPECT_EQ(counters["prepared"], counters["volumes"] - 2);
  EXPECT_EQ(r.Of("prep").items.failed, 2);
  std::string report = testing::ReadText(dir / "work/prep/report.json");
  for (const char* name : {"train_1_a_1.nii.gz: truncated", "train_2_a_1.nii.gz: truncated"}) {
    EXPECT_NE(report.find(name), std::string::npos) << report;
  }
  EXPECT_NE(report.find("slices incomplete"), std::string::npos) << report;
  EXPECT_FALSE(fs::exists(dir / "work/prep/volumes/train_1_a_1.npy"));
  EXPECT_FALSE(fs::exists(dir / "work/prep/volumes/train_2_a_1.npy"));
  EXPECT_TRUE(fs::exists(dir / "work/prep/volumes/train_3_a_1.npy"));
}

// Writes `n` axial 8x8 slices of one series into `dir`, 2 mm apart.
void WriteAxialSeries(const fs::path& dir, const std::string& key, int n, const std::string& number, int16_t value) {
  for (int k = 0; k < n; ++k) {
    DicomSliceSpec s;
    s.patient_id = "P1";
    s.study_uid = UidFromKey("study");
    s.series_uid = UidFromKey(key);
    s.frame_of_reference_uid = UidFromKey("for");
    s.sop_uid = UidFromKey(key + std::to_string(k));
    s.series_number = number;
    s.instance = k + 1;
    s.rows = s.cols = 8;
    s.position = {0, 0, 2.0 * k};
    s.stored.assign(64, value);
    ASSERT_TRUE(WriteDicomSlice(dir / fmt::format("{}_{:03d}.dcm", key, k), s).ok());
  }
}

// 30 slices of one series and 18 of another in one folder: two volumes,
// named by folder and SeriesNumber (by UID when numbers do not tell them
// apart), both labelled by the folder's labels row.
TEST(CtPrepStage, TwoSeriesInOneFolderAreTwoVolumes) {
  TempDir dir;
  WriteAxialSeries(dir / "dicom/scan1", "a", 30, "2", 1000);
  WriteAxialSeries(dir / "dicom/scan1", "b", 18, "3", 1100);
  WriteAxialSeries(dir / "dicom/scan2", "c", 6, "", 1000);
  WriteAxialSeries(dir / "dicom/scan2", "d", 5, "", 1000);
  testing::WriteText(dir / "labels.csv", "VolumeName,Nodule,Effusion\nscan1,1,0\n" + UidFromKey("d") + ",0,1\n");
  auto r = RunPipeline(dir.path(), 2, CtPrepYaml("      dicoms: dicom\n      labels_csv: labels.csv\n"));
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("prep").reason;
  auto counters = Counters(dir / "work/prep");
  EXPECT_EQ(counters["prepared"], 4);
  EXPECT_EQ(counters.count("duplicate_names"), 0u);
  EXPECT_EQ(counters["multi_series_folders"], 2);
  EXPECT_EQ(counters.count("label_rows_without_volume"), 0u);
  EXPECT_EQ(counters["volumes_without_labels"], 1);  // scan2's series c
  Result<Dataset> ds = ReadCoco(dir / "work/prep/dataset.json");
  ASSERT_TRUE(ds.ok());
  auto by = ByVolume(*ds);
  const std::string c = "scan2_" + UidFromKey("c"), d = "scan2_" + UidFromKey("d");
  ASSERT_EQ(by.size(), 4u);
  for (const std::string& name : {std::string("scan1_s2"), std::string("scan1_s3"), c, d}) {
    ASSERT_TRUE(by.count(name)) << name;
  }
  EXPECT_EQ(AttrToString(by["scan1_s2"]->attributes.at("shape")), "1x30x8x8");
  EXPECT_EQ(AttrToString(by["scan1_s3"]->attributes.at("shape")), "1x18x8x8");
  EXPECT_EQ(AttrToString(by["scan1_s3"]->attributes.at("series_uid")), UidFromKey("b"));
  EXPECT_EQ(by["scan1_s2"]->labels, std::vector<std::string>{"Nodule"});
  EXPECT_EQ(by["scan1_s3"]->labels, std::vector<std::string>{"Nodule"});
  EXPECT_EQ(by[d]->labels, std::vector<std::string>{"Effusion"});
  // patient_pattern does not match these names: a folder's series stay one patient.
  EXPECT_EQ(by["scan1_s2"]->patient_id, "scan1");
  EXPECT_EQ(by["scan1_s3"]->patient_id, "scan1");
  EXPECT_EQ(by[c]->patient_id, "scan2");
  EXPECT_TRUE(fs::exists(dir / "work/prep/volumes/scan1_s2.npy"));
}

// The same scan stored as a RAS NIfTI, an LPS NIfTI and a DICOM series gives
// one tensor, in either canonical orientation; the dataset says how each was
// stored.
TEST(CtPrepStage, SameScanAsRasNiftiLpsNiftiAndDicomGivesOneTensor) {
  TempDir dir;
  const int nx = 10, ny = 7, nz = 5;
  Volume ras;
  ras.nx = nx, ras.ny = ny, ras.nz = nz;
  ras.spacing = {0.8, 0.9, 2.0};
  ras.data.resize(ras.size());
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x) ras.at(x, y, z) = static_cast<float>(-1000 + 37 * x + 101 * y + 13 * z);
  Volume lps = ras;
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x) lps.at(x, y, z) = ras.at(nx - 1 - x, ny - 1 - y, z);
  fs::create_directories(dir / "vols");
  testing::WriteText(dir / "vols/as_ras.nii.gz", *NiftiBytes(ras, true, Canonical::kRAS));
  testing::WriteText(dir / "vols/as_lps.nii.gz", *NiftiBytes(lps, true, Canonical::kLPS));
  for (int z = 0; z < nz; ++z) {
    // DICOM's usual axial slice: columns towards L, rows towards P.
    DicomSliceSpec s;
    s.patient_id = "P1";
    s.study_uid = UidFromKey("study");
    s.series_uid = UidFromKey("same");
    s.frame_of_reference_uid = UidFromKey("for");
    s.sop_uid = UidFromKey("same" + std::to_string(z));
    s.rows = ny, s.cols = nx;
    s.spacing_row = 0.9, s.spacing_col = 0.8;
    s.position = {-(nx - 1) * 0.8, -(ny - 1) * 0.9, 2.0 * z};
    s.stored.resize(static_cast<size_t>(nx) * ny);
    for (int r = 0; r < ny; ++r)
      for (int c = 0; c < nx; ++c) s.stored[static_cast<size_t>(r) * nx + c] = static_cast<int16_t>(lps.at(c, r, z) + 1024);
    ASSERT_TRUE(WriteDicomSlice(dir / "dicom/as_dicom" / fmt::format("{}.dcm", z), s).ok());
  }
  std::map<std::string, std::string> npy[2];
  for (int t = 0; t < 2; ++t) {
    const char* target = t == 0 ? "RAS" : "LPS";
    fs::remove_all(dir / "work");
    auto r = RunPipeline(dir.path(), 2, CtPrepYaml(fmt::format("      volumes: vols\n      dicoms: dicom\n"
                                                               "      orientation: {}\n", target)));
    ASSERT_EQ(r.summary.exit_code, 0) << r.Of("prep").reason;
    Result<Dataset> ds = ReadCoco(dir / "work/prep/dataset.json");
    ASSERT_TRUE(ds.ok());
    auto by = ByVolume(*ds);
    ASSERT_EQ(by.size(), 3u);
    EXPECT_EQ(AttrToString(by["as_ras"]->attributes.at("stored_orientation")), "RAS");
    EXPECT_EQ(AttrToString(by["as_lps"]->attributes.at("stored_orientation")), "LPS");
    EXPECT_EQ(AttrToString(by["as_dicom"]->attributes.at("stored_orientation")), "LPS");
    EXPECT_EQ(AttrToString(by["as_dicom"]->attributes.at("series_uid")), UidFromKey("same"));
    for (const auto& [name, img] : by) {
      EXPECT_EQ(AttrToString(img->attributes.at("orientation")), target);
      EXPECT_EQ(AttrToString(img->attributes.at("shape")), fmt::format("1x{}x{}x{}", nz, ny, nx));
      npy[t][name] = testing::ReadText(dir / "work/prep" / img->file_name);
    }
    EXPECT_EQ(npy[t]["as_ras"], npy[t]["as_lps"]) << target;
    EXPECT_EQ(npy[t]["as_ras"], npy[t]["as_dicom"]) << target;
  }
  EXPECT_NE(npy[0]["as_ras"], npy[1]["as_ras"]);
  // The RAS tensor is the stored RAS voxels (D, H, W with W fastest); the
  // LPS one the same flipped in H and W, as numpy reads them.
  testing::WriteText(dir / "check.py", R"(import numpy as np, sys
a = np.load(sys.argv[1]).astype(np.float32); b = np.load(sys.argv[2]).astype(np.float32)
print(a.shape, bool(np.array_equal(a[:, :, ::-1, ::-1], b)), bool(a[0, 0, 0, 1] > a[0, 0, 0, 0]), bool(a[0, 0, 1, 0] > a[0, 0, 0, 0]))
)");
  fs::create_directories(dir / "npy");
  testing::WriteText(dir / "npy/ras.npy", npy[0]["as_dicom"]);
  testing::WriteText(dir / "npy/lps.npy", npy[1]["as_dicom"]);
  auto p = testing::RunProcess({"/usr/bin/python3", (dir / "check.py").string(), (dir / "npy/ras.npy").string(),
                                (dir / "npy/lps.npy").string()});
  EXPECT_EQ(p.out, fmt::format("(1, {}, {}, {}) True True True\n", nz, ny, nx)) << p.err;
}

// The real GE head CT with its LICENSE and README: the two text files are
// counted as not DICOM (no problem), the 18.5 degree tilt is corrected by
// default, and refused on request with a problem saying so.
TEST(CtPrepStage, RealTiltedGeHeadCt) {
  TempDir dir;
  fs::create_directories(dir / "dicom/ge");
  for (const auto& e : fs::directory_iterator(fs::path(MEDPIPE_PUBLIC_DATA) / "ct_head_ge_dcm_qa_ct")) {
    fs::copy_file(e.path(), dir / "dicom/ge" / e.path().filename());
  }
  auto r = RunPipeline(dir.path(), 2, CtPrepYaml("      dicoms: dicom\n"));
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("prep").reason;
  auto counters = Counters(dir / "work/prep");
  EXPECT_EQ(counters["prepared"], 1);
  EXPECT_EQ(counters["not_dicom_files"], 2);
  EXPECT_EQ(counters.count("unreadable_dicom_files"), 0u);
  EXPECT_EQ(r.Of("prep").items.failed, 0);
  Result<Dataset> ds = ReadCoco(dir / "work/prep/dataset.json");
  ASSERT_TRUE(ds.ok());
  ASSERT_EQ(ds->images.size(), 1u);
  const Image& img = ds->images[0];
  EXPECT_EQ(AttrToString(img.attributes.at("volume")), "ge");
  EXPECT_EQ(AttrToString(img.attributes.at("shape")), "1x13x512x512");
  EXPECT_NEAR(std::get<double>(img.attributes.at("gantry_tilt")), 18.5, 0.01);
  EXPECT_TRUE(std::get<bool>(img.attributes.at("tilt_corrected")));
  EXPECT_TRUE(std::get<bool>(img.attributes.at("spacing_equalized")));
  EXPECT_EQ(std::get<int64_t>(img.attributes.at("source_slices")), 8);
  std::string report = testing::ReadText(dir / "work/prep/report.json");
  EXPECT_EQ(report.find("LICENSE"), std::string::npos) << report;

  fs::remove_all(dir / "work");
  r = RunPipeline(dir.path(), 2, CtPrepYaml("      dicoms: dicom\n      gantry_tilt: refuse\n"));
  counters = Counters(dir / "work/prep");
  EXPECT_EQ(counters["prepared"], 0);
  EXPECT_EQ(r.Of("prep").items.failed, 1);
  report = testing::ReadText(dir / "work/prep/report.json");
  EXPECT_NE(report.find("gantry tilt of 18.50 degrees"), std::string::npos) << report;
}

}  // namespace
}  // namespace medpipe
