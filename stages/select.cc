// select: keep the images that satisfy predicates on their attributes, up to
// a cap filled evenly across a grouping attribute (dataset/select.h).
//
// One stage may hold several rules, each a class of its own:
//
//   rules:
//     - {name: high_quality, where: ["score >= 0.95", "status == PASS"], max: 800, set: {quality_score: 1}}
//     - {name: natural_failure, where: ["score <= 0.1", "status == FAIL"], max: 300, set: {quality_score: 0}}
//   group_by: machine_type
//
// An image belongs to the first rule whose predicates all hold; the rule's
// name goes into `class_attribute` and its `set` values into the image's
// attributes (numbers as numbers). Without `rules`, the top-level `where`
// and `max` are one rule that sets nothing. Each rule's cap is filled
// round-robin across the values of `group_by` (an image without it is in
// group ""), in a seeded order, so no group dominates and a rerun picks the
// same images. Kept images keep the input's order and ids are renumbered;
// files are links to the input's.
#include <fmt/format.h>

#include <cstdlib>
#include <set>

#include "dataset/select.h"
#include "stages/link_images.h"
#include "stages/registry.h"
#include "util/strings.h"

namespace medpipe {
namespace {

struct Rule {
  std::string name;
  std::vector<Predicate> where;
  size_t max = 0;
  std::vector<std::pair<std::string, AttrValue>> set;
};

struct SelectOptions {
  std::vector<Rule> rules;
  std::string group_by;
  std::string class_attribute;
};

class SelectStage : public Stage {
 public:
  explicit SelectStage(SelectOptions o) : o_(std::move(o)) {}

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset in, ctx.ReadInputDataset(0));
    std::vector<std::vector<size_t>> members(o_.rules.size());
    for (size_t i = 0; i < in.images.size(); ++i) {
      if (!IsContainedRelativePath(in.images[i].file_name)) {
        ctx.Problem(in.images[i].file_name, "file_name leaves the dataset folder; image skipped");
        ctx.Count("unsafe_file_names");
        continue;
      }
      for (size_t r = 0; r < o_.rules.size(); ++r) {
        if (MatchesAll(o_.rules[r].where, in.images[i])) {
          members[r].push_back(i);
          break;
        }
      }
    }

    std::vector<int> rule_of(in.images.size(), -1);
    for (size_t r = 0; r < o_.rules.size(); ++r) {
      const Rule& rule = o_.rules[r];
      std::vector<std::string> keys, groups;
      for (size_t i : members[r]) {
        keys.push_back(in.images[i].file_name);
        groups.push_back(o_.group_by.empty() ? std::string()
                                             : ImageField(in.images[i], o_.group_by).value_or(std::string()));
      }
      std::vector<size_t> chosen = SelectEvenly(keys, groups, rule.max, ctx.seed());
      const std::string prefix = rule.name.empty() ? std::string() : rule.name + ".";
      ctx.Count(prefix + "matched", static_cast<int64_t>(members[r].size()));
      ctx.Count(prefix + "kept", static_cast<int64_t>(chosen.size()));
      for (size_t k : chosen) {
        rule_of[members[r][k]] = static_cast<int>(r);
        if (!o_.group_by.empty()) ctx.Count(prefix + o_.group_by + "." + groups[k]);
      }
    }

    std::vector<size_t> kept;
    std::vector<LinkSpec> links;
    for (size_t i = 0; i < in.images.size(); ++i) {
      if (rule_of[i] < 0) continue;
      kept.push_back(i);
      links.push_back(LinkSpec{in.images[i].file_name, ctx.inputs()[0].dir / in.images[i].file_name});
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links));

    Dataset out;
    out.categories = in.categories;
    auto by_image = in.AnnotationsByImage();
    for (size_t k = 0; k < kept.size(); ++k) {
      if (!linked[k]) continue;
      Image img = in.images[kept[k]];
      const Rule& rule = o_.rules[static_cast<size_t>(rule_of[kept[k]])];
      if (!rule.name.empty()) img.attributes[o_.class_attribute] = rule.name;
      for (const auto& [name, value] : rule.set) img.attributes[name] = value;
      const int64_t old_id = img.id;
      img.id = static_cast<int64_t>(out.images.size()) + 1;
      if (auto it = by_image.find(old_id); it != by_image.end()) {
        for (size_t a : it->second) out.AddAnnotation(in.annotations[a], img.id);
      }
      out.images.push_back(std::move(img));
    }
    ctx.Count("images", static_cast<int64_t>(out.images.size()));
    return ctx.WriteDataset(out);
  }

 private:
  SelectOptions o_;
};

Result<std::vector<Predicate>> ParseWhere(const std::vector<std::string>& texts) {
  std::vector<Predicate> out;
  for (const std::string& t : texts) {
    MEDPIPE_ASSIGN_OR_RETURN(Predicate p, ParsePredicate(t));
    out.push_back(std::move(p));
  }
  return out;
}

Result<std::unique_ptr<Stage>> MakeSelect(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  SelectOptions o;
  o.group_by = p.GetString("group_by");
  o.class_attribute = p.GetString("class_attribute");
  YAML::Node rules = p.GetObject("rules");
  if (rules && !rules.IsNull()) {
    if (!rules.IsSequence() || rules.size() == 0) {
      return p.Error("rules", "a list of rules, each {name, where: [...], max: N, set: {...}}");
    }
    std::set<std::string> names;
    for (const YAML::Node& n : rules) {
      if (!n.IsMap()) return p.Error("rules", "each rule is a mapping {name, where, max, set}");
      Rule rule;
      for (const auto& kv : n) {
        const std::string key = kv.first.as<std::string>();
        try {
          if (key == "name") {
            rule.name = kv.second.as<std::string>();
          } else if (key == "where") {
            Result<std::vector<Predicate>> w = ParseWhere(kv.second.as<std::vector<std::string>>());
            if (!w.ok()) return p.Error("rules", w.status().message());
            rule.where = std::move(w).value();
          } else if (key == "max") {
            int64_t m = kv.second.as<int64_t>();
            if (m < 0) return p.Error("rules", "max must be 0 (no cap) or more");
            rule.max = static_cast<size_t>(m);
          } else if (key == "set") {
            if (!kv.second.IsMap()) return p.Error("rules", "set is a mapping of attribute: value");
            for (const auto& s : kv.second) {
              rule.set.emplace_back(s.first.as<std::string>(), ParseAttrValue(s.second.as<std::string>()));
            }
          } else {
            return p.Error("rules", fmt::format("unknown rule key '{}' (name, where, max, set)", key));
          }
        } catch (const YAML::Exception&) {
          return p.Error("rules", fmt::format("rule key '{}' has a value of the wrong type", key));
        }
      }
      if (rule.name.empty()) return p.Error("rules", "every rule needs a name (its class)");
      if (!names.insert(rule.name).second) return p.Error("rules", fmt::format("rule '{}' is listed twice", rule.name));
      o.rules.push_back(std::move(rule));
    }
    if (!p.GetStringList("where").empty() || p.GetInt("max") != 0) {
      return p.Error("rules", "give either rules or the top-level where/max, not both");
    }
  } else {
    Rule rule;
    Result<std::vector<Predicate>> w = ParseWhere(p.GetStringList("where"));
    if (!w.ok()) return p.Error("where", w.status().message());
    rule.where = std::move(w).value();
    if (p.GetInt("max") < 0) return p.Error("max", "must be 0 (no cap) or more");
    rule.max = static_cast<size_t>(p.GetInt("max"));
    o.rules.push_back(std::move(rule));
  }
  if (o.class_attribute.empty()) return p.Error("class_attribute", "must not be empty");
  return std::unique_ptr<Stage>(new SelectStage(std::move(o)));
}

}  // namespace

void RegisterSelect(Registry* registry) {
  KindSpec spec;
  spec.name = "select";
  spec.version = 1;
  spec.help =
      "keep images by predicates on attributes (>=, <=, >, <, ==, !=, contains), per rule (class), each capped "
      "and filled evenly across a grouping attribute in a seeded order";
  spec.min_inputs = 1;
  spec.max_inputs = 1;
  spec.params = {
      {"rules", ParamType::kObject, "", false,
       "list of {name, where: [predicates], max: N (0: all), set: {attr: value}}; an image takes the first rule "
       "it satisfies",
       {}},
      {"where", ParamType::kStringList, "[]", false,
       "predicates that must all hold, e.g. 'score >= 0.95' (without rules)", {}},
      {"max", ParamType::kInt, "0", false, "cap on kept images, 0 for none (without rules)", {}},
      {"group_by", ParamType::kString, "", false, "attribute whose values share each cap evenly; empty: none", {}},
      {"class_attribute", ParamType::kString, "class", false, "attribute that receives the rule's name", {}},
  };
  registry->Add(StageKind{std::move(spec), MakeSelect});
}

}  // namespace medpipe
