#include "infer/decision.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

namespace medpipe {

const std::vector<std::string>& DefaultCxrLabels() {
  static const std::vector<std::string> labels = {
      "Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema",       "Emphysema",
      "Fibrosis",    "Effusion",      "Pneumonia",    "Pleural_Thickening", "Cardiomegaly", "Nodule",
      "Mass",        "Hernia",        "Lung Lesion",  "Fracture",    "Lung Opacity", "Enlarged Cardiomediastinum"};
  return labels;
}

std::map<std::string, std::string> DefaultRiskMap() {
  std::map<std::string, std::string> m;
  for (const char* l : {"Consolidation", "Pneumothorax", "Edema", "Pneumonia", "Lung Lesion"}) m[l] = "High";
  for (const char* l : {"Atelectasis", "Effusion", "Cardiomegaly", "Enlarged Cardiomediastinum", "Lung Opacity"}) {
    m[l] = "Medium";
  }
  m["Fracture"] = "Low";
  return m;
}

std::vector<DecisionError> ValidateDecision(const DecisionOptions& o) {
  std::vector<DecisionError> errors;
  auto err = [&](const std::string& param, std::string msg) { errors.push_back({param, std::move(msg)}); };
  const std::set<std::string> labels(o.labels.begin(), o.labels.end());
  if (o.labels.empty()) err("labels", "name at least one output label");
  if (labels.size() != o.labels.size()) err("labels", "labels must be unique");
  if (o.output != "logits" && o.output != "probabilities") {
    err("output", "expected logits or probabilities, got '" + o.output + "'");
  }
  if (o.top_k < 1) err("top_k", "must be at least 1");
  const std::set<std::string> levels(o.levels.begin(), o.levels.end());
  if (o.levels.empty()) err("levels", "name at least one level");
  if (levels.size() != o.levels.size()) err("levels", "levels must be unique");
  for (const std::string& l : o.levels) {
    if (l.empty() || l == "." || l == ".." || l.find_first_of("/\\") != std::string::npos || l.size() > 64) {
      err("levels", "'" + l + "' cannot be a folder name");
    }
  }
  if (levels.count(o.no_finding)) err("no_finding", "'" + o.no_finding + "' is also one of the levels");
  if (o.no_finding.empty() || o.no_finding.find_first_of("/\\") != std::string::npos || o.no_finding == "." ||
      o.no_finding == "..") {
    err("no_finding", "'" + o.no_finding + "' cannot be a folder name");
  }
  if (!levels.count(o.unmapped)) err("unmapped", "'" + o.unmapped + "' is not one of the levels");
  for (const auto& [label, level] : o.risk_map) {
    if (!labels.count(label)) err("risk_map", "'" + label + "' is not one of the model's labels");
    if (!levels.count(level)) err("risk_map", fmt::format("'{}': level '{}' is not one of the levels", label, level));
  }
  if (!(o.threshold >= 0 && o.threshold <= 1)) err("threshold", "must be within [0, 1]");
  for (const auto& [label, t] : o.thresholds) {
    if (!labels.count(label)) err("thresholds", "'" + label + "' is not one of the model's labels");
    if (!(t >= 0 && t <= 1)) err("thresholds", fmt::format("'{}': {} is not within [0, 1]", label, t));
  }
  if (!o.op_threshs.empty() && o.op_threshs.size() != o.labels.size()) {
    err("op_threshs", fmt::format("{} values for {} labels", o.op_threshs.size(), o.labels.size()));
  }
  for (double t : o.op_threshs) {
    if (!std::isnan(t) && !(t > 0 && t < 1)) err("op_threshs", fmt::format("{} is not within (0, 1)", t));
  }
  if (o.rule != "top1" && o.rule != "max_risk") err("rule", "expected top1 or max_risk, got '" + o.rule + "'");
  return errors;
}

Decision Decide(const std::vector<float>& scores, const DecisionOptions& o) {
  Decision d;
  const size_t n = o.labels.size();
  d.probs.resize(n);
  for (size_t i = 0; i < n; ++i) {
    double p = scores[i];
    if (o.output == "logits") p = 1.0 / (1.0 + std::exp(-p));
    if (!o.op_threshs.empty() && !std::isnan(o.op_threshs[i])) {
      const double t = o.op_threshs[i];
      p = p < t ? p / (t * 2) : 1.0 - (1.0 - p) / ((1.0 - t) * 2);
    }
    d.probs[i] = p;
  }
  // Most probable first; equal probabilities keep label order.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return d.probs[a] > d.probs[b]; });
  d.top_label = o.labels[order[0]];
  d.top_prob = d.probs[order[0]];
  for (size_t k = 0; k < n && k < static_cast<size_t>(o.top_k); ++k) {
    d.top_k.push_back({o.labels[order[k]], d.probs[order[k]]});
  }

  auto threshold = [&](const std::string& label) {
    auto it = o.thresholds.find(label);
    return it == o.thresholds.end() ? o.threshold : it->second;
  };
  auto level_of = [&](const std::string& label) {
    auto it = o.risk_map.find(label);
    return it == o.risk_map.end() ? o.unmapped : it->second;
  };
  auto severity = [&](const std::string& level) {
    return std::find(o.levels.begin(), o.levels.end(), level) - o.levels.begin();
  };
  for (size_t i = 0; i < n; ++i) {
    if (d.probs[i] >= threshold(o.labels[i])) d.findings.push_back(o.labels[i]);
  }
  d.level = o.no_finding;
  if (o.rule == "top1") {
    for (size_t i : order) {
      if (d.probs[i] >= threshold(o.labels[i])) {
        d.level = level_of(o.labels[i]);
        break;
      }
    }
  } else {
    for (const std::string& label : d.findings) {
      const std::string level = level_of(label);
      if (d.level == o.no_finding || severity(level) < severity(d.level)) d.level = level;
    }
  }
  return d;
}

}  // namespace medpipe
