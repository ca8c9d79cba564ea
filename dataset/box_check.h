// Checking a box against its image as annotations are read: what a reader of
// third-party COCO must not pass through silently (a box with negative width
// gets area 0 and trains nothing, or crashes a loader downstream).
#pragma once

#include <string>

#include "dataset/dataset.h"

namespace medpipe {

enum class BadBoxPolicy {
  kClip,  // clip a box that overlaps the image to it; drop one that cannot be saved
  kDrop,  // drop every bad box
  kFail,  // a bad box fails the reader
};

struct BoxVerdict {
  enum Kind { kOk, kClipped, kDropped } kind = kOk;
  std::string reason;  // for kClipped and kDropped: what was wrong, e.g. "width -5 is not positive"
};

// Checks `a`'s box against an image of `width` x `height` pixels (0 or less:
// the size is unknown and only the box itself is checked). A box that
// overshoots an edge by at most `snap` pixels (rounding in exported
// coordinates) is clipped silently and counts as OK. With kClip, a box that
// overlaps the image is clipped to it (area scaled with the box) and one that
// is not finite, has no positive size or lies wholly outside is dropped; with
// kDrop and kFail every bad box is reported as dropped (the caller fails for
// kFail). Modifies `a` only when the verdict is kClipped or a snap.
BoxVerdict CheckBox(Annotation* a, int width, int height, BadBoxPolicy policy, double snap = 0.5);

}  // namespace medpipe
