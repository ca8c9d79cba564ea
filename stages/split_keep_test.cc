// split's `keep`: the splits of an earlier dataset version survive new data.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "dataset/coco_io.h"
#include "stages/patient_groups.h"
#include "tests/test_util.h"

namespace medpipe {
namespace split_testing {
Dataset RandomDataset(uint64_t seed, int patients, int max_slices, int classes, double negative_share,
                      const std::string& prefix = "P");
std::map<std::string, int64_t> Counters(const fs::path& stage_dir);
Dataset ReadOutput(const fs::path& path);
std::vector<std::string> Leaks(const Dataset& ds, bool by_fold);
}  // namespace split_testing

namespace {

using namespace split_testing;
using testing::TempDir;

// Runs given -> split (-> export) over `ds` in `dir`.
testing::RunResult RunSplit(const fs::path& dir, const Dataset& ds, const std::string& params, bool with_export = false,
                            uint64_t seed = 7) {
  fs::create_directories(dir / "data");
  testing::WriteText(dir / "data/ds.json", SerializeCoco(ds));
  return testing::RunYaml(testing::TestKinds(), dir,
                          "workdir: work\nseed: " + std::to_string(seed) +
                              "\nstages:\n"
                              "  - {id: given, kind: emit, params: {coco: data/ds.json}}\n"
                              "  - {id: s, kind: split, inputs: [given], params: " + params + "}\n" +
                              (with_export ? "  - {id: e, kind: export, inputs: [s], params: {materialize: symlink}}\n" : ""));
}

// `base` plus `more`, the new images renumbered after the old ones and their
// group values renamed so they join no old group.
Dataset Grow(const Dataset& base, Dataset more) {
  Dataset out = base;
  const int64_t image_offset = static_cast<int64_t>(base.images.size());
  const int64_t ann_offset = static_cast<int64_t>(base.annotations.size());
  for (Image& img : more.images) {
    img.id += image_offset;
    if (img.attributes.count("group")) img.attributes["group"] = "new_" + AttrToString(img.attributes["group"]);
    out.images.push_back(img);
  }
  for (Annotation& a : more.annotations) {
    a.id += ann_offset;
    a.image_id += image_offset;
    out.annotations.push_back(a);
  }
  return out;
}

// The bin of an image: its split, or "fold<k>".
std::string BinOf(const Image& img, bool kfold) {
  return kfold ? "fold" + AttrToString(img.attributes.at("fold")) : img.split;
}

// The largest set of images that must share a bin (patients joined by group).
size_t LargestGroup(const Dataset& ds) {
  UnionFind uf;
  std::vector<uint32_t> node;
  for (const Image& img : ds.images) {
    node.push_back(uf.Node("p" + img.patient_id));
    if (img.attributes.count("group")) uf.Union(node.back(), uf.Node("g" + AttrToString(img.attributes.at("group"))));
  }
  std::map<uint32_t, size_t> size;
  size_t largest = 0;
  for (uint32_t n : node) largest = std::max(largest, ++size[uf.Find(n)]);
  return largest;
}

// Property: over random datasets grown by random new patients, a split with
// keep moves no old patient, counts kept/new/moved right, has no leak, and
// each bin's share is within one group's size of its ratio, except where the
// kept patients alone overfill a bin (then the others fall short by as much).
TEST(SplitKeep, PropertyNoOldPatientMovesAndSharesFollowTheRatios) {
  std::mt19937_64 rng(77);
  for (int t = 0; t < 12; ++t) {
    TempDir v1, v2;
    const int old_patients = 5 + static_cast<int>(rng() % 80), new_patients = static_cast<int>(rng() % 80);
    const int slices = 1 + static_cast<int>(rng() % 8), classes = 1 + static_cast<int>(rng() % 4);
    Dataset old_ds = RandomDataset(rng(), old_patients, slices, classes, 0.3);
    Dataset new_ds = Grow(old_ds, RandomDataset(rng(), new_patients, slices, classes, 0.3, "N"));
    const bool kfold = t % 4 == 3;
    const int folds = 2 + static_cast<int>(rng() % 4);
    const std::string mode = kfold ? "mode: kfold, folds: " + std::to_string(folds) : "ratios: {train: 0.7, valid: 0.2, test: 0.1}";
    auto r1 = RunSplit(v1.path(), old_ds, "{" + mode + "}", false, rng() % 100);
    ASSERT_EQ(r1.summary.exit_code, 0) << t << ": " << r1.Of("s").reason;
    Dataset first = ReadOutput(v1 / "work/s/dataset.json");
    std::map<std::string, std::string> old_bin;
    for (const Image& img : first.images) old_bin[img.patient_id] = BinOf(img, kfold);

    // The keep source in turn: the split folder, its dataset.json, a CSV.
    std::string keep = (v1 / "work/s").string();
    if (t % 3 == 1) keep = (v1 / "work/s/dataset.json").string();
    if (t % 3 == 2) {
      std::string csv = kfold ? "patient_id,fold\n" : "patient_id,split\n";
      for (const auto& [p, b] : old_bin) csv += p + "," + (kfold ? b.substr(4) : b) + "\n";
      testing::WriteText(v1 / "keep.csv", csv);
      keep = (v1 / "keep.csv").string();
    }
    auto r2 = RunSplit(v2.path(), new_ds, "{" + mode + ", keep: '" + keep + "'}", false, rng() % 100);
    ASSERT_EQ(r2.summary.exit_code, 0) << t << ": " << r2.Of("s").reason;
    Dataset second = ReadOutput(v2 / "work/s/dataset.json");
    ASSERT_EQ(second.images.size(), new_ds.images.size());
    EXPECT_TRUE(Leaks(second, kfold).empty()) << t;

    std::map<std::string, double> count, kept_count;
    for (const Image& img : second.images) {
      const std::string bin = BinOf(img, kfold);
      count[bin] += 1;
      auto it = old_bin.find(img.patient_id);
      if (it == old_bin.end()) continue;
      EXPECT_EQ(bin, it->second) << t << ": old patient " << img.patient_id << " moved";
      kept_count[bin] += 1;
    }
    auto c = Counters(v2 / "work/s");
    EXPECT_EQ(c["keep.patients_kept"], static_cast<int64_t>(old_bin.size())) << t;
    EXPECT_EQ(c["keep.patients_new"], new_patients) << t;
    EXPECT_EQ(c["keep.patients_moved"], 0) << t;

    std::map<std::string, double> share;
    if (kfold) {
      for (int k = 0; k < folds; ++k) share["fold" + std::to_string(k)] = 1.0 / folds;
    } else {
      share = {{"train", 0.7}, {"valid", 0.2}, {"test", 0.1}};
    }
    const double n = static_cast<double>(second.images.size()), g = static_cast<double>(LargestGroup(new_ds));
    double overfill = 0;  // what the kept images alone put beyond the targets
    for (const auto& [b, s] : share) overfill += std::max(0.0, kept_count[b] - s * n);
    for (const auto& [b, s] : share) {
      const double target = s * n;
      EXPECT_LE(count[b], std::max(target, kept_count[b]) + g + 1e-9) << t << " " << b;
      EXPECT_GE(count[b], target - g - overfill - 1e-9) << t << " " << b;
    }
  }
}

TEST(SplitKeep, ReadsARoboflowExportAndItsContentIsFingerprinted) {
  TempDir v1, v2;
  Dataset old_ds = RandomDataset(11, 40, 4, 3, 0.3);
  ASSERT_EQ(RunSplit(v1.path(), old_ds, "{}", /*with_export=*/true).summary.exit_code, 0);
  ASSERT_TRUE(fs::exists(v1 / "work/e/train/_annotations.coco.json"));
  std::map<std::string, std::string> old_split;
  for (const Image& img : ReadOutput(v1 / "work/s/dataset.json").images) old_split[img.patient_id] = img.split;

  // The export as a user would keep it: the split folders alone.
  for (const char* split : {"train", "valid", "test"}) {
    fs::path coco = v1 / "work/e" / split / "_annotations.coco.json";
    if (fs::exists(coco)) testing::WriteText(v1 / "v4" / split / "_annotations.coco.json", testing::ReadText(coco));
  }
  ASSERT_TRUE(fs::exists(v1 / "v4/test/_annotations.coco.json"));
  Dataset new_ds = Grow(old_ds, RandomDataset(12, 30, 4, 3, 0.3, "N"));
  // The images exist, so the stages' links are not dangling (a dangling link
  // makes its stage stale, which is not what this test is about).
  for (const Image& img : new_ds.images) testing::WriteText(v2 / "data" / img.file_name, "x");
  const std::string params = "{keep: '" + (v1 / "v4").string() + "'}";
  auto r = RunSplit(v2.path(), new_ds, params, false, /*seed=*/99);  // another seed: the kept splits still hold
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("s").reason;
  for (const Image& img : ReadOutput(v2 / "work/s/dataset.json").images) {
    if (old_split.count(img.patient_id)) {
      EXPECT_EQ(img.split, old_split[img.patient_id]) << img.patient_id;
    }
  }
  EXPECT_EQ(Counters(v2 / "work/s")["keep.patients_kept"], 40);

  // Unchanged keep source: skipped. Changed content: the split runs again.
  EXPECT_EQ(RunSplit(v2.path(), new_ds, params, false, 99).Of("s").state, StageOutcome::State::kSkipped);
  std::string coco = testing::ReadText(v1 / "v4/test/_annotations.coco.json");
  testing::WriteText(v1 / "v4/test/_annotations.coco.json", coco + "\n");
  auto again = RunSplit(v2.path(), new_ds, params, false, 99);
  EXPECT_EQ(again.Of("s").state, StageOutcome::State::kRan) << again.Of("s").reason;
}

TEST(SplitKeep, JoinedKeptPatientsAreCountedAsMovedAndUnknownSplitsFail) {
  TempDir dir;
  Dataset ds = RandomDataset(13, 10, 2, 2, 0.3);
  for (Image& img : ds.images) img.attributes.erase("group");
  // P0 and P1 were in different splits; the new data joins them by a group.
  for (Image& img : ds.images) {
    if (img.patient_id == "P0" || img.patient_id == "P1") img.attributes["group"] = std::string("joined");
  }
  testing::WriteText(dir / "keep.csv", "patient_id,split\nP0,train\nP1,test\nP2,valid\n");
  auto r = RunSplit(dir.path(), ds, "{keep: '" + (dir / "keep.csv").string() + "'}");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("s").reason;
  auto c = Counters(dir / "work/s");
  EXPECT_EQ(c["keep.patients_moved"], 1);
  EXPECT_EQ(c["keep.patients_kept"], 2);
  EXPECT_EQ(c["keep.patients_new"], 7);
  EXPECT_NE(testing::ReadText(dir / "work/s/report.json").find("patient P1"), std::string::npos);
  for (const Image& img : ReadOutput(dir / "work/s/dataset.json").images) {
    if (img.patient_id == "P2") {
      EXPECT_EQ(img.split, "valid");
    }
  }

  TempDir other;
  testing::WriteText(other / "keep.csv", "patient_id,split\nP0,holdout\n");
  auto bad = RunSplit(other.path(), ds, "{keep: '" + (other / "keep.csv").string() + "'}");
  EXPECT_EQ(bad.summary.exit_code, 1);
  EXPECT_NE(bad.Of("s").reason.find("'holdout'"), std::string::npos) << bad.Of("s").reason;

  TempDir leaky;
  testing::WriteText(leaky / "keep.csv", "patient_id,split\nP0,train\nP0,test\n");
  auto leak = RunSplit(leaky.path(), ds, "{keep: '" + (leaky / "keep.csv").string() + "'}");
  EXPECT_EQ(leak.summary.exit_code, 1);
  EXPECT_NE(leak.Of("s").reason.find("already leaks"), std::string::npos) << leak.Of("s").reason;

  // A keep path that does not exist is a config error, before any stage runs.
  TempDir none;
  EXPECT_THROW(RunSplit(none.path(), ds, "{keep: 'no/such/folder'}"), std::runtime_error);
}

}  // namespace
}  // namespace medpipe
