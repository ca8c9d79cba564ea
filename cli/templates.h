// `medpipe init`: commented pipeline files to start from. Each validates as
// written (a test checks every one); paths point into the new folder's data/.
#pragma once

#include <string>
#include <vector>

namespace medpipe {

std::vector<std::string> TemplateNames();
// The YAML text of template `name`, or "" for an unknown name.
std::string PipelineTemplate(const std::string& name);

}  // namespace medpipe
