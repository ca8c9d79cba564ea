// folds: patient-grouped, multi-label stratified k-fold cross-validation
// (or a holdout split) of items with labels, and class weights per training
// part. A thin adapter over stages/multilabel_folds.h.
//
// Items come from one of two places:
//  - an input dataset (ctprep: one image per volume, or one per slice in 2-D
//    mode) with `labels` naming the positive categories and the attribute
//    unknown_labels (stages/label_table.h) the unknown ones; the categories
//    are the label universe. Images with attribute labelled == false
//    (ctprep's volumes without a label row) are left out and counted. Every
//    image is materialised in this folder (`materialize`, as export).
//  - a label table alone (`labels_csv`, no input): one item per row, named
//    by `id_column`, the patient from `patient_column` (else
//    `patient_pattern` on the id), the labels read as label_table.h says.
//    Nothing is linked; the CSVs name the ids; no dataset.json.
// Groups are patients: every item of a patient id lands in one fold's
// validation part; an item without one is its own group (counted).
//
// Unknown labels (blank or unreadable cells) are neither positive nor
// negative: left out of that label's stratification, balance shares and
// class weights, written as an empty cell in the CSVs, and counted per label
// on the console, in balance.json and class_weights.json.
//
// Outputs (paths in the CSVs relative to this stage's folder):
//   kfold:   folds.csv (file_name or the id column, patient, fold, labels...),
//            folds/fold_<k>/train.csv, val.csv, class_weights.json;
//   holdout: holdout/<split>.csv per split, holdout/class_weights.json
//            from the first split (the training part);
//   both:    balance.json (per bin and label the held-out positives, unknowns
//            and the relative deviation of their share; zero-positive flags)
//            and, from a dataset, dataset.json with attributes.fold (kfold)
//            or split (holdout).
// Class weights come from the training part only; a label without
// positives there gets `zero_positive_weight` and a warning.
#include <fmt/format.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <cmath>
#include <map>
#include <regex>
#include <set>

#include "stages/label_table.h"
#include "stages/link_images.h"
#include "stages/multilabel_folds.h"
#include "stages/registry.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {
namespace {

struct FoldsOptions {
  bool kfold = true;
  int folds = 5;
  std::vector<std::pair<std::string, double>> ratios;
  double zero_value = 1.0;
  LinkMode materialize = LinkMode::kHardlink;
  // A label table alone (no input) when labels_csv is set.
  fs::path labels_csv;
  LabelTableOptions table;
  std::string patient_pattern;
  std::regex patient_regex;
};

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

using Pretty = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

void IntArray(Pretty& j, const char* key, const std::vector<int64_t>& v) {
  j.Key(key);
  j.StartArray();
  for (int64_t x : v) j.Int64(x);
  j.EndArray();
}

std::string WeightsJson(const ClassWeights& w, const std::vector<std::string>& labels, double zero_value) {
  rapidjson::StringBuffer buf;
  Pretty j(buf);
  j.StartObject();
  j.Key("training_items");
  j.Int64(w.n);
  j.Key("zero_positive_value");
  j.Double(zero_value);
  j.Key("unknowns");
  j.String("left out per label: positives, known and every weight count only the items whose label is known");
  j.Key("labels");
  j.StartArray();
  for (const auto& l : labels) j.String(l);
  j.EndArray();
  auto series = [&](const char* key, const std::vector<double>& v) {
    j.Key(key);
    j.StartArray();
    for (double x : v) j.Double(x);
    j.EndArray();
  };
  IntArray(j, "positives", w.positives);
  IntArray(j, "known", w.known);
  IntArray(j, "unknown", w.unknown);
  series("pos_weight", w.pos_weight);
  series("inverse_frequency", w.inverse_frequency);
  series("focal_alpha", w.focal_alpha);
  j.Key("zero_positive_labels");
  j.StartArray();
  for (size_t l : w.zero) j.String(labels[l]);
  j.EndArray();
  j.EndObject();
  return std::string(buf.GetString()) + "\n";
}

// What the folds are made of, from a dataset or a table: per item its name
// (the CSVs' first column) and patient, the labels as MultiLabelItems.
struct FoldItems {
  std::string name_column;  // "file_name" or the table's id column
  std::vector<std::string> labels;
  std::vector<std::string> names, patients;
  MultiLabelItems m;
  Dataset out;  // from a dataset: the kept images, in item order
  bool from_dataset = false;

  // Appends an item; `patient` empty: its own group.
  size_t Add(const std::string& name, const std::string& patient, std::map<std::string, uint32_t>& group_index) {
    std::string key = patient.empty() ? "image\x1f" + name : "patient\x1f" + patient;
    auto [it, inserted] = group_index.try_emplace(key, static_cast<uint32_t>(m.group_keys.size()));
    if (inserted) m.group_keys.push_back(key);
    m.group.push_back(it->second);
    names.push_back(name);
    patients.push_back(patient);
    size_t row = m.y.size();
    m.y.resize(row + labels.size(), 0);
    return row;
  }
};

class FoldsStage : public Stage {
 public:
  explicit FoldsStage(FoldsOptions o) : o_(std::move(o)) {}

  Result<std::string> ExternalFingerprint() const override {
    if (o_.labels_csv.empty()) return std::string();
    FileStat st = StatPath(o_.labels_csv);
    return Hasher().Field(o_.labels_csv.string()).Field(fmt::format("{}:{}", st.size, st.mtime_ns)).HexDigest();
  }

  Status Run(StageContext& ctx) const override {
    FoldItems f;
    if (o_.labels_csv.empty()) {
      MEDPIPE_RETURN_IF_ERROR(FromDataset(ctx, f));
    } else {
      MEDPIPE_RETURN_IF_ERROR(FromTable(ctx, f));
    }
    const MultiLabelItems& items = f.m;
    const std::vector<std::string>& labels = f.labels;
    if (items.items() == 0) return Status::Failed("no labelled items to split");
    LogUnknowns(ctx, f);

    std::vector<std::string> bin_names;
    std::vector<double> shares;
    if (o_.kfold) {
      for (int k = 0; k < o_.folds; ++k) bin_names.push_back(fmt::format("fold_{}", k)), shares.push_back(1.0 / o_.folds);
    } else {
      for (const auto& [name, share] : o_.ratios) bin_names.push_back(name), shares.push_back(share);
    }
    std::vector<int> bin_of_group = StratifyGroups(items, shares, ctx.seed());
    std::vector<int> bin_of(items.items());
    for (size_t i = 0; i < items.items(); ++i) bin_of[i] = bin_of_group[items.group[i]];

    // Independent check on the output: one bin per patient.
    std::map<std::string, std::set<int>> seen;
    for (size_t i = 0; i < items.items(); ++i) seen[items.group_keys[items.group[i]]].insert(bin_of[i]);
    for (const auto& [key, b] : seen) {
      if (b.size() > 1) return Status::Failed("patient leakage between folds: " + key.substr(key.find('\x1f') + 1));
    }

    if (f.from_dataset) {
      const fs::path in_dir = ctx.inputs()[0].dir;
      std::vector<LinkSpec> links;
      for (const Image& img : f.out.images) links.push_back(LinkSpec{img.file_name, in_dir / img.file_name});
      MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links, o_.materialize));
      for (size_t i = 0; i < linked.size(); ++i) {
        if (!linked[i]) return Status::Failed("could not link " + f.out.images[i].file_name);
      }
    }

    // Rows of the CSVs, in item order. An unknown label is an empty cell.
    std::string header = CsvField(f.name_column) + ",patient";
    std::string labels_header;
    for (const auto& l : labels) labels_header += "," + CsvField(l);
    auto row = [&](size_t i, const std::string& extra) {
      std::string r = CsvField(f.names[i]) + "," + CsvField(f.patients[i]) + extra;
      for (size_t l = 0; l < labels.size(); ++l) {
        r += !items.known(i, l) ? "," : items.positive(i, l) ? ",1" : ",0";
      }
      return r + "\n";
    };
    const int B = static_cast<int>(bin_names.size());
    if (o_.kfold) {
      std::string all = header + ",fold" + labels_header + "\n";
      for (size_t i = 0; i < items.items(); ++i) all += row(i, fmt::format(",{}", bin_of[i]));
      MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("folds.csv", all));
      for (int k = 0; k < B; ++k) {
        std::string train = header + labels_header + "\n", val = train;
        std::vector<bool> in_train(items.items());
        for (size_t i = 0; i < items.items(); ++i) {
          in_train[i] = bin_of[i] != k;
          (in_train[i] ? train : val) += row(i, "");
        }
        const std::string dir = fmt::format("folds/fold_{}/", k);
        MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput(dir + "train.csv", train));
        MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput(dir + "val.csv", val));
        MEDPIPE_RETURN_IF_ERROR(WriteWeights(ctx, items, in_train, labels, dir, bin_names[k]));
      }
      for (size_t i = 0; i < f.out.images.size(); ++i) {
        f.out.images[i].attributes["fold"] = int64_t{bin_of[i]};
        f.out.images[i].split = "train";
      }
    } else {
      for (int k = 0; k < B; ++k) {
        std::string csv = header + labels_header + "\n";
        for (size_t i = 0; i < items.items(); ++i) {
          if (bin_of[i] == k) csv += row(i, "");
        }
        MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("holdout/" + bin_names[k] + ".csv", csv));
      }
      std::vector<bool> in_train(items.items());
      for (size_t i = 0; i < items.items(); ++i) in_train[i] = bin_of[i] == 0;
      MEDPIPE_RETURN_IF_ERROR(WriteWeights(ctx, items, in_train, labels, "holdout/", bin_names[0]));
      for (size_t i = 0; i < f.out.images.size(); ++i) {
        f.out.images[i].split = bin_names[static_cast<size_t>(bin_of[i])];
      }
    }
    MEDPIPE_RETURN_IF_ERROR(WriteBalance(ctx, items, bin_of, bin_names, labels));
    ctx.Count(f.from_dataset ? "images" : "rows", static_cast<int64_t>(items.items()));
    ctx.Count("patients", static_cast<int64_t>(items.group_keys.size()));
    return f.from_dataset ? ctx.WriteDataset(f.out) : Status::OK();
  }

 private:
  Status FromDataset(StageContext& ctx, FoldItems& f) const {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset in, ctx.ReadInputDataset(0));
    f.from_dataset = true;
    f.name_column = "file_name";
    std::map<std::string, size_t> label_index;
    for (const Category& c : in.categories) label_index.emplace(c.name, f.labels.size()), f.labels.push_back(c.name);
    f.out.categories = in.categories;
    f.m.labels = f.labels.size();
    std::map<std::string, uint32_t> group_index;
    for (const Image& img : in.images) {
      auto lab = img.attributes.find("labelled");
      if (lab != img.attributes.end() && std::holds_alternative<bool>(lab->second) && !std::get<bool>(lab->second)) {
        ctx.Count("unlabelled_left_out");
        continue;
      }
      if (!IsContainedRelativePath(img.file_name)) {
        ctx.Problem(img.file_name, "file_name leaves the dataset folder; image skipped");
        ctx.Count("unsafe_file_names");
        continue;
      }
      if (img.patient_id.empty()) ctx.Count("images_without_patient");
      const size_t row = f.Add(img.file_name, img.patient_id, group_index);
      auto set = [&](const std::string& l, uint8_t value) {
        auto li = label_index.find(l);
        if (li == label_index.end()) {
          ctx.Problem(img.file_name, "label '" + l + "' is not a category; ignored");
          ctx.Count("unknown_categories");
          return;
        }
        f.m.y[row + li->second] = value;
      };
      for (const std::string& l : UnknownLabels(img)) set(l, MultiLabelItems::kUnknown);
      for (const std::string& l : img.labels) set(l, 1);
      f.out.images.push_back(img);
    }
    return Status::OK();
  }

  Status FromTable(StageContext& ctx, FoldItems& f) const {
    MEDPIPE_ASSIGN_OR_RETURN(LabelTable t, ReadLabelTable(o_.labels_csv, o_.table, ctx));
    f.name_column = o_.table.id_column;
    f.labels = t.labels;
    f.m.labels = t.labels.size();
    std::map<std::string, uint32_t> group_index;
    for (const LabelRow& r : t.rows) {
      std::string patient = r.patient;
      if (patient.empty() && !o_.patient_pattern.empty()) {
        std::smatch m;
        if (std::regex_search(r.id, m, o_.patient_regex) && m.size() > 1) patient = m[1].str();
      }
      if (patient.empty()) {
        ctx.Count("rows_without_patient");
        ctx.Problem(fmt::format("{}:{}", t.file, r.line),
                    o_.table.patient_column.empty()
                        ? fmt::format("patient_pattern does not match '{}'; the row is its own patient", r.id)
                        : fmt::format("no patient in column '{}'; the row is its own patient", o_.table.patient_column),
                    "row without patient");
      }
      const size_t row = f.Add(r.id, patient, group_index);
      for (size_t l = 0; l < t.labels.size(); ++l) {
        f.m.y[row + l] = r.values[l] == kLabelUnknown ? MultiLabelItems::kUnknown : static_cast<uint8_t>(r.values[l]);
      }
    }
    return Status::OK();
  }

  // Per label, the items whose label is unknown, on the console and in the
  // counters (`unknown_labels.<label>`).
  static void LogUnknowns(StageContext& ctx, const FoldItems& f) {
    std::string text;
    int64_t total = 0;
    for (size_t l = 0; l < f.labels.size(); ++l) {
      int64_t n = 0;
      for (size_t i = 0; i < f.m.items(); ++i) n += !f.m.known(i, l);
      if (n == 0) continue;
      total += n;
      ctx.Count("unknown_labels." + f.labels[l], n);
      text += fmt::format("\n  {}: {} of {}", f.labels[l], n, f.m.items());
    }
    ctx.Count("unknown_labels", total);
    ctx.Log(total == 0 ? std::string("unknown labels: none")
                       : "unknown labels (left out of that label's stratification, balance and class weights; "
                         "empty cells in the CSVs):" + text);
  }

  Status WriteWeights(StageContext& ctx, const MultiLabelItems& items, const std::vector<bool>& in_train,
                      const std::vector<std::string>& labels, const std::string& dir, const std::string& bin) const {
    ClassWeights w = ComputeClassWeights(items, in_train, o_.zero_value);
    for (size_t l : w.zero) {
      ctx.Log(fmt::format("warning: label '{}' has no positives in the training part of {}; its weights are {}",
                          labels[l], bin, o_.zero_value));
      ctx.Problem(bin + "/" + labels[l], "no positives in the training part; weights set to zero_positive_weight");
      ctx.Count("zero_positive_train_labels");
    }
    return ctx.WriteOutput(dir + "class_weights.json", WeightsJson(w, labels, o_.zero_value));
  }

  Status WriteBalance(StageContext& ctx, const MultiLabelItems& items, const std::vector<int>& bin_of,
                      const std::vector<std::string>& bins, const std::vector<std::string>& labels) const {
    FoldBalance f = EvaluateBins(items, bin_of, static_cast<int>(bins.size()));
    rapidjson::StringBuffer buf;
    Pretty j(buf);
    j.StartObject();
    j.Key("mean_relative_deviation");
    j.Double(f.mean_deviation);
    j.Key("worst_relative_deviation");
    j.Double(f.worst_deviation);
    j.Key("zero_positive_pairs");
    j.Int64(f.zero_positive_pairs);
    j.Key("unavoidable_zero_positive_pairs");
    j.Int64(f.unavoidable_zero_pairs);
    j.Key("bins");
    j.StartArray();
    std::string table = fmt::format("{:<40}", "label \\ held-out positives");
    for (const auto& b : bins) table += fmt::format(" {:>8}", b);
    table += "\n";
    for (size_t b = 0; b < bins.size(); ++b) {
      j.StartObject();
      j.Key("name");
      j.String(bins[b]);
      j.Key("items");
      j.Int64(f.items[b]);
      j.Key("labels");
      j.StartArray();
      for (size_t l = 0; l < labels.size(); ++l) {
        j.StartObject();
        j.Key("label");
        j.String(labels[l]);
        j.Key("positives");
        j.Int64(f.positives[b][l]);
        j.Key("unknown");
        j.Int64(f.unknown[b][l]);
        j.Key("relative_deviation");
        j.Double(f.deviation[b][l]);
        j.Key("zero_positives");
        j.Bool(f.positives[b][l] == 0);
        j.EndObject();
        if (f.positives[b][l] == 0) {
          ctx.Problem(bins[b] + "/" + labels[l], "no positives in the held-out part");
          ctx.Count("zero_positive_heldout_labels");
        }
      }
      j.EndArray();
      j.EndObject();
    }
    j.EndArray();
    j.EndObject();
    for (size_t l = 0; l < labels.size(); ++l) {
      table += fmt::format("{:<40}", labels[l].substr(0, 40));
      for (size_t b = 0; b < bins.size(); ++b) {
        table += fmt::format(" {:>5}{:<3}", f.positives[b][l], f.positives[b][l] == 0 ? " !" : "");
      }
      table += "\n";
    }
    table += fmt::format("mean relative deviation {:.3f}, worst {:.3f}; zero-positive pairs {} (unavoidable {})",
                         f.mean_deviation, f.worst_deviation, f.zero_positive_pairs, f.unavoidable_zero_pairs);
    ctx.Log(table);
    return ctx.WriteOutput("balance.json", std::string(buf.GetString()) + "\n");
  }

  FoldsOptions o_;
};

Result<std::unique_ptr<Stage>> MakeFolds(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  FoldsOptions o;
  o.kfold = p.GetString("mode") == "kfold";
  o.materialize = MaterializeMode(p.GetString("materialize"));
  int64_t folds = p.GetInt("folds");
  if (folds < 2 || folds > 100) return p.Error("folds", "needs 2 to 100 folds");
  o.folds = static_cast<int>(folds);
  if (!o.kfold) {
    double sum = 0;
    std::set<std::string> names;
    for (const auto& [name, text] : p.GetStringMap("ratios")) {
      char* end = nullptr;
      double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !std::isfinite(v) || v <= 0 || v > 1) {
        return p.Error("ratios", fmt::format("'{}: {}' is not a share in (0, 1]", name, text));
      }
      if (!IsContainedRelativePath(name) || name.find('/') != std::string::npos || !names.insert(name).second) {
        return p.Error("ratios", fmt::format("split name '{}' is not a plain name or is listed twice", name));
      }
      o.ratios.emplace_back(name, v);
      sum += v;
    }
    if (o.ratios.size() < 2) return p.Error("ratios", "name at least two splits, the first the training part");
    if (std::abs(sum - 1.0) > 1e-6) return p.Error("ratios", fmt::format("the shares sum to {}, not 1", sum));
  }
  o.zero_value = p.GetFloat("zero_positive_weight");
  if (!std::isfinite(o.zero_value) || o.zero_value < 0) return p.Error("zero_positive_weight", "must be >= 0");
  o.labels_csv = p.GetString("labels_csv");
  if (d.inputs.empty() && o.labels_csv.empty()) {
    return p.Error("labels_csv", "name a label table (labels_csv, with id_column) or an input dataset");
  }
  if (!d.inputs.empty() && !o.labels_csv.empty()) {
    return p.Error("labels_csv", "labels come from the input dataset or from labels_csv, not both");
  }
  o.table.id_column = p.GetString("id_column");
  o.table.patient_column = p.GetString("patient_column");
  o.table.label_columns = p.GetStringList("label_columns");
  o.table.exclude_columns = p.GetStringList("exclude_columns");
  if (!o.table.label_columns.empty() && !o.table.exclude_columns.empty()) {
    return p.Error("exclude_columns", "give label_columns or exclude_columns, not both");
  }
  if (o.table.id_column.empty()) return p.Error("id_column", "name the column of item ids");
  o.patient_pattern = p.GetString("patient_pattern");
  if (!o.patient_pattern.empty()) {
    try {
      o.patient_regex = std::regex(o.patient_pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return p.Error("patient_pattern", std::string("not a valid regular expression: ") + e.what());
    }
    if (o.patient_regex.mark_count() < 1) return p.Error("patient_pattern", "needs a capture group for the patient");
  }
  return std::unique_ptr<Stage>(new FoldsStage(std::move(o)));
}

}  // namespace

void RegisterFolds(Registry* registry) {
  KindSpec spec;
  spec.name = "folds";
  spec.version = 2;  // 2: unknown labels, materialised files, a label table alone
  spec.help = "patient-grouped multi-label stratified k folds (or holdout) with per-fold class weights "
              "from the training part, of a dataset or of a label table alone (labels_csv)";
  spec.min_inputs = 0;
  spec.max_inputs = 1;
  spec.params = {
      {"mode", ParamType::kString, "kfold", false, "kfold or holdout", {"kfold", "holdout"}},
      {"folds", ParamType::kInt, "5", false, "number of folds (kfold)", {}},
      {"ratios", ParamType::kStringMap, "{train: 0.8, valid: 0.1, test: 0.1}", false,
       "holdout: split name -> share, in order, the first the training part", {}},
      {"zero_positive_weight", ParamType::kFloat, "1.0", false,
       "pos_weight and inverse-frequency weight of a label with no training positives", {}},
      MaterializeParam(),
      {"labels_csv", ParamType::kPath, "", false,
       "without an input: a label table (one row per item; 0/1/true/false, blank = unknown) to make folds of", {}},
      {"id_column", ParamType::kString, "VolumeName", false, "labels_csv: the column naming each item", {}},
      {"patient_column", ParamType::kString, "", false,
       "labels_csv: the column of patient ids; empty: patient_pattern on the id", {}},
      {"patient_pattern", ParamType::kString, "^([A-Za-z]+_[0-9]+)", false,
       "labels_csv without patient_column: regex on the id whose group 1 is the patient (train_1_a_1 -> train_1); "
       "empty: each row its own patient",
       {}},
      {"label_columns", ParamType::kStringList, "[]", false,
       "labels_csv: the label columns; empty: every column but the id, the patient and exclude_columns", {}},
      {"exclude_columns", ParamType::kStringList, "[]", false,
       "labels_csv: columns that are not labels (e.g. report_text)", {}},
  };
  registry->Add(StageKind{std::move(spec), MakeFolds});
}

}  // namespace medpipe
