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
  // Loads (and for TorchScript freezes and optimises) the model.
  static Result<std::unique_ptr<Classifier>> Load(const ClassifierOptions& options);

  const ClassifierOptions& options() const { return o_; }

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
  Classifier(ClassifierOptions o, std::unique_ptr<Model> m) : o_(std::move(o)), model_(std::move(m)) {}
  Status Prepare(const cv::Mat& image, std::vector<float>* tensor, int* width, int* height) const;

  const ClassifierOptions o_;
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
// "output_directory": ...}. `summary` has every level of `o.levels`, then
// no_finding, each even at 0; `errors` (file name, reason) are listed under
// "errors" when not empty; `extra` adds string members at the end.
std::string TriageJson(const std::vector<TriageResult>& results, const DecisionOptions& o,
                       const std::string& output_directory,
                       const std::vector<std::pair<std::string, std::string>>& errors = {},
                       const std::vector<std::pair<std::string, std::string>>& extra = {});

// One row per image: file, index, top_label, top_probability, risk_level,
// top1..topK (label:prob), then one column per label (probabilities with 6
// decimals).
std::string TriageCsv(const std::vector<TriageResult>& results, const DecisionOptions& o);

// Counts per level (every level, then no_finding), as a JSON object.
std::string SummaryJson(const std::vector<TriageResult>& results, const DecisionOptions& o, int64_t failed);

}  // namespace medpipe
