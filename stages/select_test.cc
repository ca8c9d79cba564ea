// select and dataset/select.h: predicates (thresholds inclusive, as the
// EchoQuality seed states them), caps, evenness across groups, determinism.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "dataset/coco_io.h"
#include "dataset/select.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;

Image Clip(const std::string& name, double score, const std::string& status, const std::string& machine) {
  Image img;
  img.file_name = name;
  img.attributes["score"] = score;
  img.attributes["status"] = status;
  img.attributes["machine_type"] = machine;
  img.attributes["assessment"] = std::string(score >= 0.95 ? "Excellent quality" : "Critical issues");
  return img;
}

bool Holds(const std::string& text, const Image& img) {
  Result<Predicate> p = ParsePredicate(text);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() && Matches(*p, img);
}

TEST(SelectPredicate, ThresholdsAreInclusiveAsTheSeedStates) {
  EXPECT_TRUE(Holds("score >= 0.95", Clip("a", 0.95, "PASS", "x")));
  EXPECT_FALSE(Holds("score >= 0.95", Clip("a", 0.9499, "PASS", "x")));
  EXPECT_TRUE(Holds("score <= 0.1", Clip("a", 0.1, "FAIL", "x")));
  EXPECT_FALSE(Holds("score <= 0.1", Clip("a", 0.1001, "FAIL", "x")));
  EXPECT_FALSE(Holds("score > 0.95", Clip("a", 0.95, "PASS", "x")));
  EXPECT_TRUE(Holds("status == PASS", Clip("a", 1, "PASS", "x")));
  EXPECT_FALSE(Holds("status == PASS", Clip("a", 1, "pass", "x")));
  EXPECT_TRUE(Holds("status != 'FAIL'", Clip("a", 1, "PASS", "x")));
  EXPECT_TRUE(Holds("assessment contains Excellent", Clip("a", 1, "PASS", "x")));
  EXPECT_FALSE(Holds("assessment contains excellent", Clip("a", 1, "PASS", "x"))) << "case-sensitive";
  EXPECT_TRUE(Holds("score == 1", Clip("a", 1.0, "PASS", "x"))) << "numbers compare as numbers";
  EXPECT_FALSE(Holds("missing >= 0", Clip("a", 1, "PASS", "x"))) << "an absent field does not match";
  EXPECT_TRUE(Holds("missing != 0", Clip("a", 1, "PASS", "x")));
  EXPECT_TRUE(Holds("file_name == a", Clip("a", 1, "PASS", "x")));
  EXPECT_FALSE(ParsePredicate("score ~ 1").ok());
  EXPECT_FALSE(ParsePredicate("score >= high").ok()) << "an ordered comparison needs a number";
  EXPECT_FALSE(ParsePredicate(">= 1").ok());
}

TEST(SelectEvenly, CapsAreFilledEvenlyAcrossGroupsAndDeterministically) {
  std::vector<std::string> keys, groups;
  // Group sizes 50, 10, 3, 30.
  const std::pair<const char*, int> sizes[] = {{"vivid", 50}, {"epiq7", 10}, {"affiniti50g", 3}, {"affiniti70g", 30}};
  for (const auto& [g, n] : sizes) {
    for (int i = 0; i < n; ++i) keys.push_back(std::string(g) + std::to_string(i)), groups.push_back(g);
  }
  for (size_t cap : {4u, 10u, 25u, 40u, 93u, 200u}) {
    std::vector<size_t> chosen = SelectEvenly(keys, groups, cap, 7);
    EXPECT_EQ(chosen.size(), std::min<size_t>(cap, keys.size())) << cap;
    std::map<std::string, int> per;
    for (size_t i : chosen) ++per[groups[i]];
    // Water-filling: a group below the others' level is exhausted.
    int lo = 1 << 30, hi = 0;
    for (const auto& [g, n] : sizes) {
      int got = per[g];
      if (got < n) lo = std::min(lo, got);
      hi = std::max(hi, got);
      EXPECT_LE(got, n);
    }
    if (lo != 1 << 30) { EXPECT_LE(hi - lo, 1) << "cap " << cap; }
    EXPECT_EQ(chosen, SelectEvenly(keys, groups, cap, 7)) << "same seed, same choice";
    EXPECT_TRUE(std::is_sorted(chosen.begin(), chosen.end()));
  }
  EXPECT_NE(SelectEvenly(keys, groups, 20, 7), SelectEvenly(keys, groups, 20, 8)) << "the seed breaks ties";
  EXPECT_EQ(SelectEvenly(keys, groups, 0, 7).size(), keys.size()) << "0 is no cap";
}

// The stage on a dataset handed in by the test-only `emit` kind.
class SelectStageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Dataset ds;
    const char* machines[] = {"vivid", "epiq7", "affiniti50g", "affiniti70g"};
    int64_t id = 1;
    for (int m = 0; m < 4; ++m) {
      for (int i = 0; i < 12 + 6 * m; ++i, ++id) {
        double score = (i % 3 == 0) ? 0.95 + 0.01 * (i % 5) : (i % 3 == 1) ? 0.1 * (i % 2) : 0.5;
        Image img = Clip(fmt::format("clips/{}_{:02d}.dcm", machines[m], i), score, score >= 0.5 ? "PASS" : "FAIL",
                         machines[m]);
        img.id = id;
        ds.images.push_back(img);
      }
    }
    input_ = ds;
    testing::WriteText(dir_ / "in/dataset.json", SerializeCoco(ds));
  }
  testing::RunResult Run(const std::string& params) {
    return testing::RunYaml(testing::TestKinds(), dir_.path(),
                            "workdir: work\nseed: 3\nstages:\n"
                            "  - id: in\n    kind: emit\n    params: {coco: in/dataset.json}\n"
                            "  - id: sel\n    kind: select\n    inputs: [in]\n    params: " + params + "\n");
  }
  Dataset Output() {
    Result<Dataset> ds = ReadCoco(dir_ / "work/sel/dataset.json");
    EXPECT_TRUE(ds.ok()) << ds.status().ToString();
    return ds.ok() ? *ds : Dataset{};
  }
  TempDir dir_;
  Dataset input_;
};

TEST_F(SelectStageTest, TwoClassesInOneStageWithCapsEvenAcrossMachines) {
  ASSERT_EQ(Run("{group_by: machine_type, rules: ["
                "{name: high_quality, where: ['score >= 0.95', 'status == PASS'], max: 10, set: {quality_score: 1}},"
                "{name: natural_failure, where: ['score <= 0.1', 'status == FAIL'], max: 6, set: {quality_score: 0}}]}")
                .summary.exit_code,
            0);
  Dataset out = Output();
  std::map<std::string, std::map<std::string, int>> per;
  for (const Image& img : out.images) {
    std::string cls = AttrToString(img.attributes.at("class"));
    ++per[cls][AttrToString(img.attributes.at("machine_type"))];
    double score = std::get<double>(img.attributes.at("score"));
    if (cls == "high_quality") {
      EXPECT_GE(score, 0.95);
      EXPECT_EQ(std::get<int64_t>(img.attributes.at("quality_score")), 1);
    } else {
      EXPECT_LE(score, 0.1);
      EXPECT_EQ(AttrToString(img.attributes.at("status")), "FAIL");
    }
    EXPECT_TRUE(fs::exists(dir_ / "work/sel" / img.file_name) || fs::is_symlink(dir_ / "work/sel" / img.file_name));
  }
  int hq = 0, lq = 0;
  for (auto& [m, n] : per["high_quality"]) {
    hq += n;
    EXPECT_TRUE(n == 2 || n == 3) << m;
  }
  for (auto& [m, n] : per["natural_failure"]) {
    lq += n;
    EXPECT_TRUE(n == 1 || n == 2) << m;
  }
  EXPECT_EQ(hq, 10);
  EXPECT_EQ(lq, 6);
  EXPECT_EQ(per["high_quality"].size(), 4u);
  // Deterministic: a forced rerun picks the same images.
  Dataset first = out;
  ASSERT_EQ(testing::RunYaml(testing::TestKinds(), dir_.path(), testing::ReadText(dir_ / "pipeline.yaml"),
                             RunOptions{0, "", "", "", {"sel"}})
                .summary.exit_code,
            0);
  EXPECT_EQ(SerializeCoco(Output()), SerializeCoco(first));
}

TEST_F(SelectStageTest, TopLevelWhereWithoutRulesAndConfigErrors) {
  ASSERT_EQ(Run("{where: ['machine_type == epiq7', 'score >= 0.5']}").summary.exit_code, 0);
  for (const Image& img : Output().images) {
    EXPECT_EQ(AttrToString(img.attributes.at("machine_type")), "epiq7");
    EXPECT_FALSE(img.attributes.count("class"));
  }
  EXPECT_THROW(Run("{where: ['score >> 1']}"), std::runtime_error);
  EXPECT_THROW(Run("{rules: [{where: ['score >= 1']}]}"), std::runtime_error) << "a rule needs a name";
  try {
    Run("{rules: [{name: a, where: ['score >= x']}]}");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("pipeline.yaml:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("must be a number"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace medpipe
