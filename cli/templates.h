// `medpipe init`: commented pipeline files to start from. Each validates as
// written (a test checks every one); paths point into the new folder's data/.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "util/status.h"

namespace medpipe {

std::vector<std::string> TemplateNames();
// The YAML text of template `name`, or "" for an unknown name.
std::string PipelineTemplate(const std::string& name);

// What `init` writes beside the pipeline so it validates at once: the
// folders its sources name (paths ending in '/') and empty starter files (a
// COCO file with no images, a CSV with only its header; for cxr, synthetic
// radiographs and an untrained starter network), each to be replaced by the
// user's data. Paths are relative to the new folder; contents are bytes.
// Fails only if the starter network cannot be built.
Result<std::vector<std::pair<std::string, std::string>>> StarterFiles(const std::string& name);

}  // namespace medpipe
