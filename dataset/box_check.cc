#include "dataset/box_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace medpipe {

namespace {

std::string Box(const double* b) { return fmt::format("[{:g}, {:g}, {:g}, {:g}]", b[0], b[1], b[2], b[3]); }

// Clips `a`'s box to [0, width] x [0, height], scaling its area with the box.
void Clip(Annotation* a, int width, int height) {
  double* b = a->bbox;
  const double old_area = b[2] * b[3];
  const double x0 = std::max(0.0, b[0]), y0 = std::max(0.0, b[1]);
  const double x1 = std::min(static_cast<double>(width), b[0] + b[2]);
  const double y1 = std::min(static_cast<double>(height), b[1] + b[3]);
  b[0] = x0, b[1] = y0, b[2] = x1 - x0, b[3] = y1 - y0;
  const double new_area = b[2] * b[3];
  a->area = a->area > 0 && old_area > 0 ? a->area * new_area / old_area : new_area;
}

}  // namespace

BoxVerdict CheckBox(Annotation* a, int width, int height, BadBoxPolicy policy, double snap) {
  const double* b = a->bbox;
  if (!std::isfinite(b[0]) || !std::isfinite(b[1]) || !std::isfinite(b[2]) || !std::isfinite(b[3])) {
    return {BoxVerdict::kDropped, "box " + Box(b) + " is not finite"};
  }
  if (b[2] <= 0 || b[3] <= 0) return {BoxVerdict::kDropped, "box " + Box(b) + " has no positive width and height"};
  if (width <= 0 || height <= 0) return {};
  const double w = width, h = height;
  if (b[0] >= w || b[1] >= h || b[0] + b[2] <= 0 || b[1] + b[3] <= 0) {
    return {BoxVerdict::kDropped, fmt::format("box {} lies outside the {}x{} image", Box(b), width, height)};
  }
  const double over = std::max({-b[0], -b[1], b[0] + b[2] - w, b[1] + b[3] - h});
  if (over <= 0) return {};
  if (over <= snap) {
    Clip(a, width, height);
    return {};
  }
  std::string reason = fmt::format("box {} extends past the {}x{} image", Box(b), width, height);
  if (policy != BadBoxPolicy::kClip) return {BoxVerdict::kDropped, reason};
  Clip(a, width, height);
  return {BoxVerdict::kClipped, reason + fmt::format("; clipped to {}", Box(a->bbox))};
}

}  // namespace medpipe
