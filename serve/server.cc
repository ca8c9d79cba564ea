#include "serve/server.h"

#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <httplib.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include "stages/classify.h"
#include "stages/registry.h"

namespace medpipe {

std::string SanitizeUploadName(const std::string& name) {
  std::string base = name;
  if (size_t slash = base.find_last_of("/\\"); slash != std::string::npos) base = base.substr(slash + 1);
  std::string out;
  for (unsigned char c : base) {
    const bool keep = std::isalnum(c) || c == '.' || c == '_' || c == '-';
    out += keep ? static_cast<char>(c) : '_';
  }
  size_t dots = 0;
  while (dots < out.size() && out[dots] == '.') ++dots;
  out = out.substr(dots);
  if (out.size() > 100) out = out.substr(out.size() - 100);  // keep the extension
  if (out.empty() || out.find_first_not_of('_') == std::string::npos) out = "upload";
  return out;
}

namespace {

std::string JsonError(const std::string& message) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("error"), w.String(message);
  w.EndObject();
  return buf.GetString();
}

// Writes `bytes` to a new file; fails if the file exists (never overwrites).
Status WriteNewFile(const fs::path& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError(fmt::format("cannot create {}: {}", path.string(), std::strerror(errno)));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      ::close(fd);
      return Status::IOError("cannot write " + path.string());
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return Status::IOError("cannot close " + path.string());
  return Status::OK();
}

std::chrono::steady_clock::time_point& RequestStart() {
  thread_local std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  return start;
}

}  // namespace

struct TriageServer::Impl {
  const Classifier* classifier;
  ServeOptions o;
  httplib::Server server;
  std::string run_id;  // when the server started: batch ids stay unique across restarts
  std::atomic<int64_t> next_batch{1};

  std::string NewBatchId() { return fmt::format("{}-{:05d}", run_id, next_batch.fetch_add(1)); }

  void PredictBatch(const httplib::Request& req, httplib::Response& res) {
    auto json = [&](int status, const std::string& body) {
      res.status = status;
      res.set_content(body, "application/json");
    };
    if (!req.is_multipart_form_data()) return json(400, JsonError("expected a multipart/form-data body"));
    auto range = req.files.equal_range("files");
    std::vector<const httplib::MultipartFormData*> files;
    for (auto it = range.first; it != range.second; ++it) files.push_back(&it->second);
    if (files.empty()) return json(400, JsonError("no 'files' parts in the form"));
    if (static_cast<int>(files.size()) > o.max_files) {
      return json(413, JsonError(fmt::format("{} files; at most {} per request", files.size(), o.max_files)));
    }
    const std::string batch_id = NewBatchId();
    const ClassifierOptions& co = classifier->options();

    // Decode and preprocess here, in the request's thread.
    std::vector<float> tensors, tensor;
    std::vector<size_t> ok;
    std::vector<std::pair<std::string, std::string>> errors;
    for (size_t i = 0; i < files.size(); ++i) {
      int w = 0, h = 0;
      Status s = classifier->PrepareBytes(files[i]->content, &tensor, &w, &h);
      if (!s.ok()) {
        errors.emplace_back(files[i]->filename, "415 unsupported media: " + s.message());
        continue;
      }
      tensors.insert(tensors.end(), tensor.begin(), tensor.end());
      ok.push_back(i);
    }
    std::vector<TriageResult> results;
    if (!ok.empty()) {
      Result<std::vector<float>> scores = classifier->Scores(tensors.data(), static_cast<int>(ok.size()));
      if (!scores.ok()) return json(500, JsonError(scores.status().message()));
      const size_t labels = co.decision.labels.size();
      for (size_t j = 0; j < ok.size(); ++j) {
        const size_t i = ok[j];
        TriageResult r;
        r.filename = files[i]->filename;
        r.index = static_cast<int64_t>(i);
        r.decision = Decide(std::vector<float>(scores->begin() + j * labels, scores->begin() + (j + 1) * labels),
                            co.decision);
        const std::string name = fmt::format("{}_{:04d}_{}", batch_id, i, SanitizeUploadName(files[i]->filename));
        const fs::path dir = o.output / r.decision.level;
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (Status s = WriteNewFile(dir / name, files[i]->content); !s.ok()) return json(500, JsonError(s.message()));
        r.saved_path = (o.output / r.decision.level / name).generic_string();
        results.push_back(std::move(r));
      }
    }
    std::error_code ec;
    fs::create_directories(o.output / "batches", ec);
    if (Status s = WriteNewFile(o.output / "batches" / (batch_id + ".csv"), TriageCsv(results, co.decision, classifier->model_info()));
        !s.ok()) {
      return json(500, JsonError(s.message()));
    }
    json(results.empty() ? 415 : 200,
         TriageJson(results, co.decision, classifier->model_info(), o.output.generic_string(), errors,
                    {{"batch_id", batch_id}, {"csv_url", "/batches/" + batch_id + ".csv"}}));
  }

  void Labels(httplib::Response& res) {
    const DecisionOptions& d = classifier->options().decision;
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("labels"), w.StartArray();
    for (const auto& l : d.labels) w.String(l);
    w.EndArray();
    w.Key("levels"), w.StartArray();
    for (const auto& l : d.levels) w.String(l);
    w.EndArray();
    w.Key("no_finding"), w.String(d.no_finding);
    w.Key("risk_map"), w.StartObject();
    for (const auto& [label, level] : d.risk_map) w.Key(label.c_str()), w.String(level);
    w.EndObject();
    w.Key("rule"), w.String(d.rule);
    w.EndObject();
    res.set_content(buf.GetString(), "application/json");
  }

  void Setup() {
    server.set_payload_max_length(static_cast<size_t>(o.max_upload_mb) * 1024 * 1024);
    server.Get("/", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(TriagePage(classifier->model_info()), "text/html; charset=utf-8");
    });
    server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      const ModelInfo& m = classifier->model_info();
      rapidjson::StringBuffer buf;
      rapidjson::Writer<rapidjson::StringBuffer> w(buf);
      w.StartObject();
      w.Key("status"), w.String("ok");
      w.Key("model"), w.String(m.file);
      w.Key("model_name"), w.String(m.name);
      w.Key("model_sha256"), w.String(m.sha256);
      w.Key("untrained"), w.Bool(m.untrained);
      if (m.untrained) w.Key("warning"), w.String(kUntrainedWarning);
      w.EndObject();
      res.set_content(buf.GetString(), "application/json");
    });
    server.Get("/labels", [this](const httplib::Request&, httplib::Response& res) { Labels(res); });
    server.Get(R"(/batches/([0-9]+-[0-9]+)\.csv)", [this](const httplib::Request& req, httplib::Response& res) {
      Result<std::string> csv = ReadFile(o.output / "batches" / (req.matches[1].str() + ".csv"));
      if (!csv.ok()) {
        res.status = 404;
        res.set_content(JsonError("no such batch"), "application/json");
        return;
      }
      res.set_header("Content-Disposition", "attachment; filename=\"" + req.matches[1].str() + ".csv\"");
      res.set_content(*csv, "text/csv");
    });
    server.Post("/predict_batch", [this](const httplib::Request& req, httplib::Response& res) { PredictBatch(req, res); });
    // Errors httplib raises itself (413 over the payload limit, 404, 400 on a
    // malformed request) get a JSON body too.
    server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      const char* what = res.status == 413 ? "request larger than --max-upload-mb"
                         : res.status == 404 ? "not found"
                                             : "bad request";
      res.set_content(JsonError(what), "application/json");
    });
    // One line per request: method, path, files, status, time; never the
    // contents. httplib serves a request on one thread from routing to
    // logging, so the start time is kept per thread.
    server.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
      RequestStart() = std::chrono::steady_clock::now();
      return httplib::Server::HandlerResponse::Unhandled;
    });
    // A prediction by an untrained model says so on its own line of the
    // log too, so no excerpt of the log reads as a meaningful result.
    const std::string untrained =
        classifier->model_info().untrained ? std::string(" (") + kUntrainedWarning + ")" : std::string();
    server.set_logger([untrained](const httplib::Request& req, const httplib::Response& res) {
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - RequestStart()).count();
      const char* note = req.path == "/predict_batch" ? untrained.c_str() : "";
      std::fprintf(stderr, "%s %s files=%zu status=%d %.1f ms%s\n", req.method.c_str(), req.path.c_str(),
                   req.files.count("files"), res.status, ms, note);
    });
  }
};

TriageServer::TriageServer(const Classifier* classifier, ServeOptions options) : impl_(new Impl) {
  impl_->classifier = classifier;
  impl_->o = std::move(options);
  impl_->run_id = fmt::format("{:%Y%m%d%H%M%S}", fmt::gmtime(std::time(nullptr)));
  impl_->Setup();
}

TriageServer::~TriageServer() = default;

Status TriageServer::Serve(const std::atomic<bool>* cancel) {
  std::error_code ec;
  fs::create_directories(impl_->o.output, ec);
  if (ec) return Status::IOError("cannot create " + impl_->o.output.string() + ": " + ec.message());
  if (!impl_->server.bind_to_port(impl_->o.host, impl_->o.port)) {
    return Status::IOError(fmt::format("cannot listen on {}:{}", impl_->o.host, impl_->o.port));
  }
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done.load()) {
      if (cancel && cancel->load()) {
        impl_->server.stop();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  const ModelInfo& m = impl_->classifier->model_info();
  std::fprintf(stderr, "medpipe serve: http://%s:%d/ (model %s: %s, sha256 %s, output %s)\n", impl_->o.host.c_str(),
               impl_->o.port, impl_->classifier->options().model.string().c_str(), m.name.c_str(), m.sha256.c_str(),
               impl_->o.output.string().c_str());
  if (m.untrained) std::fprintf(stderr, "medpipe serve: WARNING: %s (%s)\n", kUntrainedWarning, m.name.c_str());
  impl_->server.listen_after_bind();
  done.store(true);
  watcher.join();
  return Status::OK();
}

void TriageServer::Stop() { impl_->server.stop(); }

}  // namespace medpipe
