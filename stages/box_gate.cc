#include "stages/box_gate.h"

#include <fmt/format.h>

#include "util/strings.h"

namespace medpipe {

ParamSpec BadBoxesParam() {
  return {"bad_boxes", ParamType::kString, "clip", false,
          "boxes not finite, without positive size or outside the image: clip (what overlaps the image; the rest "
          "dropped), drop, or fail; each counted and listed",
          {"clip", "drop", "fail"}};
}

BadBoxPolicy BadBoxesOf(const Params& p) {
  const std::string& v = p.GetString("bad_boxes");
  return v == "drop" ? BadBoxPolicy::kDrop : v == "fail" ? BadBoxPolicy::kFail : BadBoxPolicy::kClip;
}

bool BoxGate::Admit(StageContext& ctx, const std::string& file, Annotation* a, int width, int height) {
  const int64_t id = a->id;
  BoxVerdict v = CheckBox(a, width, height, policy_);
  if (v.kind == BoxVerdict::kOk) return true;
  std::string item = fmt::format("{}: annotation {}", file, id);
  if (policy_ == BadBoxPolicy::kFail) {
    bad_.push_back(item + ": " + v.reason);
    ctx.Count("boxes_bad");
    return false;
  }
  const bool kept = v.kind == BoxVerdict::kClipped;
  ctx.Count(kept ? "boxes_clipped" : "boxes_dropped");
  ctx.Problem(item, v.reason + (kept ? "" : "; box dropped"));
  return kept;
}

Status BoxGate::Finish() const {
  if (bad_.empty()) return Status::OK();
  std::vector<std::string> shown(bad_.begin(), bad_.begin() + std::min<size_t>(bad_.size(), 10));
  return Status::Failed(fmt::format("{} bad box(es) and bad_boxes: fail: {}{}", bad_.size(), Join(shown, "; "),
                                    bad_.size() > shown.size() ? "; ..." : ""));
}

}  // namespace medpipe
