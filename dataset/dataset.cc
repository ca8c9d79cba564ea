#include "dataset/dataset.h"

#include <fmt/format.h>

namespace medpipe {

const Category* Dataset::FindCategory(const std::string& name) const {
  for (const auto& c : categories) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::unordered_map<int64_t, std::vector<size_t>> Dataset::AnnotationsByImage() const {
  std::unordered_map<int64_t, std::vector<size_t>> out;
  out.reserve(images.size());
  for (size_t i = 0; i < annotations.size(); ++i) out[annotations[i].image_id].push_back(i);
  return out;
}

std::string AttrToString(const AttrValue& v) {
  struct Visitor {
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return fmt::format("{}", d); }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(const JsonText& j) const { return j.json; }
  };
  return std::visit(Visitor{}, v);
}

void Dataset::AddAnnotation(Annotation a, int64_t image_id) {
  a.id = static_cast<int64_t>(annotations.size()) + 1;
  a.image_id = image_id;
  annotations.push_back(std::move(a));
}

}  // namespace medpipe
