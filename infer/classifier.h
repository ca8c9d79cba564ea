// A loaded model with its preprocessing and decision options: what the
// classify stage and `medpipe serve` share, so batch runs and the server can
// never disagree. Knows nothing of pipelines or HTTP.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "infer/decision.h"
#include "infer/model.h"
#include "infer/model_info.h"
#include "infer/preprocess.h"

namespace cv {
class Mat;
}

namespace medpipe {

struct ClassifierOptions {
  fs::path model;
  PreprocessOptions preprocess;
  DecisionOptions decision;
  int batch = 8;    // images per forward pass
  int threads = 1;  // intra-op threads of a forward pass
};

class Classifier {
 public:
  // Inspects (InspectModel), loads (and for TorchScript freezes and
  // optimises) the model and runs one blank image through it: a file that
  // does not load, or whose outputs per image differ from the labels, is
  // kFailed naming the file, so callers fail as a whole (the classify stage,
  // `medpipe serve`) instead of failing every image.
  static Result<std::unique_ptr<Classifier>> Load(const ClassifierOptions& options);

  const ClassifierOptions& options() const { return o_; }
  const ModelInfo& model_info() const { return info_; }

  // Decodes a file's bytes and preprocesses it into `tensor`
  // (TensorSize floats). Thread-safe. kInvalid with the reason for content
  // that is not a decodable PNG, JPEG or DICOM.
  Status PrepareBytes(const std::string& bytes, std::vector<float>* tensor, int* width, int* height) const;
  Status PrepareFile(const fs::path& path, std::vector<float>* tensor, int* width, int* height) const;

  // Scores `n` prepared images (n * TensorSize floats, contiguous) in
  // forward passes of at most `batch` images, one pass at a time whatever
  // the number of calling threads. Returns n * labels scores, or kFailed
  // when the model's outputs do not match the labels.
  Result<std::vector<float>> Scores(const float* tensors, int n) const;

 private:
  Classifier(ClassifierOptions o, ModelInfo info, std::unique_ptr<Model> m)
      : o_(std::move(o)), info_(std::move(info)), model_(std::move(m)) {}
  Status Prepare(const cv::Mat& image, std::vector<float>* tensor, int* width, int* height) const;

  const ClassifierOptions o_;
  const ModelInfo info_;
  mutable std::mutex forward_mu_;  // one forward pass at a time
  const std::unique_ptr<Model> model_;
};

// One classified image, as results.json, results.csv and the server report
// it.
struct TriageResult {
  std::string filename;    // the name given by the user (upload or dataset file)
  int64_t index = 0;
  Decision decision;
  std::string saved_path;  // where the image was put, relative to output_directory's parent
};

// The seed's response: {"results": [...], "summary": {level: count},
// "output_directory": ...}, then "model" ({name, file, sha256, runtime,
// untrained}) and, for an untrained model, "warning": kUntrainedWarning.
// `summary` has every level of `o.levels`, then no_finding, each even at 0;
// `errors` (file name, reason) are listed under "errors" when not empty;
// `extra` adds string members at the end.
std::string TriageJson(const std::vector<TriageResult>& results, const DecisionOptions& o, const ModelInfo& model,
                       const std::string& output_directory,
                       const std::vector<std::pair<std::string, std::string>>& errors = {},
                       const std::vector<std::pair<std::string, std::string>>& extra = {});

// One row per image: file, index, top_label, top_probability, risk_level,
// top1..topK (label:prob), one column per label (probabilities with 6
// decimals), then model, model_sha256 and warning (kUntrainedWarning on
// every row of an untrained model's results, so no row can be read alone as
// meaningful).
std::string TriageCsv(const std::vector<TriageResult>& results, const DecisionOptions& o, const ModelInfo& model);

// Counts per level (every level, then no_finding), as a JSON object, with
// the model and warning as in TriageJson.
std::string SummaryJson(const std::vector<TriageResult>& results, const DecisionOptions& o, const ModelInfo& model,
                        int64_t failed);

}  // namespace medpipe
