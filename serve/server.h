// `medpipe serve`: the model and decision params of one classify stage over
// HTTP (cpp-httplib), with the seed's POST /predict_batch and a web page.
//
// Uploaded images are saved under <output>/<Level>/<batch id>_<index>_<name>
// with the name sanitised (no folder part, no control characters, at most
// 100 bytes) and the file created exclusively, so two batches never
// overwrite each other and no upload name leaves the output folder.
// Requests are served by httplib's thread pool; decoding runs in the request
// threads and forward passes one at a time (infer/classifier.h), so inference
// never uses more than --threads cores.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "infer/classifier.h"

namespace medpipe {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  int64_t max_upload_mb = 256;  // whole request body
  int max_files = 500;          // per request
  fs::path output = "classified_images";
};

class TriageServer {
 public:
  // REQUIRES: classifier outlives the server.
  TriageServer(const Classifier* classifier, ServeOptions options);
  ~TriageServer();

  // Binds and serves until Stop() or `cancel` becomes true. Returns an error
  // when the address cannot be bound.
  Status Serve(const std::atomic<bool>* cancel);
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A safe file name from an upload's name: the last path component, control
// characters and anything but [A-Za-z0-9._-] replaced by '_', leading dots
// removed, at most 100 bytes; "upload" when nothing is left.
std::string SanitizeUploadName(const std::string& name);

// The self-contained page served at GET / (inline CSS and JS, no external
// resources), naming `model` and, for an untrained one, showing
// kUntrainedWarning above everything else (#model-warning).
std::string TriagePage(const ModelInfo& model);

// `medpipe serve PIPELINE.yaml --stage ID [--host H] [--port P]
// [--max-upload-mb N] [--max-files N] [--output DIR] [--threads N]`.
// argv[0] is the first argument after "serve".
int RunServe(int argc, char** argv, const std::atomic<bool>* cancel);

}  // namespace medpipe
