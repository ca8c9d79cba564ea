#include "graph/render.h"

#include <fmt/format.h>

namespace medpipe {

namespace {
std::string DotQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

// Mermaid node ids allow only word characters; labels carry the real id.
std::string MermaidId(size_t i) { return fmt::format("s{}", i); }
std::string MermaidLabel(const std::string& s) {
  std::string out;
  for (char c : s) out += (c == '"') ? std::string("#quot;") : std::string(1, c);
  return out;
}
}  // namespace

std::string RenderDot(const Pipeline& p) {
  std::string out = fmt::format("digraph {} {{\n  rankdir=LR;\n  node [shape=box];\n", DotQuote(p.name));
  for (const auto& s : p.stages) {
    out += fmt::format("  {} [label={}];\n", DotQuote(s.id), DotQuote(s.id + "\n(" + s.kind + ")"));
  }
  for (const auto& s : p.stages) {
    for (const auto& in : s.inputs) out += fmt::format("  {} -> {};\n", DotQuote(in), DotQuote(s.id));
  }
  return out + "}\n";
}

std::string RenderMermaid(const Pipeline& p) {
  std::string out = "flowchart LR\n";
  for (size_t i = 0; i < p.stages.size(); ++i) {
    out += fmt::format("  {}[\"{}<br/>({})\"]\n", MermaidId(i), MermaidLabel(p.stages[i].id),
                       MermaidLabel(p.stages[i].kind));
  }
  for (size_t i = 0; i < p.stages.size(); ++i) {
    for (const auto& in : p.stages[i].inputs) {
      out += fmt::format("  {} --> {}\n", MermaidId(static_cast<size_t>(p.Find(in))), MermaidId(i));
    }
  }
  return out;
}

}  // namespace medpipe
