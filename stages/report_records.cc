#include "stages/report_records.h"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <cstdlib>
#include <functional>
#include <set>

#include "runner/checkpoint.h"

namespace medpipe {

namespace {

Result<rapidjson::Document> ParseJson(const fs::path& file) {
  MEDPIPE_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  rapidjson::Document doc;
  doc.Parse(text.c_str(), text.size());
  if (doc.HasParseError() || !doc.IsObject()) return Status::Corruption(file.string() + ": not a JSON object");
  return doc;
}

int64_t IntOr(const rapidjson::Value& obj, const char* key, int64_t fallback = 0) {
  if (!obj.IsObject()) return fallback;
  auto it = obj.FindMember(key);
  return it != obj.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : fallback;
}

bool BoolOr(const rapidjson::Value& obj, const char* key, bool fallback) {
  auto it = obj.FindMember(key);
  return it != obj.MemberEnd() && it->value.IsBool() ? it->value.GetBool() : fallback;
}

// The image an item names: "<file>" or "annotation N (<file>)".
std::string ImageOfItem(const std::string& item, const std::unordered_set<std::string>& names) {
  if (names.count(item)) return item;
  if (item.rfind("annotation ", 0) == 0 && !item.empty() && item.back() == ')') {
    const size_t open = item.find(" (");
    if (open != std::string::npos) {
      std::string inner = item.substr(open + 2, item.size() - open - 3);
      if (names.count(inner)) return inner;
    }
  }
  return "";
}

}  // namespace

Result<report::ValidationResult> ReadValidation(const fs::path& file, const std::string& stage,
                                                const std::unordered_set<std::string>& file_names,
                                                std::vector<std::string>* finding_images) {
  MEDPIPE_ASSIGN_OR_RETURN(rapidjson::Document doc, ParseJson(file));
  report::ValidationResult v;
  v.stage = stage;
  v.passed = BoolOr(doc, "passed", true);
  auto checks = doc.FindMember("checks");
  if (checks != doc.MemberEnd() && checks->value.IsObject()) {
    for (const auto& m : checks->value.GetObject()) {
      report::CheckResult c;
      c.name = m.name.GetString();
      if (!m.value.IsObject()) continue;
      c.passed = BoolOr(m.value, "passed", true);
      c.fatal = BoolOr(m.value, "fatal", false);
      c.failures = IntOr(m.value, "failures");
      c.not_listed = IntOr(m.value, "items_not_listed");
      auto items = m.value.FindMember("items");
      if (items != m.value.MemberEnd() && items->value.IsArray()) {
        for (const auto& it : items->value.GetArray()) {
          if (!it.IsString()) continue;
          const std::string text = it.GetString();
          report::Finding f;
          std::string image;
          for (size_t pos = text.find(": "); pos != std::string::npos; pos = text.find(": ", pos + 1)) {
            image = ImageOfItem(text.substr(0, pos), file_names);
            if (!image.empty()) {
              f.item = text.substr(0, pos), f.reason = text.substr(pos + 2);
              break;
            }
          }
          if (image.empty()) {
            const size_t pos = text.find(": ");
            f.item = text.substr(0, pos);
            f.reason = pos == std::string::npos ? "" : text.substr(pos + 2);
          }
          finding_images->push_back(image);
          c.findings.push_back(std::move(f));
        }
      }
      v.checks.push_back(std::move(c));
    }
  }
  auto notes = doc.FindMember("notes");
  if (notes != doc.MemberEnd() && notes->value.IsObject()) {
    for (const auto& m : notes->value.GetObject()) {
      if (m.value.IsInt64()) v.notes[m.name.GetString()] = m.value.GetInt64();
    }
  }
  return v;
}

Result<std::vector<std::string>> CompareWithAnalysis(const fs::path& file, const report::DatasetStats& st) {
  MEDPIPE_ASSIGN_OR_RETURN(rapidjson::Document doc, ParseJson(file));
  std::vector<std::string> diffs;
  auto compare = [&](const std::string& where, const rapidjson::Value& a, const report::SplitStats& s) {
    auto one = [&](const char* key, int64_t mine) {
      const int64_t theirs = IntOr(a, key, -1);
      if (theirs != mine) diffs.push_back(fmt::format("{} {}: analyze {}, report {}", where, key, theirs, mine));
    };
    one("images", s.images);
    one("patients", s.patients);
    one("negatives", s.negatives);
    one("augmented", s.augmented);
    one("boxes", s.boxes);
    for (const char* group : {"images_per_class", "boxes_per_class"}) {
      auto g = a.FindMember(group);
      if (g == a.MemberEnd() || !g->value.IsObject()) {
        diffs.push_back(where + " " + group + ": missing in analysis.json");
        continue;
      }
      const auto& mine = std::string(group) == "images_per_class" ? s.images_per_class : s.boxes_per_class;
      for (size_t c = 0; c < st.classes.size(); ++c) {
        const int64_t theirs = IntOr(g->value, st.classes[c].c_str(), -1);
        if (theirs != mine[c]) {
          diffs.push_back(fmt::format("{} {}/{}: analyze {}, report {}", where, group, st.classes[c], theirs, mine[c]));
        }
      }
    }
  };
  auto splits = doc.FindMember("splits");
  if (splits == doc.MemberEnd() || !splits->value.IsObject()) return std::vector<std::string>{"no splits in analysis"};
  std::set<std::string> seen;
  for (size_t s = 0; s < st.splits.size(); ++s) {
    auto it = splits->value.FindMember(st.splits[s].c_str());
    if (it == splits->value.MemberEnd()) {
      diffs.push_back("split " + st.splits[s] + " is not in analysis.json");
      continue;
    }
    seen.insert(st.splits[s]);
    compare(st.splits[s], it->value, st.per_split[s]);
  }
  for (const auto& m : splits->value.GetObject()) {
    if (!seen.count(m.name.GetString())) diffs.push_back(std::string("split ") + m.name.GetString() + " is not in the dataset");
  }
  auto total = doc.FindMember("total");
  if (total != doc.MemberEnd()) compare("total", total->value, st.total);
  return diffs;
}

std::vector<report::StageRecord> UpstreamRecords(const fs::path& workdir, const std::vector<std::string>& inputs,
                                                 bool times, std::optional<double>* negative_target) {
  std::vector<report::StageRecord> out;
  std::set<std::string> visited;
  // Depth-first, post-order: a stage after everything it read.
  std::function<void(const std::string&, int)> visit = [&](const std::string& id, int depth) {
    // Ids come from commit records in our own workdir; still, never leave it.
    if (depth > 1000 || !visited.insert(id).second || !IsContainedRelativePath(id) ||
        id.find('/') != std::string::npos) {
      return;
    }
    Result<CommitRecord> rec = ReadCommit(workdir / id);
    if (!rec.ok()) return;
    for (const auto& [input, fingerprint] : rec->inputs) visit(input, depth + 1);
    report::StageRecord s;
    s.id = id;
    s.kind = rec->kind;
    for (const auto& [name, json] : rec->params) {
      s.params.emplace_back(name, json.size() > 160 ? json.substr(0, 157) + "..." : json);
    }
    s.items = rec->items.total;
    s.items_failed = rec->items.failed;
    s.counters = rec->counters;
    if (times) {
      s.items_resumed = rec->items.resumed;
      s.seconds = rec->seconds;
      s.finished_at = rec->finished_at;
    }
    if (rec->kind == "balance") {
      auto it = rec->params.find("target_negative_fraction");
      if (it != rec->params.end()) {
        char* end = nullptr;
        const double v = std::strtod(it->second.c_str(), &end);
        if (end != it->second.c_str() && v >= 0 && v <= 1) *negative_target = v;
      }
    }
    out.push_back(std::move(s));
  };
  for (const auto& id : inputs) visit(id, 0);
  return out;
}

}  // namespace medpipe
