// The DAG as text for `medpipe graph`: Graphviz DOT or Mermaid.
#pragma once

#include <string>

#include "graph/pipeline.h"

namespace medpipe {

std::string RenderDot(const Pipeline& pipeline);
std::string RenderMermaid(const Pipeline& pipeline);

}  // namespace medpipe
