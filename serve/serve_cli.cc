// The `medpipe serve` command line: the pipeline file names the classify
// stage whose model and decision params are served.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "serve/server.h"
#include "stages/classify.h"
#include "stages/registry.h"

namespace medpipe {
namespace {

constexpr const char* kServeUsage =
    "usage: medpipe serve PIPELINE.yaml --stage ID [--host 127.0.0.1] [--port 8080] [--max-upload-mb 256]\n"
    "                     [--max-files 500] [--output classified_images] [--threads N]\n";

int ServeUsage(const std::string& message) {
  std::fprintf(stderr, "medpipe serve: %s\n%s", message.c_str(), kServeUsage);
  return 2;
}

bool ParseInt(const char* text, int64_t lo, int64_t hi, int64_t* out) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (!*text || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

}  // namespace

int RunServe(int argc, char** argv, const std::atomic<bool>* cancel) {
  std::string file, stage;
  ServeOptions o;
  int64_t threads = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    int64_t n = 0;
    if (arg == "--stage") {
      const char* v = value();
      if (!v) return ServeUsage("--stage needs a value");
      stage = v;
    } else if (arg == "--host") {
      const char* v = value();
      if (!v) return ServeUsage("--host needs a value");
      o.host = v;
    } else if (arg == "--output") {
      const char* v = value();
      if (!v) return ServeUsage("--output needs a value");
      o.output = v;
    } else if (arg == "--port" || arg == "--max-upload-mb" || arg == "--max-files" || arg == "--threads") {
      const char* v = value();
      const int64_t hi = arg == "--port" ? 65535 : arg == "--threads" ? 1024 : 1 << 20;
      if (!v || !ParseInt(v, 1, hi, &n)) return ServeUsage(fmt::format("{}: expected a number from 1 to {}", arg, hi));
      if (arg == "--port") o.port = static_cast<int>(n);
      else if (arg == "--max-upload-mb") o.max_upload_mb = n;
      else if (arg == "--max-files") o.max_files = static_cast<int>(n);
      else threads = n;
    } else if (!arg.empty() && arg[0] == '-') {
      return ServeUsage("unknown option '" + arg + "'");
    } else if (file.empty()) {
      file = arg;
    } else {
      return ServeUsage("one pipeline file only");
    }
  }
  if (file.empty()) return ServeUsage("no pipeline file");
  if (stage.empty()) return ServeUsage("--stage ID names the classify stage to serve");

  Result<Pipeline> pipeline = LoadPipeline(file, BuiltinRegistry());
  if (!pipeline.ok()) {
    std::fprintf(stderr, "%s\n", pipeline.status().message().c_str());
    return 2;
  }
  const int index = pipeline->Find(stage);
  if (index < 0) return ServeUsage("no stage '" + stage + "' in " + file);
  const StageDecl& decl = pipeline->stages[index];
  if (decl.kind != "classify") {
    return ServeUsage(fmt::format("stage '{}' is a {} stage; serve needs a classify stage", stage, decl.kind));
  }
  Result<ClassifierOptions> options = ParseClassifyParams(decl.params);
  if (!options.ok()) {
    std::fprintf(stderr, "%s\n", options.status().message().c_str());
    return 2;
  }
  options->threads = static_cast<int>(threads);
  Result<std::unique_ptr<Classifier>> classifier = Classifier::Load(*options);
  if (!classifier.ok()) {
    std::fprintf(stderr, "medpipe serve: %s\n", classifier.status().message().c_str());
    return 1;
  }
  TriageServer server(classifier->get(), o);
  Status s = server.Serve(cancel);
  if (!s.ok()) {
    std::fprintf(stderr, "medpipe serve: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace medpipe
