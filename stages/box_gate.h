// The bad_boxes param shared by the stages that read annotations from outside
// (annotate, merge): every box is checked with CheckBox as it comes in, each
// bad one counted (boxes_clipped, boxes_dropped) and listed as a problem with
// its file and annotation id; with bad_boxes: fail the stage fails listing
// them.
#pragma once

#include <string>
#include <vector>

#include "dataset/box_check.h"
#include "graph/params.h"
#include "runner/stage_context.h"

namespace medpipe {

// The param spec, for a kind's param list.
ParamSpec BadBoxesParam();
BadBoxPolicy BadBoxesOf(const Params& p);

class BoxGate {
 public:
  explicit BoxGate(BadBoxPolicy policy) : policy_(policy) {}

  // Checks `a` on an image of width x height (see CheckBox); false when the
  // box is to be left out. `file` names the image in problems, with the
  // annotation's id as its source had it.
  bool Admit(StageContext& ctx, const std::string& file, Annotation* a, int width, int height);

  // With bad_boxes: fail, a failure listing the bad boxes seen; else OK.
  Status Finish() const;

 private:
  const BadBoxPolicy policy_;
  std::vector<std::string> bad_;
};

}  // namespace medpipe
