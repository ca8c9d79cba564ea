#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <map>
#include <random>
#include <set>

#include "dataset/coco_io.h"
#include "stages/link_images.h"
#include "stages/patient_groups.h"
#include "tests/test_util.h"
#include "util/hash.h"

namespace medpipe {

// Helpers shared with balance_test.cc (declared there).
namespace split_testing {


// A random dataset of `patients` patients with 1..max_slices images each.
// Each patient leans to one class (skewed: class k is about twice as common
// as class k+1); a slice is negative with probability `negative_share`.
// Every 10th patient shares a group value with the next one, as Roboflow
// copies would. Uses mt19937_64 with plain modulo arithmetic.
Dataset RandomDataset(uint64_t seed, int patients, int max_slices, int classes, double negative_share,
                      const std::string& prefix = "P") {
  std::mt19937_64 rng(seed);
  auto below = [&](uint64_t n) { return static_cast<int>(rng() % n); };
  Dataset ds;
  for (int c = 0; c < classes; ++c) ds.categories.push_back({c + 1, "C" + std::to_string(c), "x"});
  for (int p = 0; p < patients; ++p) {
    int lean = 0;
    while (lean + 1 < classes && below(2) == 0) ++lean;
    int slices = 1 + below(static_cast<uint64_t>(max_slices));
    for (int s = 0; s < slices; ++s) {
      Image img;
      img.id = static_cast<int64_t>(ds.images.size()) + 1;
      img.patient_id = prefix + std::to_string(p);
      img.file_name = "images/" + img.patient_id + "_" + std::to_string(s) + ".png";
      img.width = img.height = 16;
      if (p % 10 == 9 || (p % 10 == 0 && p > 0)) img.attributes["group"] = "g" + std::to_string((p + 1) / 10);
      ds.images.push_back(img);
      if (below(1000) < negative_share * 1000) continue;
      int n_boxes = 1 + below(2);
      for (int b = 0; b < n_boxes; ++b) {
        Annotation a;
        a.id = static_cast<int64_t>(ds.annotations.size()) + 1;
        a.image_id = img.id;
        a.category_id = 1 + (b == 0 ? lean : below(static_cast<uint64_t>(classes)));
        a.bbox[2] = a.bbox[3] = 4;
        a.area = 16;
        ds.annotations.push_back(a);
      }
    }
  }
  return ds;
}

std::map<std::string, int64_t> Counters(const fs::path& stage_dir) {
  rapidjson::Document d;
  d.Parse(testing::ReadText(stage_dir / "report.json").c_str());
  std::map<std::string, int64_t> out;
  if (d.HasParseError() || !d.HasMember("counters")) return out;
  for (const auto& m : d["counters"].GetObject()) out[m.name.GetString()] = m.value.GetInt64();
  return out;
}

Dataset ReadOutput(const fs::path& path) {
  Result<Dataset> ds = ReadCoco(path);
  EXPECT_TRUE(ds.ok()) << ds.status().ToString();
  return ds.ok() ? *ds : Dataset{};
}

// Independent of FindPatientLeaks: each patient and group value -> bins seen.
std::vector<std::string> Leaks(const Dataset& ds, bool by_fold) {
  std::map<std::string, std::set<std::string>> seen;
  for (const Image& img : ds.images) {
    std::string bin = by_fold ? AttrToString(img.attributes.at("fold")) : img.split;
    if (!img.patient_id.empty()) seen["p:" + img.patient_id].insert(bin);
    if (img.attributes.count("group")) seen["g:" + AttrToString(img.attributes.at("group"))].insert(bin);
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : seen) {
    if (v.size() != 1) out.push_back(k);
  }
  return out;
}

}  // namespace split_testing

namespace {

using namespace split_testing;
using testing::TempDir;

class SplitTest : public ::testing::Test {
 protected:
  testing::RunResult Run(const Dataset& ds, const std::string& params, RunOptions options = {}, uint64_t seed = 7,
                         const fs::path& where = {}) {
    fs::path dir = where.empty() ? dir_.path() : where;
    fs::create_directories(dir / "data");
    testing::WriteText(dir / "data/ds.json", SerializeCoco(ds));
    return testing::RunYaml(testing::TestKinds(), dir,
                            "workdir: work\nseed: " + std::to_string(seed) +
                                "\nstages:\n"
                                "  - {id: given, kind: emit, params: {coco: data/ds.json}}\n"
                                "  - {id: s, kind: split, inputs: [given], params: " + params + "}\n",
                            options);
  }
  Dataset Output() { return ReadOutput(dir_ / "work/s/dataset.json"); }
  TempDir dir_;
};

// Per split: images, patients, and images per class (negatives as "neg").
struct Shares {
  std::map<std::string, double> images, patients;
  std::map<std::string, std::map<std::string, double>> class_share;  // split -> class -> share of its images
};
Shares Measure(const Dataset& ds) {
  Shares out;
  std::map<int64_t, std::set<std::string>> classes;
  for (const Annotation& a : ds.annotations) classes[a.image_id].insert("C" + std::to_string(a.category_id - 1));
  std::map<std::string, std::set<std::string>> patients;
  std::map<std::string, std::map<std::string, double>> n;
  for (const Image& img : ds.images) {
    out.images[img.split] += 1;
    out.images["all"] += 1;
    patients[img.split].insert(img.patient_id);
    patients["all"].insert(img.patient_id);
    auto it = classes.find(img.id);
    std::set<std::string> cs = it == classes.end() ? std::set<std::string>{"neg"} : it->second;
    for (const auto& c : cs) n[img.split][c] += 1, n["all"][c] += 1;
  }
  for (auto& [s, m] : n) {
    for (auto& [c, v] : m) out.class_share[s][c] = v / out.images[s];
  }
  for (auto& [s, p] : patients) out.patients[s] = static_cast<double>(p.size());
  return out;
}

TEST_F(SplitTest, RatiosHoldAtPatientGranularityAndEveryImageIsLinked) {
  Dataset in = RandomDataset(1, 300, 8, 4, 0.3);
  ASSERT_EQ(Run(in, "{}").summary.exit_code, 0);
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), in.images.size());
  EXPECT_EQ(ds.annotations.size(), in.annotations.size());
  Shares s = Measure(ds);
  const double n = s.images["all"];
  // Images per split within one patient's worth (8 slices) of the target.
  EXPECT_NEAR(s.images["train"] / n, 0.80, 8 / n + 1e-9);
  EXPECT_NEAR(s.images["valid"] / n, 0.15, 8 / n + 1e-9);
  EXPECT_NEAR(s.images["test"] / n, 0.05, 8 / n + 1e-9);
  // Patients follow too (their sizes vary, so more loosely).
  EXPECT_NEAR(s.patients["train"] / 300, 0.80, 0.04);
  EXPECT_NEAR(s.patients["test"] / 300, 0.05, 0.03);
  for (const Image& img : ds.images) {
    fs::path link = dir_ / "work/s" / img.file_name;
    ASSERT_TRUE(fs::is_symlink(link)) << img.file_name;
    EXPECT_TRUE(fs::read_symlink(link).is_relative());
    EXPECT_EQ(fs::weakly_canonical(link.parent_path() / fs::read_symlink(link)),
              fs::weakly_canonical(dir_ / "work/given" / img.file_name));
  }
  auto c = Counters(dir_ / "work/s");
  EXPECT_EQ(c["train.images"] + c["valid.images"] + c["test.images"], static_cast<int64_t>(n));
  EXPECT_EQ(c["test.images"], static_cast<int64_t>(s.images["test"]));
  EXPECT_EQ(c["valid.negatives"], static_cast<int64_t>(s.class_share["valid"]["neg"] * s.images["valid"] + 0.5));
  EXPECT_GT(c["train.class.C0"], 0);
  EXPECT_EQ(c["train.patients"] + c["valid.patients"] + c["test.patients"], 300);
}

TEST_F(SplitTest, NoPatientOrGroupInTwoSplits) {
  ASSERT_EQ(Run(RandomDataset(2, 300, 8, 4, 0.3), "{}").summary.exit_code, 0);
  Dataset ds = Output();
  EXPECT_TRUE(Leaks(ds, false).empty());
  // Patients 9 and 10 share group g1: one split.
  std::map<std::string, std::string> split_of;
  for (const Image& img : ds.images) split_of[img.patient_id] = img.split;
  EXPECT_EQ(split_of["P9"], split_of["P10"]);
  EXPECT_EQ(split_of["P19"], split_of["P20"]);
}

TEST_F(SplitTest, EachSplitsClassMixFollowsTheWhole) {
  ASSERT_EQ(Run(RandomDataset(3, 300, 8, 4, 0.3), "{}").summary.exit_code, 0);
  Shares s = Measure(Output());
  for (const auto& [c, whole] : s.class_share["all"]) {
    EXPECT_NEAR(s.class_share["train"][c], whole, 0.02) << c;
    EXPECT_NEAR(s.class_share["valid"][c], whole, 0.04) << c;
    EXPECT_NEAR(s.class_share["test"][c], whole, 0.07) << c;
  }
}

TEST_F(SplitTest, CustomRatiosAndSplitNames) {
  ASSERT_EQ(Run(RandomDataset(4, 200, 4, 3, 0.3), "{ratios: {a: 0.5, b: 0.5}}").summary.exit_code, 0);
  Shares s = Measure(Output());
  EXPECT_EQ(s.images.size(), 3u);  // a, b, all
  EXPECT_NEAR(s.images["a"] / s.images["all"], 0.5, 4 / s.images["all"]);
}

TEST_F(SplitTest, SameBytesForAnyThreadCountAndSeedDependent) {
  Dataset in = RandomDataset(5, 300, 8, 4, 0.3);
  TempDir a, b, c;
  RunOptions one, two;
  one.threads = 1, two.threads = 2;
  ASSERT_EQ(Run(in, "{}", one, 7, a.path()).summary.exit_code, 0);
  ASSERT_EQ(Run(in, "{}", two, 7, b.path()).summary.exit_code, 0);
  ASSERT_EQ(Run(in, "{}", two, 8, c.path()).summary.exit_code, 0);
  auto sa = testing::Snapshot(a / "work/s"), sb = testing::Snapshot(b / "work/s");
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa["dataset.json"], testing::Snapshot(c / "work/s")["dataset.json"]) << "another seed, another split";
}

TEST_F(SplitTest, KFoldPutsEveryGroupInExactlyOneBalancedFold) {
  Dataset in = RandomDataset(6, 300, 8, 4, 0.3);
  ASSERT_EQ(Run(in, "{mode: kfold, folds: 5}").summary.exit_code, 0);
  Dataset ds = Output();
  ASSERT_EQ(ds.images.size(), in.images.size());
  std::map<int64_t, double> per_fold;
  std::map<std::string, std::set<int64_t>> folds_of_patient;
  for (const Image& img : ds.images) {
    EXPECT_EQ(img.split, "train");
    ASSERT_TRUE(img.attributes.count("fold"));
    int64_t f = std::get<int64_t>(img.attributes.at("fold"));
    ASSERT_GE(f, 0);
    ASSERT_LT(f, 5);
    per_fold[f] += 1;
    folds_of_patient[img.patient_id].insert(f);
  }
  EXPECT_EQ(folds_of_patient.size(), 300u);
  for (const auto& [p, f] : folds_of_patient) EXPECT_EQ(f.size(), 1u) << p;
  EXPECT_TRUE(Leaks(ds, true).empty());
  ASSERT_EQ(per_fold.size(), 5u);
  for (const auto& [f, n] : per_fold) EXPECT_NEAR(n / ds.images.size(), 0.2, 8.0 / ds.images.size()) << f;
  auto c = Counters(dir_ / "work/s");
  EXPECT_EQ(c["fold0.images"], static_cast<int64_t>(per_fold[0]));
}

TEST_F(SplitTest, MissingPatientIdFailsNamingTheImage) {
  Dataset in = RandomDataset(7, 20, 3, 2, 0.3);
  in.images[4].patient_id.clear();
  std::string name = in.images[4].file_name;
  auto r = Run(in, "{}");
  EXPECT_EQ(r.summary.exit_code, 1);
  EXPECT_NE(r.Of("s").reason.find(name), std::string::npos) << r.Of("s").reason;
  EXPECT_NE(r.Of("s").reason.find("no patient id"), std::string::npos) << r.Of("s").reason;
}

TEST_F(SplitTest, MissingPatientFallbacks) {
  Dataset in = RandomDataset(8, 20, 3, 2, 0.3);
  in.images[4].patient_id.clear();
  std::string name = in.images[4].file_name;  // images/P<k>_<s>.png
  ASSERT_EQ(Run(in, "{missing_patient: own_group}").summary.exit_code, 0);
  EXPECT_EQ(Output().images[4].patient_id, "");
  ASSERT_EQ(Run(in, "{missing_patient: filename_regex, patient_pattern: '^images/(P\\d+)_'}").summary.exit_code, 0);
  Dataset ds = Output();
  EXPECT_EQ(ds.images[4].patient_id, name.substr(7, name.find('_') - 7)) << "taken from the file name";
  EXPECT_TRUE(Leaks(ds, false).empty());
  in.images[4].file_name = "images/nomatch.png";
  auto r = Run(in, "{missing_patient: filename_regex, patient_pattern: '^images/(P\\d+)_'}");
  EXPECT_EQ(r.summary.exit_code, 1);
  EXPECT_NE(r.Of("s").reason.find("images/nomatch.png"), std::string::npos) << r.Of("s").reason;
}

// Images grouped by their Roboflow source name (or alone) are said so in the
// run log and the report with their count, never silently.
TEST_F(SplitTest, PatientFallbackIsLoggedAndCounted) {
  Dataset in = RandomDataset(21, 30, 3, 2, 0.3);
  const size_t n = in.images.size();
  for (size_t i = 0; i < n; ++i) {
    in.images[i].patient_id.clear();
    if (i % 3 == 0) in.images[i].attributes.erase("group");
    else in.images[i].attributes["group"] = "rf" + std::to_string(i / 3);
  }
  const int64_t alone = static_cast<int64_t>((n + 2) / 3), grouped = static_cast<int64_t>(n) - alone;
  ASSERT_EQ(Run(in, "{missing_patient: own_group}").summary.exit_code, 0);
  auto c = Counters(dir_ / "work/s");
  EXPECT_EQ(c["patient_fallback.group"], grouped);
  EXPECT_EQ(c["patient_fallback.alone"], alone);
  const std::string said = fmt::format(
      "{} of {} images have no patient_id: grouped by Roboflow source name; patient leakage cannot be ruled out",
      grouped, n);
  EXPECT_NE(testing::ReadText(dir_ / "work/s/report.json").find(said), std::string::npos);
  EXPECT_NE(testing::ReadText(dir_ / "work/.medpipe/run.log").find(said), std::string::npos);

  // Patient ids that are only the Roboflow group (merge's patient_from_group)
  // are reported too.
  for (Image& img : in.images) {
    if (img.attributes.count("group")) img.patient_id = AttrToString(img.attributes["group"]);
    else img.patient_id = "P" + std::to_string(img.id);
  }
  TempDir other;
  ASSERT_EQ(Run(in, "{}", {}, 7, other.path()).summary.exit_code, 0);
  EXPECT_EQ(Counters(other / "work/s")["patient_fallback.id_is_group"], grouped);
  EXPECT_NE(testing::ReadText(other / "work/s/report.json").find("is their Roboflow source name"), std::string::npos);
}

// The pattern is tried on the base name, so a pattern anchored at the name a
// user sees matches; a failure names the strings tried and does not suggest
// the missing_patient value that is already set.
TEST_F(SplitTest, PatientPatternMatchesTheBaseNameAndSaysWhatItTried) {
  Dataset in = RandomDataset(22, 12, 3, 2, 0.3);
  for (Image& img : in.images) {
    img.file_name = "images/rf_" + img.patient_id + "_" + std::to_string(img.id) + ".png";
    img.patient_id.clear();
  }
  ASSERT_EQ(Run(in, "{missing_patient: filename_regex, patient_pattern: '^rf_(P\\d+)_'}").summary.exit_code, 0);
  Dataset ds = Output();
  for (const Image& img : ds.images) EXPECT_EQ(img.patient_id, img.file_name.substr(10, img.file_name.find('_', 10) - 10));
  EXPECT_EQ(Counters(dir_ / "work/s")["patient_from_pattern"], static_cast<int64_t>(in.images.size()));

  auto r = Run(in, "{missing_patient: filename_regex, patient_pattern: '^(Q\\d+)_'}");
  ASSERT_EQ(r.summary.exit_code, 1);
  const std::string& why = r.Of("s").reason;
  EXPECT_NE(why.find("tried on '" + fs::path(in.images[0].file_name).filename().string() + "'"), std::string::npos)
      << why;
  EXPECT_NE(why.find(in.images[0].file_name), std::string::npos) << why;
  EXPECT_EQ(why.find("set missing_patient to own_group or filename_regex"), std::string::npos) << why;
}

// With a group and a pattern, the pattern decides the patient: Roboflow
// copies named after their patient (rf_p001_...) whose patient id merge set
// to the source name must not split one patient across splits.
TEST_F(SplitTest, PatternPatientWinsOverRoboflowGroup) {
  Dataset in;
  in.categories.push_back({1, "C0", "x"});
  for (int p = 0; p < 30; ++p) {
    for (int s = 0; s < 4; ++s) {  // 4 source images per patient, 2 copies each
      for (int copy = 0; copy < 2; ++copy) {
        Image img;
        img.id = static_cast<int64_t>(in.images.size()) + 1;
        std::string stem = fmt::format("rf_p{:03}_{}", p, s);
        img.file_name = fmt::format("images/{}_jpg.rf.{}.jpg", stem, copy);
        img.attributes["group"] = stem;
        img.patient_id = stem;  // as merge's patient_from_group: true wrote it
        in.images.push_back(img);
      }
    }
  }
  ASSERT_EQ(Run(in, "{missing_patient: filename_regex, patient_pattern: '^rf_(p\\d{3})_'}").summary.exit_code, 0);
  std::map<std::string, std::set<std::string>> splits;
  for (const Image& img : Output().images) splits[img.patient_id].insert(img.split);
  EXPECT_EQ(splits.size(), 30u);
  for (const auto& [p, s] : splits) EXPECT_EQ(s.size(), 1u) << p;
}

TEST(SplitLeakCheck, FindsPatientsAndGroupsInTwoBins) {
  Dataset ds;
  for (int i = 0; i < 4; ++i) {
    Image img;
    img.id = i + 1;
    img.patient_id = i < 2 ? "A" : "B" + std::to_string(i);
    if (i >= 2) img.attributes["group"] = std::string("g");
    ds.images.push_back(img);
  }
  EXPECT_TRUE(FindPatientLeaks(ds, {"train", "train", "valid", "valid"}, "group").empty());
  EXPECT_EQ(FindPatientLeaks(ds, {"train", "test", "valid", "train"}, "group"),
            (std::vector<std::string>{"group g in train, valid", "patient A in test, train"}));
  EXPECT_EQ(FindPatientLeaks(ds, {"train", "train", "valid", "train"}, "").size(), 0u) << "groups not checked";
}

TEST_F(SplitTest, ParamErrorsAreConfigErrors) {
  Dataset in = RandomDataset(9, 5, 2, 2, 0.3);
  EXPECT_THROW(Run(in, "{ratios: {train: 0.8, valid: 0.1}}"), std::runtime_error);
  EXPECT_THROW(Run(in, "{ratios: {train: 0.8, valid: x}}"), std::runtime_error);
  EXPECT_THROW(Run(in, "{ratios: {train: 1.5, valid: -0.5}}"), std::runtime_error);
  EXPECT_THROW(Run(in, "{mode: kfold, folds: 1}"), std::runtime_error);
  EXPECT_THROW(Run(in, "{missing_patient: filename_regex}"), std::runtime_error);
  EXPECT_THROW(Run(in, "{missing_patient: filename_regex, patient_pattern: 'P\\d+'}"), std::runtime_error);
  EXPECT_THROW(Run(in, "{patient_pattern: '(P\\d+)'}"), std::runtime_error);
}

// Property: over 50 random datasets and params, no split or fold ever puts a
// patient or group in two bins, and every image is kept.
TEST_F(SplitTest, PropertyNoPatientInTwoSplitsOverRandomDatasets) {
  std::mt19937_64 rng(2024);
  for (int t = 0; t < 50; ++t) {
    TempDir dir;
    Dataset in = RandomDataset(rng(), 1 + static_cast<int>(rng() % 120), 1 + static_cast<int>(rng() % 12),
                               1 + static_cast<int>(rng() % 6), static_cast<double>(rng() % 100) / 100);
    bool kfold = rng() % 3 == 0;
    std::string params = kfold ? "{mode: kfold, folds: " + std::to_string(2 + rng() % 8) + "}" : "{}";
    auto r = Run(in, params, {}, rng() % 1000, dir.path());
    ASSERT_EQ(r.summary.exit_code, 0) << t << ": " << r.Of("s").reason;
    Dataset ds = ReadOutput(dir / "work/s/dataset.json");
    ASSERT_EQ(ds.images.size(), in.images.size()) << t;
    EXPECT_EQ(Leaks(ds, kfold), std::vector<std::string>{}) << "dataset " << t;
  }
}

// A split named `val` is written as valid, the name every reader uses.
TEST_F(SplitTest, ValRatioIsWrittenAsValid) {
  ASSERT_EQ(Run(RandomDataset(3, 20, 4, 2, 0.3), "{ratios: {train: 0.8, val: 0.2}}").summary.exit_code, 0);
  std::set<std::string> splits;
  for (const Image& img : Output().images) splits.insert(img.split);
  EXPECT_EQ(splits, (std::set<std::string>{"train", "valid"}));
}

}  // namespace
}  // namespace medpipe
