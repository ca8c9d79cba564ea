// The multi-label group stratification: properties over random datasets,
// balance against scikit-learn's StratifiedGroupKFold (shuffle=False, y = the
// rarest label; python3-sklearn 1.2.1) on the same data, stability, and
// class weights that only the training part decides. Then the folds stage:
// unknown labels, a label table alone, materialised files.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <random>
#include <set>
#include <sstream>

#include "dataset/coco_io.h"
#include "stages/ctprep_params.h"
#include "stages/label_table.h"
#include "stages/multilabel_folds.h"
#include "tests/test_util.h"
#include "util/csv.h"
#include "util/strings.h"

namespace medpipe {
namespace {

// CT-RATE-shaped data: patients with 1-4 volumes (scans x reconstructions),
// 18 labels with prevalences 0.02..0.45, correlated within a patient.
MultiLabelItems RandomItems(uint64_t seed, int patients, size_t labels = 18) {
  std::mt19937_64 rng(seed);
  auto uniform = [&] { return static_cast<double>(rng() >> 11) / 9007199254740992.0; };
  MultiLabelItems m;
  m.labels = labels;
  for (int p = 0; p < patients; ++p) {
    m.group_keys.push_back("patient" + std::to_string(p));
    std::vector<uint8_t> base(labels);
    for (size_t l = 0; l < labels; ++l) base[l] = uniform() < 0.02 + 0.43 * static_cast<double>(l) / (labels - 1);
    int volumes = 1 + static_cast<int>(uniform() * 2) + (uniform() < 0.2 ? 2 : 0);
    for (int v = 0; v < volumes; ++v) {
      m.group.push_back(static_cast<uint32_t>(p));
      for (size_t l = 0; l < labels; ++l) m.y.push_back(uniform() < 0.1 ? !base[l] : base[l]);
    }
  }
  return m;
}

std::vector<int> ItemBins(const MultiLabelItems& m, const std::vector<int>& group_bins) {
  std::vector<int> out(m.items());
  for (size_t i = 0; i < m.items(); ++i) out[i] = group_bins[m.group[i]];
  return out;
}

// Empty (fold, label) pairs that moving one group would fill without
// emptying as many others: the repair step leaves none.
int64_t FillableEmptyPairs(const MultiLabelItems& m, const std::vector<int>& group_bins, int k) {
  const size_t G = m.group_keys.size(), L = m.labels;
  std::vector<std::vector<uint8_t>> has(G, std::vector<uint8_t>(L, 0));
  for (size_t i = 0; i < m.items(); ++i)
    for (size_t l = 0; l < L; ++l) has[m.group[i]][l] |= m.positive(i, l);
  std::vector<std::vector<int>> in(k, std::vector<int>(L, 0));
  std::vector<int> groups(L, 0);
  for (size_t g = 0; g < G; ++g)
    for (size_t l = 0; l < L; ++l) in[group_bins[g]][l] += has[g][l], groups[l] += has[g][l];
  int64_t fillable = 0;
  for (size_t l = 0; l < L; ++l) {
    if (groups[l] < k) continue;
    for (int b = 0; b < k; ++b) {
      if (in[b][l]) continue;
      bool any = false;
      for (size_t g = 0; g < G && !any; ++g) {
        if (!has[g][l]) continue;
        int gain = 0;
        for (size_t ll = 0; ll < L; ++ll) {
          if (!has[g][ll] || groups[ll] < k) continue;
          gain += (in[b][ll] == 0) - (in[group_bins[g]][ll] == 1);
        }
        any = gain > 0;
      }
      fillable += any;
    }
  }
  return fillable;
}

TEST(MultilabelFolds, PropertiesOverRandomDatasets) {
  // Seeds 1-20: tiny datasets (8..27 patients, 18 correlated labels), where
  // an empty (fold, label) pair can be forced by the other labels; seeds
  // 21-40: 70..450 patients, where none beyond max(0, k - positive patients)
  // may remain.
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const bool tiny = seed <= 20;
    MultiLabelItems m = RandomItems(seed, tiny ? 7 + static_cast<int>(seed) : 50 + 20 * static_cast<int>(seed - 20));
    const int k = 5;
    std::vector<int> g = StratifyGroups(m, std::vector<double>(k, 1.0 / k), seed);
    ASSERT_EQ(g.size(), m.group_keys.size());
    for (int b : g) ASSERT_TRUE(b >= 0 && b < k);
    // Each item is in exactly one validation part, which is its group's bin:
    // no patient can be in two.
    std::vector<int> items = ItemBins(m, g);
    std::map<uint32_t, std::set<int>> seen;
    for (size_t i = 0; i < items.size(); ++i) seen[m.group[i]].insert(items[i]);
    for (const auto& [group, bins] : seen) EXPECT_EQ(bins.size(), 1u);
    FoldBalance f = EvaluateBins(m, items, k);
    int64_t total = 0;
    for (int64_t n : f.items) total += n;
    EXPECT_EQ(total, static_cast<int64_t>(m.items()));
    EXPECT_EQ(FillableEmptyPairs(m, g, k), 0) << "seed " << seed;
    if (!tiny) {
      EXPECT_EQ(f.zero_positive_pairs, f.unavoidable_zero_pairs) << "seed " << seed;
    }
  }
}

TEST(MultilabelFolds, StableForASeedWhateverTheOrder) {
  MultiLabelItems m = RandomItems(7, 200);
  std::vector<int> a = StratifyGroups(m, {0.2, 0.2, 0.2, 0.2, 0.2}, 11);
  // The same groups listed in reverse order (items too).
  MultiLabelItems r;
  r.labels = m.labels;
  const size_t G = m.group_keys.size();
  for (size_t g = 0; g < G; ++g) r.group_keys.push_back(m.group_keys[G - 1 - g]);
  for (size_t i = m.items(); i-- > 0;) {
    r.group.push_back(static_cast<uint32_t>(G - 1 - m.group[i]));
    r.y.insert(r.y.end(), m.y.begin() + static_cast<long>(i * m.labels), m.y.begin() + static_cast<long>((i + 1) * m.labels));
  }
  std::vector<int> b = StratifyGroups(r, {0.2, 0.2, 0.2, 0.2, 0.2}, 11);
  for (size_t g = 0; g < G; ++g) EXPECT_EQ(a[g], b[G - 1 - g]);
  EXPECT_NE(a, StratifyGroups(m, {0.2, 0.2, 0.2, 0.2, 0.2}, 12)) << "another seed, other folds";
}

// The balance bar: scikit-learn's StratifiedGroupKFold(shuffle=False) on
// y = the rarest label, measured on the same data with the same metric.
TEST(MultilabelFolds, NoWorseThanSklearnStratifiedGroupKFold) {
  testing::TempDir dir;
  for (uint64_t seed : {3, 4, 5}) {
    MultiLabelItems m = RandomItems(seed, 800);
    std::vector<int> items = ItemBins(m, StratifyGroups(m, std::vector<double>(5, 0.2), seed));
    FoldBalance ours = EvaluateBins(m, items, 5);
    std::ostringstream csv;
    for (size_t i = 0; i < m.items(); ++i) {
      csv << m.group[i];
      for (size_t l = 0; l < m.labels; ++l) csv << "," << int(m.positive(i, l));
      csv << "\n";
    }
    testing::WriteText(dir / "items.csv", csv.str());
    testing::WriteText(dir / "ref.py", R"(
import sys, numpy as np
from sklearn.model_selection import StratifiedGroupKFold
d = np.loadtxt(sys.argv[1], delimiter=',', dtype=int)
groups, Y = d[:, 0], d[:, 1:]
rare = int(np.argmin(Y.sum(0)))
fold = np.zeros(len(d), dtype=int)
for k, (_, val) in enumerate(StratifiedGroupKFold(5, shuffle=False).split(Y, Y[:, rare], groups)):
    fold[val] = k
overall = Y.mean(0)
devs = []
for k in range(5):
    share = Y[fold == k].mean(0)
    devs += list(np.abs(share - overall)[overall > 0] / overall[overall > 0])
print(np.mean(devs), np.max(devs))
)");
    auto p = testing::RunProcess({"/usr/bin/python3", (dir / "ref.py").string(), (dir / "items.csv").string()});
    ASSERT_EQ(p.exit_code, 0) << p.err;
    double mean = 0, worst = 0;
    std::istringstream(p.out) >> mean >> worst;
    EXPECT_LE(ours.mean_deviation, mean) << "seed " << seed;
    EXPECT_LE(ours.worst_deviation, worst) << "seed " << seed;
    std::printf("seed %d: mean relative deviation %.4f (sklearn %.4f), worst %.4f (sklearn %.4f)\n",
                static_cast<int>(seed), ours.mean_deviation, mean, ours.worst_deviation, worst);
  }
}

TEST(MultilabelFolds, ClassWeightsComeFromTheTrainingPartOnly) {
  MultiLabelItems m = RandomItems(9, 100);
  std::vector<int> items = ItemBins(m, StratifyGroups(m, std::vector<double>(5, 0.2), 9));
  std::vector<bool> train(m.items());
  for (size_t i = 0; i < m.items(); ++i) train[i] = items[i] != 0;
  ClassWeights a = ComputeClassWeights(m, train, 1.0);
  MultiLabelItems changed = m;
  for (size_t i = 0; i < m.items(); ++i) {
    if (!train[i]) {
      for (size_t l = 0; l < m.labels; ++l) changed.y[i * m.labels + l] ^= 1;
    }
  }
  ClassWeights b = ComputeClassWeights(changed, train, 1.0);
  EXPECT_EQ(a.pos_weight, b.pos_weight);
  EXPECT_EQ(a.inverse_frequency, b.inverse_frequency);
  EXPECT_EQ(a.focal_alpha, b.focal_alpha);
  // By hand on a tiny set: 4 training items, label 0 positive in 1, label 1 in none.
  MultiLabelItems t;
  t.labels = 2;
  t.group_keys = {"a"};
  t.group = {0, 0, 0, 0};
  t.y = {1, 0, 0, 0, 0, 0, 0, 0};
  ClassWeights w = ComputeClassWeights(t, {true, true, true, true}, 7.5);
  EXPECT_DOUBLE_EQ(w.pos_weight[0], 3.0);
  EXPECT_DOUBLE_EQ(w.focal_alpha[0], 0.75);
  EXPECT_DOUBLE_EQ(w.inverse_frequency[0], 1.0);
  EXPECT_DOUBLE_EQ(w.pos_weight[1], 7.5);
  EXPECT_DOUBLE_EQ(w.inverse_frequency[1], 7.5);
  EXPECT_EQ(w.zero, (std::vector<size_t>{1}));
}

TEST(MultilabelFolds, HoldoutSharesFollowTheRatios) {
  MultiLabelItems m = RandomItems(21, 600);
  std::vector<int> items = ItemBins(m, StratifyGroups(m, {0.8, 0.1, 0.1}, 2));
  FoldBalance f = EvaluateBins(m, items, 3);
  EXPECT_NEAR(static_cast<double>(f.items[0]) / m.items(), 0.8, 0.02);
  EXPECT_NEAR(static_cast<double>(f.items[1]) / m.items(), 0.1, 0.02);
  EXPECT_LT(f.mean_deviation, 0.15);
}

TEST(MultilabelFolds, UnknownsAreLeftOutOfWeightsAndBalance) {
  // 6 training items; label 0: positive, positive, negative, negative,
  // unknown, unknown -> 4 known, 2 positives; label 1 all unknown.
  const uint8_t U = MultiLabelItems::kUnknown;
  MultiLabelItems t;
  t.labels = 2;
  t.group_keys = {"a"};
  t.group = {0, 0, 0, 0, 0, 0};
  t.y = {1, U, 1, U, 0, U, 0, U, U, U, U, U};
  ClassWeights w = ComputeClassWeights(t, std::vector<bool>(6, true), 5.0);
  EXPECT_EQ(w.known, (std::vector<int64_t>{4, 0}));
  EXPECT_EQ(w.unknown, (std::vector<int64_t>{2, 6}));
  EXPECT_DOUBLE_EQ(w.pos_weight[0], 1.0) << "2 known negatives / 2 positives; an unknown is no negative";
  EXPECT_DOUBLE_EQ(w.focal_alpha[0], 0.5);
  EXPECT_DOUBLE_EQ(w.pos_weight[1], 5.0);
  EXPECT_EQ(w.zero, (std::vector<size_t>{1}));
  // Balance: bin 0 holds items 0-2 (2 of 3 known positive), bin 1 items 3-5
  // (0 of 1 known); overall 2 of 4 known.
  FoldBalance f = EvaluateBins(t, {0, 0, 0, 1, 1, 1}, 2);
  EXPECT_EQ(f.unknown[0][0], 0);
  EXPECT_EQ(f.unknown[1][0], 2);
  EXPECT_NEAR(f.deviation[0][0], std::abs(2.0 / 3 - 0.5) / 0.5, 1e-12);
  EXPECT_NEAR(f.deviation[1][0], 1.0, 1e-12);
}

TEST(LabelTable, CellValues) {
  for (const char* one : {"1", "1.0", " 1 ", "true", "True", "TRUE", "1.00"}) EXPECT_EQ(ParseLabelCell(one), 1) << one;
  for (const char* zero : {"0", "0.0", "false", "False", "-0"}) EXPECT_EQ(ParseLabelCell(zero), 0) << zero;
  for (const char* unknown : {"", "  ", "nan", "NaN"}) EXPECT_EQ(ParseLabelCell(unknown), kLabelUnknown) << unknown;
  for (const char* bad : {"2", "yes", "0.5", "-1", "1x", "inf"}) EXPECT_FALSE(ParseLabelCell(bad)) << bad;
}

std::map<std::string, int64_t> Counters(const rapidjson::Document& d) {
  std::map<std::string, int64_t> out;
  for (const auto& m : d["counters"].GetObject()) out[m.name.GetString()] = m.value.GetInt64();
  return out;
}

rapidjson::Document Json(const fs::path& file) {
  rapidjson::Document d;
  d.Parse(testing::ReadText(file).c_str());
  EXPECT_FALSE(d.HasParseError()) << file;
  return d;
}

// The problems of a report as "item: reason" lines.
std::vector<std::string> Problems(const rapidjson::Document& d) {
  std::vector<std::string> out;
  for (const auto& p : d["problems"].GetArray()) out.push_back(std::string(p["item"].GetString()) + ": " + p["reason"].GetString());
  return out;
}

bool AnyContains(const std::vector<std::string>& lines, const std::string& part) {
  return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return testing::Contains(l, part); });
}

// A CSV's rows by the value of its first column.
std::map<std::string, std::vector<std::string>> RowsByFirst(const fs::path& file, std::vector<std::string>* header) {
  Result<CsvTable> t = ReadCsv(file.string());
  EXPECT_TRUE(t.ok()) << file;
  std::map<std::string, std::vector<std::string>> out;
  if (!t.ok()) return out;
  EXPECT_TRUE(t->errors.empty()) << file;
  if (header) *header = t->header;
  for (const CsvRow& r : t->rows) out[r.fields[0]] = r.fields;
  return out;
}

// The shipped CT-RATE config (label columns found by header) on generated
// volumes whose labels.csv has, in Cardiomegaly, a "2" on one row, a blank
// on another and "1.0"/"0.0" on a third; and a "true" in Emphysema.
TEST(FoldsStage, OneBadCellCostsOneCellNotTheLabel) {
  testing::TempDir dir;
  testing::ProcessResult g = testing::RunProcess({MEDPIPE_CTVOLGEN, "--out", (dir / "data").string(), "--patients",
                                                  "8", "--size", "24", "--slices", "8", "--dicom-patients", "0"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  Result<CsvTable> labels = ReadCsv((dir / "data/labels.csv").string());
  ASSERT_TRUE(labels.ok());
  const int card = labels->Column("Cardiomegaly"), emph = labels->Column("Emphysema");
  ASSERT_GE(card, 0);
  ASSERT_GE(labels->rows.size(), 6u);
  std::vector<CsvRow>& rows = labels->rows;
  auto volume = [&](size_t r) { return "volumes/" + VolumeName(rows[r].fields[0], true) + ".npy"; };
  const std::string was_card = rows[2].fields[card];
  rows[0].fields[card] = "2";
  rows[1].fields[card] = "";
  rows[2].fields[card] = was_card + ".0";
  rows[3].fields[emph] = rows[3].fields[emph] == "1" ? "true" : "false";
  std::string text = Join(labels->header, ",") + "\n";
  for (const CsvRow& r : rows) text += Join(r.fields, ",") + "\n";
  testing::WriteText(dir / "data/labels.csv", text);

  std::string yaml = testing::ReadText(fs::path(MEDPIPE_SOURCE_DIR) / "configs/ct_rate.yaml");
  auto replace = [&](const std::string& from, const std::string& to) {
    size_t at = yaml.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    yaml.replace(at, from.size(), to);
  };
  replace("workdir: ../examples/work/ct_rate", "workdir: work");
  replace("volumes: ../examples/data/ct_rate/volumes", "volumes: data/volumes");
  replace("      dicoms: ../examples/data/ct_rate/dicom\n", "");
  replace("metadata_csv: ../examples/data/ct_rate/metadata.csv", "metadata_csv: data/metadata.csv");
  replace("labels_csv: ../examples/data/ct_rate/labels.csv", "labels_csv: data/labels.csv");
  replace("shape: [96, 96, 48]", "shape: [16, 16, 6]");
  replace("folds: 5", "folds: 3");
  auto r = testing::RunYaml(BuiltinRegistry(), dir.path(), yaml);
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("prep").reason << r.Of("folds").reason;

  Result<Dataset> ds = ReadCoco(dir / "work/prep/dataset.json");
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ds->categories.size(), 18u) << "no label vanishes";
  rapidjson::Document prep = Json(dir / "work/prep/report.json");
  auto prep_problems = Problems(prep);
  EXPECT_TRUE(AnyContains(prep_problems, fmt::format("labels.csv:{}: column 'Cardiomegaly': '2' is not 0, 1",
                                                     rows[0].line)))
      << Join(prep_problems, "\n");
  EXPECT_EQ(Counters(prep)["unknown_cells.Cardiomegaly"], 2);
  EXPECT_EQ(Counters(prep).count("unknown_cells.Emphysema"), 0u) << "true/false are values";

  std::vector<std::string> header;
  auto folds = RowsByFirst(dir / "work/folds/folds.csv", &header);
  auto col = std::find(header.begin(), header.end(), "Cardiomegaly") - header.begin();
  ASSERT_LT(static_cast<size_t>(col), header.size());
  ASSERT_TRUE(folds.count(volume(0)) && folds.count(volume(1)) && folds.count(volume(2)));
  EXPECT_EQ(folds[volume(0)][col], "") << "the bad cell is unknown";
  EXPECT_EQ(folds[volume(1)][col], "") << "the blank cell is unknown";
  EXPECT_EQ(folds[volume(2)][col], was_card) << "1.0/0.0 read as 1/0";
  rapidjson::Document fr = Json(dir / "work/folds/report.json");
  EXPECT_EQ(Counters(fr)["unknown_labels.Cardiomegaly"], 2);
  // Class weights count only known labels: per fold, known + unknown = items.
  int64_t unknown_in_training = 0;
  for (int k = 0; k < 3; ++k) {
    rapidjson::Document w = Json(dir / fmt::format("work/folds/folds/fold_{}/class_weights.json", k));
    const size_t l = static_cast<size_t>(col - 3);  // file_name, patient, fold
    ASSERT_EQ(std::string(w["labels"][l].GetString()), "Cardiomegaly");
    EXPECT_EQ(w["known"][l].GetInt64() + w["unknown"][l].GetInt64(), w["training_items"].GetInt64());
    unknown_in_training += w["unknown"][l].GetInt64();
    const double p = w["positives"][l].GetDouble(), n = w["known"][l].GetDouble();
    if (p > 0) {
      EXPECT_DOUBLE_EQ(w["pos_weight"][l].GetDouble(), (n - p) / p);
    }
  }
  EXPECT_EQ(unknown_in_training, 2 * 2) << "each unknown is in the training part of 2 of 3 folds";
}

// folds on a label table alone: ids, a patient column, unknowns, a text
// column left out with a word, a bad cell named; the console says per label
// how many are unknown.
TEST(FoldsStage, FoldsFromALabelTableAlone) {
  testing::TempDir dir;
  std::string csv = "AccessionNo,patient,notes,Nodule,Effusion,Calcification\n";
  for (int i = 0; i < 24; ++i) {
    const int patient = i / 2;
    std::string nodule = i % 3 == 0 ? "1" : "0", effusion = i % 4 == 0 ? "1.0" : "0.0",
                calc = i % 5 == 0 ? "true" : "false";
    if (i == 5) effusion = "";
    if (i == 7) nodule = "2";
    csv += fmt::format("acc_{},P{},\"note {}, free text\",{},{},{}\n", i, patient, i, nodule, effusion, calc);
  }
  testing::WriteText(dir / "labels.csv", csv);
  testing::WriteText(dir / "p.yaml", R"(workdir: work
seed: 7
stages:
  - id: folds
    kind: folds
    params:
      labels_csv: labels.csv
      id_column: AccessionNo
      patient_column: patient
      folds: 3
)");
  testing::ProcessResult run = testing::RunMedpipe({"run", (dir / "p.yaml").string()});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  const std::string console = run.out + run.err;
  EXPECT_TRUE(testing::Contains(console, "Nodule: 1 of 24")) << console;
  EXPECT_TRUE(testing::Contains(console, "Effusion: 1 of 24")) << console;
  EXPECT_TRUE(testing::Contains(console, "column 'notes' is not a label column")) << console;

  std::vector<std::string> header;
  auto rows = RowsByFirst(dir / "work/folds/folds.csv", &header);
  EXPECT_EQ(header, (std::vector<std::string>{"AccessionNo", "patient", "fold", "Nodule", "Effusion", "Calcification"}));
  ASSERT_EQ(rows.size(), 24u);
  std::map<std::string, std::set<std::string>> folds_of_patient;
  for (const auto& [id, f] : rows) folds_of_patient[f[1]].insert(f[2]);
  EXPECT_EQ(folds_of_patient.size(), 12u);
  for (const auto& [patient, folds] : folds_of_patient) EXPECT_EQ(folds.size(), 1u) << patient;
  EXPECT_EQ(rows["acc_5"][4], "");
  EXPECT_EQ(rows["acc_7"][3], "");
  EXPECT_EQ(rows["acc_4"][4], "1");
  EXPECT_EQ(rows["acc_5"][5], "1") << "true";
  for (int k = 0; k < 3; ++k) {
    auto val = RowsByFirst(dir / fmt::format("work/folds/folds/fold_{}/val.csv", k), nullptr);
    auto train = RowsByFirst(dir / fmt::format("work/folds/folds/fold_{}/train.csv", k), nullptr);
    EXPECT_EQ(val.size() + train.size(), 24u);
    EXPECT_TRUE(fs::exists(dir / fmt::format("work/folds/folds/fold_{}/class_weights.json", k)));
  }
  EXPECT_FALSE(fs::exists(dir / "work/folds/dataset.json")) << "a table has no files to name";
  rapidjson::Document report = Json(dir / "work/folds/report.json");
  auto problems = Problems(report);
  EXPECT_TRUE(AnyContains(problems, "labels.csv:9: column 'Nodule': '2' is not 0, 1")) << Join(problems, "\n");
  EXPECT_EQ(Counters(report)["non_label_columns"], 1);
  EXPECT_EQ(Counters(report)["unknown_labels.Nodule"], 1);
  EXPECT_EQ(Counters(report)["rows"], 24);

  // A changed table redoes the stage (the CSV is fingerprinted).
  testing::WriteText(dir / "labels.csv", csv + "acc_99,P99,x,1,1,1\n");
  ASSERT_EQ(testing::RunMedpipe({"run", (dir / "p.yaml").string()}).exit_code, 0);
  EXPECT_EQ(RowsByFirst(dir / "work/folds/folds.csv", nullptr).size(), 25u);
}

TEST(FoldsStage, LabelSourceErrorsAreConfigErrors) {
  testing::TempDir dir;
  testing::WriteText(dir / "labels.csv", "VolumeName,A\nv1,1\n");
  auto run = [&](const std::string& stages) {
    testing::RunYaml(BuiltinRegistry(), dir.path(), "workdir: work\nstages:\n" + stages);
  };
  EXPECT_THROW(run("  - id: f\n    kind: folds\n    params: {folds: 2}\n"), std::runtime_error);
  EXPECT_THROW(run("  - id: a\n    kind: annotate\n    params: {images: .}\n"
                   "  - id: f\n    kind: folds\n    inputs: a\n    params: {labels_csv: labels.csv}\n"),
               std::runtime_error);
  EXPECT_THROW(run("  - id: f\n    kind: folds\n    params: {labels_csv: labels.csv, patient_pattern: 'x'}\n"),
               std::runtime_error);
}

// folds links every volume into its folder: by default as hard links (the
// copy of the folder keeps them when the workdir's prep folder is gone).
TEST(FoldsStage, CopiedFoldsKeepTheirVolumes) {
  testing::TempDir dir;
  testing::ProcessResult g = testing::RunProcess({MEDPIPE_CTVOLGEN, "--out", (dir / "data").string(), "--patients",
                                                  "4", "--size", "16", "--slices", "6", "--dicom-patients", "0"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  auto r = testing::RunYaml(BuiltinRegistry(), dir.path(), R"(workdir: work
stages:
  - id: prep
    kind: ctprep
    params: {volumes: data/volumes, labels_csv: data/labels.csv, preview_slices: 0}
  - id: folds
    kind: folds
    inputs: prep
    params: {folds: 2}
)");
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("prep").reason << r.Of("folds").reason;
  std::map<std::string, std::string> bytes;
  Result<Dataset> ds = ReadCoco(dir / "work/folds/dataset.json");
  ASSERT_TRUE(ds.ok());
  ASSERT_FALSE(ds->images.empty());
  for (const Image& img : ds->images) bytes[img.file_name] = testing::ReadText(dir / "work/prep" / img.file_name);
  const fs::path copy = dir / "delivered";
  auto cp = testing::RunProcess({"/bin/cp", "-r", (dir / "work/folds").string(), copy.string()});
  ASSERT_EQ(cp.exit_code, 0) << cp.err;
  fs::remove_all(dir / "work/prep");
  fs::remove_all(dir / "data");
  for (const auto& [file, content] : bytes) {
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(copy / file))) << file;
    EXPECT_EQ(testing::ReadText(copy / file), content) << file;
  }
  // Every file the CSVs name is in the copy.
  auto rows = RowsByFirst(copy / "folds.csv", nullptr);
  EXPECT_EQ(rows.size(), bytes.size());
  for (const auto& [file, row] : rows) EXPECT_TRUE(fs::exists(copy / file)) << file;
}

}  // namespace
}  // namespace medpipe
