// folds: patient-grouped, multi-label stratified k-fold cross-validation
// (or a holdout split) of a dataset with image-level labels, and class
// weights per training part. A thin adapter over stages/multilabel_folds.h.
//
// Items are the input's images (ctprep: one per volume, or one per slice in
// 2-D mode) with `labels` naming their positive categories; the categories
// are the label universe. Images with attribute labelled == false (ctprep's
// volumes without a label row) are left out and counted. Groups are
// patients: every image of a patient id lands in one fold's validation part;
// an image without one is its own group (counted).
//
// Outputs (paths in the CSVs relative to this stage's folder, where every
// image is linked):
//   kfold:   folds.csv (file_name, patient, fold, labels...),
//            folds/fold_<k>/train.csv, val.csv, class_weights.json;
//   holdout: holdout/<split>.csv per split, holdout/class_weights.json
//            from the first split (the training part);
//   both:    balance.json (per bin and label the held-out positives and the
//            relative deviation of their share; zero-positive flags) and
//            dataset.json with attributes.fold (kfold) or split (holdout).
// Class weights come from the training part only; a label without
// positives there gets `zero_positive_weight` and a warning.
#include <fmt/format.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <cmath>
#include <map>
#include <set>

#include "stages/link_images.h"
#include "stages/multilabel_folds.h"
#include "stages/registry.h"
#include "util/strings.h"

namespace medpipe {
namespace {

struct FoldsOptions {
  bool kfold = true;
  int folds = 5;
  std::vector<std::pair<std::string, double>> ratios;
  double zero_value = 1.0;
};

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

using Pretty = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

std::string WeightsJson(const ClassWeights& w, const std::vector<std::string>& labels, double zero_value) {
  rapidjson::StringBuffer buf;
  Pretty j(buf);
  j.StartObject();
  j.Key("training_items");
  j.Int64(w.n);
  j.Key("zero_positive_value");
  j.Double(zero_value);
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
  j.Key("positives");
  j.StartArray();
  for (int64_t p : w.positives) j.Int64(p);
  j.EndArray();
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

class FoldsStage : public Stage {
 public:
  explicit FoldsStage(FoldsOptions o) : o_(std::move(o)) {}

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset in, ctx.ReadInputDataset(0));
    const fs::path in_dir = ctx.inputs()[0].dir;
    std::vector<std::string> labels;
    std::map<std::string, size_t> label_index;
    for (const Category& c : in.categories) label_index.emplace(c.name, labels.size()), labels.push_back(c.name);

    Dataset out;
    out.categories = in.categories;
    MultiLabelItems items;
    items.labels = labels.size();
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
      std::string key = img.patient_id.empty() ? "image\x1f" + img.file_name : "patient\x1f" + img.patient_id;
      if (img.patient_id.empty()) ctx.Count("images_without_patient");
      auto [it, inserted] = group_index.try_emplace(key, static_cast<uint32_t>(items.group_keys.size()));
      if (inserted) items.group_keys.push_back(key);
      items.group.push_back(it->second);
      size_t row = items.y.size();
      items.y.resize(row + labels.size(), 0);
      for (const std::string& l : img.labels) {
        auto li = label_index.find(l);
        if (li == label_index.end()) {
          ctx.Problem(img.file_name, "label '" + l + "' is not a category; ignored");
          ctx.Count("unknown_labels");
          continue;
        }
        items.y[row + li->second] = 1;
      }
      out.images.push_back(img);
    }
    if (out.images.empty()) return Status::Failed("no labelled images to split");

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

    std::vector<LinkSpec> links;
    for (const Image& img : out.images) links.push_back(LinkSpec{img.file_name, in_dir / img.file_name});
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links));
    for (size_t i = 0; i < linked.size(); ++i) {
      if (!linked[i]) return Status::Failed("could not link " + out.images[i].file_name);
    }

    // Rows of the CSVs, in dataset order.
    std::string header = "file_name,patient";
    for (const auto& l : labels) header += "," + CsvField(l);
    auto row = [&](size_t i, const std::string& extra) {
      std::string r = CsvField(out.images[i].file_name) + "," + CsvField(out.images[i].patient_id) + extra;
      for (size_t l = 0; l < labels.size(); ++l) r += items.positive(i, l) ? ",1" : ",0";
      return r + "\n";
    };
    const int B = static_cast<int>(bin_names.size());
    if (o_.kfold) {
      std::string all = "file_name,patient,fold" + header.substr(std::string("file_name,patient").size()) + "\n";
      for (size_t i = 0; i < items.items(); ++i) all += row(i, fmt::format(",{}", bin_of[i]));
      MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("folds.csv", all));
      for (int k = 0; k < B; ++k) {
        std::string train = header + "\n", val = header + "\n";
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
      for (size_t i = 0; i < out.images.size(); ++i) {
        out.images[i].attributes["fold"] = int64_t{bin_of[i]};
        out.images[i].split = "train";
      }
    } else {
      for (int k = 0; k < B; ++k) {
        std::string csv = header + "\n";
        for (size_t i = 0; i < items.items(); ++i) {
          if (bin_of[i] == k) csv += row(i, "");
        }
        MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("holdout/" + bin_names[k] + ".csv", csv));
      }
      std::vector<bool> in_train(items.items());
      for (size_t i = 0; i < items.items(); ++i) in_train[i] = bin_of[i] == 0;
      MEDPIPE_RETURN_IF_ERROR(WriteWeights(ctx, items, in_train, labels, "holdout/", bin_names[0]));
      for (size_t i = 0; i < out.images.size(); ++i) out.images[i].split = bin_names[static_cast<size_t>(bin_of[i])];
    }
    MEDPIPE_RETURN_IF_ERROR(WriteBalance(ctx, items, bin_of, bin_names, labels));
    ctx.Count("images", static_cast<int64_t>(out.images.size()));
    ctx.Count("patients", static_cast<int64_t>(items.group_keys.size()));
    return ctx.WriteDataset(out);
  }

 private:
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
  return std::unique_ptr<Stage>(new FoldsStage(std::move(o)));
}

}  // namespace

void RegisterFolds(Registry* registry) {
  KindSpec spec;
  spec.name = "folds";
  spec.version = 1;
  spec.help = "patient-grouped multi-label stratified k folds (or holdout) with per-fold class weights "
              "from the training part";
  spec.min_inputs = 1;
  spec.max_inputs = 1;
  spec.params = {
      {"mode", ParamType::kString, "kfold", false, "kfold or holdout", {"kfold", "holdout"}},
      {"folds", ParamType::kInt, "5", false, "number of folds (kfold)", {}},
      {"ratios", ParamType::kStringMap, "{train: 0.8, valid: 0.1, test: 0.1}", false,
       "holdout: split name -> share, in order, the first the training part", {}},
      {"zero_positive_weight", ParamType::kFloat, "1.0", false,
       "pos_weight and inverse-frequency weight of a label with no training positives", {}},
  };
  registry->Add(StageKind{std::move(spec), MakeFolds});
}

}  // namespace medpipe
