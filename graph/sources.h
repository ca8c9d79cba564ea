// Inputs that must exist before a run starts: a folder, CSV or annotation
// file named by a path param that is not there is a config error found by
// `validate` and by `run` before any stage runs, not a stage failure after
// others ran.
#pragma once

#include <string>
#include <vector>

#include "graph/pipeline.h"

namespace medpipe {

// One "file:line:col: stage 'X': params.p: PATH does not exist" per path
// param whose value names nothing on disk, and per path nested in an object
// param as its kind declares (KindSpec::nested_paths), e.g.
// "params.sources[1].path".
std::vector<std::string> MissingSources(const Pipeline& pipeline);

}  // namespace medpipe
