#include "infer/classifier.h"

#include <fmt/format.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <opencv2/core.hpp>

#include <map>

namespace medpipe {

Result<std::unique_ptr<Classifier>> Classifier::Load(const ClassifierOptions& options) {
  MEDPIPE_RETURN_IF_ERROR(ValidatePreprocess(options.preprocess));
  if (options.batch < 1) return Status::Invalid("batch must be at least 1");
  const size_t labels = options.decision.labels.size();
  Result<ModelInfo> info = InspectModel(options.model);
  if (!info.ok()) return Status::Failed(info.status().message());
  if (Status s = CheckDeclaredOutputs(*info, labels); !s.ok()) return Status::Failed(s.message());
  Result<std::unique_ptr<Model>> model = LoadModel(options.model, ModelOptions{options.threads});
  if (!model.ok()) return Status::Failed(model.status().message());
  // One blank image tells the outputs per image of a file that does not
  // declare them, before any real image is spent on a model that cannot
  // serve the labels.
  const PreprocessOptions& p = options.preprocess;
  const std::vector<float> blank(TensorSize(p), 0.0f);
  Result<std::vector<float>> probe = (*model)->Forward(blank.data(), 1, p.channels, p.size, p.size);
  if (!probe.ok()) {
    return Status::Failed(fmt::format("model {}: a blank {}x{}x{} image fails: {}", options.model.string(), p.channels,
                                      p.size, p.size, probe.status().message()));
  }
  if (probe->size() != labels) {
    return Status::Failed(fmt::format("model {} gives {} outputs per image but {} labels are configured",
                                      options.model.string(), probe->size(), labels));
  }
  return std::unique_ptr<Classifier>(new Classifier(options, std::move(info).value(), std::move(model).value()));
}

Status Classifier::Prepare(const cv::Mat& image, std::vector<float>* tensor, int* width, int* height) const {
  tensor->resize(TensorSize(o_.preprocess));
  *width = image.cols, *height = image.rows;
  return Preprocess(image, o_.preprocess, tensor->data());
}

Status Classifier::PrepareBytes(const std::string& bytes, std::vector<float>* tensor, int* width,
                                int* height) const {
  cv::Mat image;
  MEDPIPE_RETURN_IF_ERROR(DecodeImageBytes(bytes, &image));
  return Prepare(image, tensor, width, height);
}

Status Classifier::PrepareFile(const fs::path& path, std::vector<float>* tensor, int* width, int* height) const {
  cv::Mat image;
  MEDPIPE_RETURN_IF_ERROR(DecodeImageFile(path, &image));
  return Prepare(image, tensor, width, height);
}

Result<std::vector<float>> Classifier::Scores(const float* tensors, int n) const {
  const PreprocessOptions& p = o_.preprocess;
  const size_t per_image = TensorSize(p);
  const size_t labels = o_.decision.labels.size();
  std::vector<float> out;
  out.reserve(static_cast<size_t>(n) * labels);
  for (int start = 0; start < n; start += o_.batch) {
    const int count = std::min(o_.batch, n - start);
    Result<std::vector<float>> scores = [&] {
      std::lock_guard<std::mutex> lock(forward_mu_);
      return model_->Forward(tensors + start * per_image, count, p.channels, p.size, p.size);
    }();
    if (!scores.ok()) return Status::Failed("model " + o_.model.string() + ": " + scores.status().message());
    if (scores->size() != static_cast<size_t>(count) * labels) {
      return Status::Failed(fmt::format("model {} gives {} outputs per image but {} labels are configured",
                                        o_.model.string(), scores->size() / count, labels));
    }
    out.insert(out.end(), scores->begin(), scores->end());
  }
  return out;
}

namespace {

using JsonWriter = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

std::map<std::string, int64_t> CountLevels(const std::vector<TriageResult>& results, const DecisionOptions& o) {
  std::map<std::string, int64_t> counts;
  for (const auto& l : o.levels) counts[l] = 0;
  counts[o.no_finding] = 0;
  for (const auto& r : results) ++counts[r.decision.level];
  return counts;
}

// "model": {...} and, when untrained, "warning".
void WriteModel(JsonWriter& w, const ModelInfo& m) {
  w.Key("model");
  w.StartObject();
  w.Key("name"), w.String(m.name);
  w.Key("file"), w.String(m.file);
  w.Key("sha256"), w.String(m.sha256);
  w.Key("runtime"), w.String(m.runtime);
  w.Key("untrained"), w.Bool(m.untrained);
  w.EndObject();
  if (m.untrained) w.Key("warning"), w.String(kUntrainedWarning);
}

void WriteSummary(JsonWriter& w, const std::vector<TriageResult>& results, const DecisionOptions& o) {
  const auto counts = CountLevels(results, o);
  w.StartObject();
  for (const auto& l : o.levels) w.Key(l), w.Int64(counts.at(l));
  w.Key(o.no_finding), w.Int64(counts.at(o.no_finding));
  w.EndObject();
}

}  // namespace

std::string TriageJson(const std::vector<TriageResult>& results, const DecisionOptions& o, const ModelInfo& model,
                       const std::string& output_directory,
                       const std::vector<std::pair<std::string, std::string>>& errors,
                       const std::vector<std::pair<std::string, std::string>>& extra) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.SetIndent(' ', 2);
  w.StartObject();
  w.Key("results");
  w.StartArray();
  for (const auto& r : results) {
    const Decision& d = r.decision;
    w.StartObject();
    w.Key("filename"), w.String(r.filename);
    w.Key("index"), w.Int64(r.index);
    w.Key("top_label"), w.String(d.top_label);
    w.Key("top_probability"), w.Double(d.top_prob);
    w.Key("risk_level"), w.String(d.level);
    w.Key("top_predictions");
    w.StartArray();
    for (const auto& lp : d.top_k) {
      w.StartObject();
      w.Key("label"), w.String(lp.label);
      w.Key("prob"), w.Double(lp.prob);
      w.EndObject();
    }
    w.EndArray();
    w.Key("findings");
    w.StartArray();
    for (const auto& f : d.findings) w.String(f);
    w.EndArray();
    w.Key("all_probs");
    w.StartObject();
    for (size_t i = 0; i < o.labels.size(); ++i) w.Key(o.labels[i]), w.Double(d.probs[i]);
    w.EndObject();
    w.Key("saved_path"), w.String(r.saved_path);
    w.EndObject();
  }
  w.EndArray();
  w.Key("summary");
  WriteSummary(w, results, o);
  w.Key("output_directory"), w.String(output_directory);
  WriteModel(w, model);
  if (!errors.empty()) {
    w.Key("errors");
    w.StartArray();
    for (const auto& [file, reason] : errors) {
      w.StartObject();
      w.Key("filename"), w.String(file);
      w.Key("error"), w.String(reason);
      w.EndObject();
    }
    w.EndArray();
  }
  for (const auto& [key, value] : extra) w.Key(key), w.String(value);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

namespace {

// RFC 4180 quoting: a field with a comma, quote or line break is quoted.
std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace

std::string TriageCsv(const std::vector<TriageResult>& results, const DecisionOptions& o, const ModelInfo& model) {
  std::string out = "file,index,top_label,top_probability,risk_level";
  for (int k = 1; k <= o.top_k; ++k) out += fmt::format(",top{}", k);
  for (const auto& l : o.labels) out += "," + CsvField(l);
  out += ",model,model_sha256,warning\n";
  const std::string model_cells =
      fmt::format(",{},{},{}", CsvField(model.name), model.sha256, CsvField(model.Warning()));
  for (const auto& r : results) {
    const Decision& d = r.decision;
    out += fmt::format("{},{},{},{:.6f},{}", CsvField(r.filename), r.index, CsvField(d.top_label), d.top_prob,
                       CsvField(d.level));
    for (int k = 0; k < o.top_k; ++k) {
      out += ",";
      if (k < static_cast<int>(d.top_k.size())) out += CsvField(fmt::format("{}:{:.6f}", d.top_k[k].label, d.top_k[k].prob));
    }
    for (double p : d.probs) out += fmt::format(",{:.6f}", p);
    out += model_cells + "\n";
  }
  return out;
}

std::string SummaryJson(const std::vector<TriageResult>& results, const DecisionOptions& o, const ModelInfo& model,
                        int64_t failed) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.SetIndent(' ', 2);
  w.StartObject();
  w.Key("images"), w.Int64(static_cast<int64_t>(results.size()));
  w.Key("failed"), w.Int64(failed);
  w.Key("levels");
  WriteSummary(w, results, o);
  w.Key("rule"), w.String(o.rule);
  WriteModel(w, model);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

}  // namespace medpipe
