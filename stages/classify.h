// The classify stage's params, parsed for the stage and for `medpipe serve`
// (which serves the model and decision params of one classify stage, so the
// two can never disagree).
#pragma once

#include "graph/pipeline.h"
#include "infer/classifier.h"

namespace medpipe {

// Parses and checks a classify stage's params (config errors at the param's
// file:line:col). `threads` is left at 1: callers set the run's count.
Result<ClassifierOptions> ParseClassifyParams(const Params& params);

// The SHA-256-based hash of a model file's bytes, computed once per process
// for a given path, size and mtime.
Result<std::string> ModelFileHash(const fs::path& path);

}  // namespace medpipe
