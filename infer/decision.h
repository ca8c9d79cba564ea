// From a network's scores to a triage decision: probabilities, top label,
// top-k, and a risk level by a configurable map and rule. Pure functions of
// the scores; knows nothing of models or pipelines.
#pragma once

#include <limits>
#include <map>
#include <string>
#include <vector>

#include "util/status.h"

namespace medpipe {

// torchxrayvision's "all" DenseNet121 outputs, in order.
const std::vector<std::string>& DefaultCxrLabels();

struct DecisionOptions {
  std::vector<std::string> labels;  // one per network output, in order
  // "logits": the network gives logits, probabilities are their sigmoid.
  // "probabilities": it gives probabilities already.
  std::string output = "logits";
  // Per-label operating thresholds (torchxrayvision's op_norm): probability
  // p of label i becomes p / (2 t) below t_i and 1 - (1 - p) / (2 (1 - t))
  // from t_i on, so t_i maps to 0.5. Empty: none; NaN entries leave their
  // label unchanged.
  std::vector<double> op_threshs;
  int top_k = 3;
  // Levels in order of severity, most severe first.
  std::vector<std::string> levels = {"High", "Medium", "Low"};
  std::map<std::string, std::string> risk_map;  // label -> level
  std::string unmapped = "Low";       // the level of a label absent from risk_map
  std::string no_finding = "no_finding";  // the level when no label reaches its threshold
  double threshold = 0;               // default threshold of every label
  std::map<std::string, double> thresholds;  // per label, overriding `threshold`
  // "top1": the level of the most probable label that reaches its threshold
  // (the seed's rule). "max_risk": the most severe level among all labels
  // that reach their threshold.
  std::string rule = "top1";
};

// The seed's map: High = Consolidation, Pneumothorax, Edema, Pneumonia, Lung
// Lesion; Medium = Atelectasis, Effusion, Cardiomegaly, Enlarged
// Cardiomediastinum, Lung Opacity; Low = Fracture.
std::map<std::string, std::string> DefaultRiskMap();

// Checks the options against each other: every risk_map and thresholds label
// is among `labels`, every level named is in `levels`, op_threshs has one
// entry per label, and so on. Messages name the offending value; callers add
// the file position.
struct DecisionError {
  std::string param;    // which option is wrong, e.g. "risk_map"
  std::string message;
};
std::vector<DecisionError> ValidateDecision(const DecisionOptions& o);

struct LabelProb {
  std::string label;
  double prob = 0;
};

struct Decision {
  std::vector<double> probs;      // one per label, after sigmoid and op_norm
  std::string top_label;          // the most probable label (ties: the first)
  double top_prob = 0;
  std::vector<LabelProb> top_k;   // most probable first
  std::string level;              // a level of `levels`, or no_finding
  std::vector<std::string> findings;  // labels reaching their threshold, in label order
};

// REQUIRES: ValidateDecision(o) is empty; scores.size() == o.labels.size().
Decision Decide(const std::vector<float>& scores, const DecisionOptions& o);

}  // namespace medpipe
