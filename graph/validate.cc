// DAG checks over parsed stage entries: inputs that exist, input counts per
// kind, no cycles; then a stable topological order.
#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>

#include "graph/pipeline.h"
#include "util/strings.h"

namespace medpipe {

namespace {

std::vector<std::string> FindCycle(const Pipeline& p, const std::map<std::string, size_t>& index) {
  enum Mark { kNew, kActive, kDone };
  std::vector<Mark> mark(p.stages.size(), kNew);
  std::vector<size_t> stack;
  std::vector<std::string> cycle;
  std::function<bool(size_t)> visit = [&](size_t i) {
    mark[i] = kActive;
    stack.push_back(i);
    for (const auto& in : p.stages[i].inputs) {
      auto it = index.find(in);
      if (it == index.end()) continue;
      size_t j = it->second;
      if (mark[j] == kActive) {
        auto start = std::find(stack.begin(), stack.end(), j);
        for (auto k = start; k != stack.end(); ++k) cycle.push_back(p.stages[*k].id);
        cycle.push_back(p.stages[j].id);
        return true;
      }
      if (mark[j] == kNew && visit(j)) return true;
    }
    stack.pop_back();
    mark[i] = kDone;
    return false;
  };
  for (size_t i = 0; i < p.stages.size(); ++i) {
    if (mark[i] == kNew && visit(i)) break;
  }
  return cycle;
}

}  // namespace

Status OrderStages(Pipeline* p, std::vector<std::string>* errors) {
  std::map<std::string, size_t> index;
  std::vector<std::string> ids;
  for (size_t i = 0; i < p->stages.size(); ++i) {
    index.emplace(p->stages[i].id, i);
    ids.push_back(p->stages[i].id);
  }
  if (p->stages.empty()) errors->push_back(p->file + ": the pipeline has no stages");
  for (const auto& d : p->stages) {
    for (size_t k = 0; k < d.inputs.size(); ++k) {
      const std::string& in = d.inputs[k];
      const SourceLoc& loc = k < d.input_locs.size() ? d.input_locs[k] : d.loc;
      if (in == d.id) {
        errors->push_back(fmt::format("{}: stage '{}' reads its own output", loc.ToString(), d.id));
      } else if (!index.count(in)) {
        std::string hint = ClosestName(in, ids);
        errors->push_back(fmt::format("{}: stage '{}': input '{}' is not a stage in this pipeline{}", loc.ToString(),
                                      d.id, in, hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
      }
    }
    if (d.spec && !d.inputs_malformed) {
      int n = static_cast<int>(d.inputs.size());
      if (n < d.spec->min_inputs || (d.spec->max_inputs >= 0 && n > d.spec->max_inputs)) {
        std::string want = d.spec->max_inputs < 0 ? fmt::format("at least {}", d.spec->min_inputs)
                           : d.spec->min_inputs == d.spec->max_inputs
                               ? fmt::format("exactly {}", d.spec->min_inputs)
                               : fmt::format("{} to {}", d.spec->min_inputs, d.spec->max_inputs);
        errors->push_back(fmt::format("{}: stage '{}': kind '{}' takes {} input(s), {} given", d.loc.ToString(), d.id,
                                      d.kind, want, n));
      }
    }
  }
  if (!errors->empty()) return Status::Config("invalid pipeline");

  std::vector<std::string> cycle = FindCycle(*p, index);
  if (!cycle.empty()) {
    const StageDecl& first = p->stages[index[cycle.front()]];
    errors->push_back(fmt::format("{}: cycle: {}", first.loc.ToString(), Join(cycle, " -> ")));
    return Status::Config("invalid pipeline");
  }

  // Kahn's algorithm, always taking the earliest stage in file order that is
  // ready, so the order is stable and reads like the file.
  std::vector<int> pending(p->stages.size(), 0);
  for (size_t i = 0; i < p->stages.size(); ++i) pending[i] = static_cast<int>(p->stages[i].inputs.size());
  std::vector<StageDecl> ordered;
  std::vector<bool> placed(p->stages.size(), false);
  while (ordered.size() < p->stages.size()) {
    for (size_t i = 0; i < p->stages.size(); ++i) {
      if (placed[i] || pending[i] > 0) continue;
      placed[i] = true;
      for (size_t j = 0; j < p->stages.size(); ++j) {
        for (const auto& in : p->stages[j].inputs) {
          if (in == p->stages[i].id) --pending[j];
        }
      }
      ordered.push_back(p->stages[i]);
      break;
    }
  }
  p->stages = std::move(ordered);
  return Status::OK();
}

int Pipeline::Find(const std::string& id) const {
  for (size_t i = 0; i < stages.size(); ++i) {
    if (stages[i].id == id) return static_cast<int>(i);
  }
  return -1;
}

std::vector<size_t> Pipeline::Dependants(size_t i) const {
  std::vector<size_t> out;
  for (size_t j = 0; j < stages.size(); ++j) {
    for (const auto& in : stages[j].inputs) {
      if (in == stages[i].id) {
        out.push_back(j);
        break;
      }
    }
  }
  return out;
}

std::vector<bool> Pipeline::Downstream(size_t i) const {
  // Stages are in topological order, so one forward pass suffices.
  std::vector<bool> mark(stages.size(), false);
  mark[i] = true;
  for (size_t j = i + 1; j < stages.size(); ++j) {
    for (const auto& in : stages[j].inputs) {
      int k = Find(in);
      if (k >= 0 && mark[k]) mark[j] = true;
    }
  }
  return mark;
}

std::vector<bool> Pipeline::Upstream(size_t i) const {
  std::vector<bool> mark(stages.size(), false);
  mark[i] = true;
  for (size_t j = i + 1; j-- > 0;) {
    if (!mark[j]) continue;
    for (const auto& in : stages[j].inputs) {
      int k = Find(in);
      if (k >= 0) mark[k] = true;
    }
  }
  return mark;
}

}  // namespace medpipe
