#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "dataset/coco_io.h"
#include "runner/checkpoint.h"
#include "tests/test_util.h"

namespace medpipe {

// Defined in split_test.cc.
namespace split_testing {
Dataset RandomDataset(uint64_t seed, int patients, int max_slices, int classes, double negative_share,
                      const std::string& prefix);
std::map<std::string, int64_t> Counters(const fs::path& stage_dir);
Dataset ReadOutput(const fs::path& path);
std::vector<std::string> Leaks(const Dataset& ds, bool by_fold);
}  // namespace split_testing

namespace {

using namespace split_testing;
using testing::TempDir;

struct SplitSpec {
  std::string split;
  int positives, negatives;
};

// A split dataset: one patient per image ("D<n>"), positives with one box.
Dataset SplitDataset(const std::vector<SplitSpec>& specs) {
  Dataset ds;
  ds.categories = {{1, "IPH", "h"}};
  for (const SplitSpec& s : specs) {
    for (int k = 0; k < s.positives + s.negatives; ++k) {
      Image img;
      img.id = static_cast<int64_t>(ds.images.size()) + 1;
      img.patient_id = "D" + std::to_string(img.id);
      img.file_name = "images/" + img.patient_id + ".png";
      img.split = s.split;
      ds.images.push_back(img);
      if (k < s.positives) {
        Annotation a;
        a.id = static_cast<int64_t>(ds.annotations.size()) + 1;
        a.image_id = img.id;
        a.category_id = 1;
        a.bbox[2] = a.bbox[3] = 3;
        ds.annotations.push_back(a);
      }
    }
  }
  return ds;
}

// Adds `count` pool patients named <prefix><n>, each with `images` images labelled `label`.
void AddPool(Dataset* pool, const std::string& prefix, int count, int images, const std::string& label) {
  for (int p = 0; p < count; ++p) {
    for (int k = 0; k < images; ++k) {
      Image img;
      img.id = static_cast<int64_t>(pool->images.size()) + 1;
      img.patient_id = prefix + std::to_string(p);
      img.file_name = "images/" + img.patient_id + "_" + std::to_string(k) + ".png";
      img.labels = {label};
      img.source = "feedback";
      pool->images.push_back(img);
    }
  }
}

class BalanceTest : public ::testing::Test {
 protected:
  testing::RunResult Run(const Dataset& ds, const Dataset& pool, const std::string& params = "{}",
                         RunOptions options = {}, uint64_t seed = 7, const fs::path& where = {}) {
    fs::path dir = where.empty() ? dir_.path() : where;
    fs::create_directories(dir / "data");
    testing::WriteText(dir / "data/ds.json", SerializeCoco(ds));
    testing::WriteText(dir / "data/pool.json", SerializeCoco(pool));
    return testing::RunYaml(testing::TestKinds(), dir,
                            "workdir: work\nseed: " + std::to_string(seed) +
                                "\nstages:\n"
                                "  - {id: ds, kind: emit, params: {coco: data/ds.json}}\n"
                                "  - {id: pool, kind: emit, params: {coco: data/pool.json}}\n"
                                "  - {id: b, kind: balance, inputs: [ds, pool], params: " + params + "}\n",
                            options);
  }
  Dataset Output() { return ReadOutput(dir_ / "work/b/dataset.json"); }
  std::map<std::string, int64_t> Count() { return Counters(dir_ / "work/b"); }
  // Pool images in the output by split (source "feedback").
  std::map<std::string, int> PoolBySplit(const Dataset& ds, const std::string& label = "") {
    std::map<std::string, int> out;
    for (const Image& img : ds.images) {
      if (img.source == "feedback" && (label.empty() || img.labels.at(0) == label)) ++out[img.split];
    }
    return out;
  }
  TempDir dir_;
};

// Shortfalls: train 100 - 20 = 80, valid 20, test 5; total 105.
const std::vector<SplitSpec> kSplits = {{"train", 100, 20}, {"valid", 20, 0}, {"test", 10, 5}};

TEST_F(BalanceTest, ShortPoolIsDistributedInProportionToEachShortfall) {
  Dataset pool;
  AddPool(&pool, "Q", 50, 1, "TN");
  ASSERT_EQ(Run(SplitDataset(kSplits), pool).summary.exit_code, 0);
  // 50 * (80, 20, 5) / 105 = 38.1, 9.52, 2.38 -> 38, 10, 2 (largest remainder).
  EXPECT_EQ(PoolBySplit(Output()), (std::map<std::string, int>{{"test", 2}, {"train", 38}, {"valid", 10}}));
  auto c = Count();
  EXPECT_EQ(c["needed.train"], 80);
  EXPECT_EQ(c["added.valid"], 10);
  EXPECT_EQ(c["before.train.negatives"], 20);
  EXPECT_EQ(c["after.train.negatives"], 58);
  EXPECT_EQ(c["after.train.images"], 158);
  EXPECT_EQ(c["pool.unused"], 0);
}

// A split left outside target +/- tolerance is a problem naming the split,
// the shortfall and its reason; a split within the tolerance is not.
TEST_F(BalanceTest, MissedTargetIsAProblemWithItsReason) {
  Dataset pool;
  AddPool(&pool, "Q", 50, 1, "TN");
  ASSERT_EQ(Run(SplitDataset(kSplits), pool).summary.exit_code, 0);
  std::string report = testing::ReadText(dir_ / "work/b/report.json");
  // train: 58 of 158 negatives (36.7%), 42 short of 100; the pool had 50 for 105.
  EXPECT_NE(report.find("split train"), std::string::npos) << report;
  EXPECT_NE(report.find("negatives 36.7% against a target of 50.0% +/- 2.0: 42 negatives short; pool exhausted"),
            std::string::npos)
      << report;
  EXPECT_EQ(ReadCommit(dir_ / "work/b")->problems.at("target missed"), 3);

  // A pool large enough fills every split: no problem.
  TempDir big;
  Dataset full;
  AddPool(&full, "Q", 200, 1, "TN");
  ASSERT_EQ(Run(SplitDataset(kSplits), full, "{}", {}, 7, big.path()).summary.exit_code, 0);
  EXPECT_EQ(ReadCommit(big / "work/b")->problems.count("target missed"), 0u);

  // Already above the target: balance cannot remove negatives, and says so.
  TempDir above;
  ASSERT_EQ(Run(SplitDataset({{"train", 2, 8}}), full, "{}", {}, 7, above.path()).summary.exit_code, 0);
  EXPECT_NE(testing::ReadText(above / "work/b/report.json").find("never removes them"), std::string::npos);

  // --strict turns the missed target into a failed run.
  TempDir strict;
  RunOptions o;
  o.strict = true;
  EXPECT_NE(Run(SplitDataset(kSplits), pool, "{}", o, 7, strict.path()).summary.exit_code, 0);
}

// Pool images without a patient id are grouped by their group or alone, and
// the stage says how many; missing_patient: error stops it.
TEST_F(BalanceTest, PoolPatientFallbackIsSaidOrFails) {
  Dataset pool;
  AddPool(&pool, "Q", 30, 1, "TN");
  for (size_t i = 0; i < 20; ++i) {
    pool.images[i].patient_id.clear();
    if (i < 12) pool.images[i].attributes["group"] = "rf" + std::to_string(i / 2);
  }
  ASSERT_EQ(Run(SplitDataset(kSplits), pool).summary.exit_code, 0);
  auto c = Count();
  EXPECT_EQ(c["pool.patient_fallback.group"], 12);
  EXPECT_EQ(c["pool.patient_fallback.alone"], 8);
  const std::string said =
      "12 of 30 pool images have no patient_id: grouped by Roboflow source name; patient leakage cannot be ruled out";
  EXPECT_NE(testing::ReadText(dir_ / "work/b/report.json").find(said), std::string::npos);
  EXPECT_NE(testing::ReadText(dir_ / "work/.medpipe/run.log").find(said), std::string::npos);

  TempDir other;
  auto r = Run(SplitDataset(kSplits), pool, "{missing_patient: error}", {}, 7, other.path());
  EXPECT_EQ(r.summary.exit_code, 1);
  EXPECT_NE(r.Of("b").reason.find("20 of 30 usable pool images have no patient_id"), std::string::npos)
      << r.Of("b").reason;
}

TEST_F(BalanceTest, BigPoolFillsEverySplitToTheTargetAndLeavesTheRestOut) {
  Dataset pool;
  AddPool(&pool, "Q", 500, 1, "TN");
  ASSERT_EQ(Run(SplitDataset(kSplits), pool).summary.exit_code, 0);
  auto c = Count();
  for (const char* s : {"train", "valid", "test"}) {
    EXPECT_EQ(c[std::string("after.") + s + ".negative_share_bp"], 5000) << s;
  }
  EXPECT_EQ(c["pool.used"], 105);
  EXPECT_EQ(c["pool.unused"], 395);
  EXPECT_EQ(Output().images.size(), 155u + 105u);
  ASSERT_EQ(Run(SplitDataset(kSplits), pool, "{target_negative_fraction: 0.25}").summary.exit_code, 0);
  c = Count();
  EXPECT_EQ(c["after.train.negatives"], 33) << "100 positives * 0.25 / 0.75";
  EXPECT_EQ(c["after.valid.negatives"], 7);
  EXPECT_EQ(c["added.test"], 0) << "test already has 5 of 15";
}

TEST_F(BalanceTest, FalsePositivesBeforeTrueNegativesSpreadAcrossSplits) {
  Dataset pool;
  AddPool(&pool, "T", 300, 1, "TN");
  AddPool(&pool, "F", 30, 1, "FP");  // listed after the TNs: order in the pool must not matter
  ASSERT_EQ(Run(SplitDataset(kSplits), pool, "{priority: [FP, TN]}").summary.exit_code, 0);
  Dataset ds = Output();
  auto fp = PoolBySplit(ds, "FP");
  EXPECT_EQ(fp["train"] + fp["valid"] + fp["test"], 30) << "every FP used before any TN";
  EXPECT_NEAR(fp["train"], 30 * 80 / 105.0, 1.5);
  EXPECT_NEAR(fp["valid"], 30 * 20 / 105.0, 1.5);
  EXPECT_EQ(Count()["added.train.FP"], fp["train"]);
  // Need smaller than the FPs: only FPs are used.
  Dataset small = SplitDataset({{"train", 10, 0}, {"valid", 5, 0}});
  ASSERT_EQ(Run(small, pool, "{priority: [FP, TN]}").summary.exit_code, 0);
  auto c = Count();
  EXPECT_EQ(c["added.train.FP"], 10);
  EXPECT_EQ(c["added.valid.FP"], 5);
  EXPECT_EQ(c["added.train.TN"] + c["added.valid.TN"], 0);
  // With priority reversed, TNs go first.
  ASSERT_EQ(Run(small, pool, "{priority: [TN, FP]}").summary.exit_code, 0);
  EXPECT_EQ(Count()["added.train.FP"], 0);
}

TEST_F(BalanceTest, PoolPatientImagesGoToOneSplit) {
  Dataset pool;
  AddPool(&pool, "Q", 40, 3, "TN");
  ASSERT_EQ(Run(SplitDataset(kSplits), pool).summary.exit_code, 0);
  Dataset ds = Output();
  std::map<std::string, std::set<std::string>> splits;
  std::map<std::string, int> images;
  for (const Image& img : ds.images) {
    if (img.source == "feedback") splits[img.patient_id].insert(img.split), ++images[img.patient_id];
  }
  auto c = Count();
  for (auto [split, need] : {std::pair<std::string, int>{"train", 80}, {"valid", 20}, {"test", 5}}) {
    EXPECT_LE(std::abs(c["added." + split] - need), 1) << split << ": within half a patient of the need";
  }
  for (const auto& [p, s] : splits) {
    EXPECT_EQ(s.size(), 1u) << p;
    EXPECT_EQ(images[p], 3) << p;
  }
  EXPECT_TRUE(Leaks(ds, false).empty());
}

TEST_F(BalanceTest, PoolPatientAlreadyInValidGoesToValidOnly) {
  Dataset ds = SplitDataset(kSplits);
  const std::string valid_patient = ds.images[125].patient_id;  // images 121..140 are valid
  ASSERT_EQ(ds.images[125].split, "valid");
  Dataset pool;
  AddPool(&pool, "Q", 50, 1, "TN");
  Image same;
  same.id = 1000, same.patient_id = valid_patient, same.file_name = "images/same_0.png", same.labels = {"TN"};
  same.source = "feedback";
  for (int k = 0; k < 3; ++k) {
    same.id += 1, same.file_name = "images/same_" + std::to_string(k) + ".png";
    pool.images.push_back(same);
  }
  ASSERT_EQ(Run(ds, pool).summary.exit_code, 0);
  std::set<std::string> where;
  for (const Image& img : Output().images) {
    if (img.patient_id == valid_patient) where.insert(img.split);
  }
  EXPECT_EQ(where, std::set<std::string>{"valid"});
  EXPECT_EQ(PoolBySplit(Output())["valid"], 10) << "it counts against valid's quota";

  // Valid needs nothing: the patient is left out rather than put elsewhere.
  Dataset full = SplitDataset({{"train", 100, 20}, {"valid", 20, 20}});
  for (Image& img : pool.images) {
    if (img.file_name.rfind("images/same_", 0) == 0) img.patient_id = full.images[130].patient_id;
  }
  ASSERT_EQ(full.images[130].split, "valid");
  ASSERT_EQ(Run(full, pool).summary.exit_code, 0);
  int same_used = 0;
  for (const Image& img : Output().images) same_used += img.source == "feedback" && img.patient_id == full.images[130].patient_id;
  EXPECT_EQ(same_used, 0);
  EXPECT_EQ(Count()["added.train"], 50) << "the short pool all went to train, except the pinned patient";
}

TEST_F(BalanceTest, PoolNamesArePrefixedLinksAndCollisionFree) {
  Dataset ds = SplitDataset({{"train", 2, 0}});
  Dataset pool;
  Image img;
  img.id = 1, img.patient_id = "X", img.file_name = "images/D1.png", img.labels = {"TN"}, img.source = "feedback";
  pool.images.push_back(img);
  img.id = 2, img.file_name = "sub/D1.png";
  pool.images.push_back(img);
  ASSERT_EQ(Run(ds, pool, "{pool_prefix: ''}").summary.exit_code, 0);
  Dataset out = Output();
  ASSERT_EQ(out.images.size(), 4u);
  EXPECT_EQ(out.images[2].file_name, "images/D1_2.png") << "collides with the dataset's images/D1.png";
  EXPECT_EQ(out.images[3].file_name, "images/sub_D1.png");
  EXPECT_EQ(out.images[2].source, "feedback");
  EXPECT_EQ(out.images[2].split, "train");
  fs::path link = dir_ / "work/b/images/D1_2.png";
  ASSERT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(fs::read_symlink(link), fs::path("../../pool/images/D1.png"));
  ASSERT_EQ(Run(ds, pool, "{pool_prefix: no_hem_}").summary.exit_code, 0);
  EXPECT_EQ(Output().images[2].file_name, "images/no_hem_D1.png");
}

// The defaults belong to no project: no file-name prefix, no label priority
// (every pool image ranks alike, counted as "other").
TEST_F(BalanceTest, DefaultsAreNeutral) {
  Dataset ds = SplitDataset({{"train", 2, 0}});
  Dataset pool;
  Image img;
  img.id = 1, img.patient_id = "X", img.file_name = "images/E1.png", img.labels = {"FP"}, img.source = "feedback";
  pool.images.push_back(img);
  ASSERT_EQ(Run(ds, pool).summary.exit_code, 0);
  Dataset out = Output();
  ASSERT_EQ(out.images.size(), 3u);
  EXPECT_EQ(out.images[2].file_name, "images/E1.png");
  auto c = Count();
  EXPECT_EQ(c["added.train.FP"], 0);
  EXPECT_EQ(c["added.train.other"], 1);
}

TEST_F(BalanceTest, SameBytesForAnyThreadCountAndSeedDependent) {
  Dataset pool;
  AddPool(&pool, "Q", 400, 2, "TN");
  AddPool(&pool, "F", 10, 1, "FP");
  TempDir a, b, c;
  RunOptions one, two;
  one.threads = 1, two.threads = 2;
  ASSERT_EQ(Run(SplitDataset(kSplits), pool, "{}", one, 7, a.path()).summary.exit_code, 0);
  ASSERT_EQ(Run(SplitDataset(kSplits), pool, "{}", two, 7, b.path()).summary.exit_code, 0);
  ASSERT_EQ(Run(SplitDataset(kSplits), pool, "{}", two, 9, c.path()).summary.exit_code, 0);
  auto sa = testing::Snapshot(a / "work/b");
  EXPECT_EQ(sa, testing::Snapshot(b / "work/b"));
  EXPECT_NE(sa["dataset.json"], testing::Snapshot(c / "work/b")["dataset.json"]);
}

TEST_F(BalanceTest, InputWithoutSplitsFails) {
  Dataset ds = SplitDataset({{"train", 2, 0}});
  ds.images[1].split.clear();
  auto r = Run(ds, Dataset{});
  EXPECT_EQ(r.summary.exit_code, 1);
  EXPECT_NE(r.Of("b").reason.find("images/D2.png"), std::string::npos) << r.Of("b").reason;
}

// Property: random dataset -> split -> balance with a random pool, some of
// whose patients are already in the dataset: no patient or group is ever in
// two splits, and pool patients already present stay in their split.
TEST_F(BalanceTest, PropertyNoPatientInTwoSplitsOverRandomDatasets) {
  std::mt19937_64 rng(77);
  for (int t = 0; t < 50; ++t) {
    TempDir dir;
    fs::create_directories(dir / "data");
    Dataset in = RandomDataset(rng(), 2 + static_cast<int>(rng() % 100), 1 + static_cast<int>(rng() % 8),
                               1 + static_cast<int>(rng() % 5), static_cast<double>(rng() % 60) / 100, "P");
    Dataset pool;
    int pool_patients = static_cast<int>(rng() % 200);
    for (int p = 0; p < pool_patients; ++p) {
      bool known = rng() % 5 == 0;  // a patient of the dataset
      int images = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < images; ++k) {
        Image img;
        img.id = static_cast<int64_t>(pool.images.size()) + 1;
        img.patient_id = (known ? "P" : "Q") + std::to_string(known ? rng() % 100 : static_cast<uint64_t>(p));
        img.file_name = "images/pool" + std::to_string(img.id) + ".png";
        img.labels = {rng() % 4 == 0 ? "FP" : "TN"};
        img.source = "feedback";
        pool.images.push_back(img);
      }
    }
    testing::WriteText(dir / "data/ds.json", SerializeCoco(in));
    testing::WriteText(dir / "data/pool.json", SerializeCoco(pool));
    auto r = testing::RunYaml(testing::TestKinds(), dir.path(),
                              "workdir: work\nseed: " + std::to_string(rng() % 100) +
                                  "\nstages:\n"
                                  "  - {id: ds, kind: emit, params: {coco: data/ds.json}}\n"
                                  "  - {id: pool, kind: emit, params: {coco: data/pool.json}}\n"
                                  "  - {id: s, kind: split, inputs: [ds]}\n"
                                  "  - {id: b, kind: balance, inputs: [s, pool], params: {target_negative_fraction: " +
                                  std::to_string(static_cast<double>(rng() % 90) / 100) + "}}\n");
    ASSERT_EQ(r.summary.exit_code, 0) << t << ": " << r.Of("b").reason;
    Dataset split = ReadOutput(dir / "work/s/dataset.json");
    Dataset out = ReadOutput(dir / "work/b/dataset.json");
    EXPECT_EQ(Leaks(split, false), std::vector<std::string>{}) << t;
    EXPECT_EQ(Leaks(out, false), std::vector<std::string>{}) << t;
    std::map<std::string, std::string> home;
    for (const Image& img : split.images) home[img.patient_id] = img.split;
    for (const Image& img : out.images) {
      if (home.count(img.patient_id)) {
        EXPECT_EQ(img.split, home[img.patient_id]) << t << " " << img.file_name;
      }
    }
    auto c = Counters(dir / "work/b");
    EXPECT_EQ(static_cast<int64_t>(out.images.size()), static_cast<int64_t>(split.images.size()) + c["pool.used"]);
    EXPECT_EQ(c["pool.used"] + c["pool.unused"], static_cast<int64_t>(pool.images.size())) << t;
  }
}

}  // namespace
}  // namespace medpipe
