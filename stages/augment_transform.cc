#include "stages/augment_transform.h"

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "util/hash.h"

namespace medpipe {
namespace {

// A uniform double in [0, 1) from the top 53 bits of one draw.
double Uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Rounds to `decimals` places as the nearest double to the decimal, so fmt's
// shortest round-trip form prints exactly those places.
double RoundTo(double v, int decimals) {
  const double scale = std::pow(10.0, decimals);
  double r = std::round(v * scale) / scale;
  return r == 0 ? 0.0 : r;  // no "-0"
}

// Draws the two values every ranged transform uses: whether it applies, and
// where in its range it falls.
double Draw(std::mt19937_64& rng, const RandomRange& r, double neutral, int decimals) {
  const double u = Uniform01(rng);
  const double v = Uniform01(rng);
  if (!(u < r.p)) return neutral;
  return RoundTo(r.lo + (r.hi - r.lo) * v, decimals);
}

// cos and sin of an angle in degrees, exact at multiples of 90 so that
// quarter turns move pixels and boxes exactly.
void CosSinDegrees(double degrees, double* c, double* s) {
  double m = std::fmod(degrees, 360.0);
  if (m < 0) m += 360.0;
  if (m == 0) *c = 1, *s = 0;
  else if (m == 90) *c = 0, *s = 1;
  else if (m == 180) *c = -1, *s = 0;
  else if (m == 270) *c = 0, *s = -1;
  else {
    const double rad = degrees * M_PI / 180.0;
    *c = std::cos(rad);
    *s = std::sin(rad);
  }
}

// The tone curve on [0, 1]: contrast about mid-grey, brightness, gamma.
double Tone(const CopyPlan& p, double v) {
  double x = std::clamp((v - 0.5) * p.contrast + 0.5 + p.brightness, 0.0, 1.0);
  return p.gamma == 1 ? x : std::pow(x, p.gamma);
}

}  // namespace

std::string CopyPlan::Describe() const {
  std::string s;
  auto add = [&](const std::string& part) {
    if (!s.empty()) s += ',';
    s += part;
  };
  if (hflip) add("hflip");
  if (angle != 0) add(fmt::format("rotate={}", angle));
  if (scale != 1) add(fmt::format("scale={}", scale));
  if (tx != 0 || ty != 0) add(fmt::format("translate={}/{}", tx, ty));
  if (brightness != 0) add(fmt::format("brightness={}", brightness));
  if (contrast != 1) add(fmt::format("contrast={}", contrast));
  if (gamma != 1) add(fmt::format("gamma={}", gamma));
  if (blur_sigma != 0) add(fmt::format("blur={}", blur_sigma));
  if (noise_sigma != 0) add(fmt::format("noise={}", noise_sigma));
  return s.empty() ? "none" : s;
}

bool CanTransform(const AugmentTransforms& t) {
  auto can = [](const RandomRange& r, double neutral) { return r.p > 0 && !(r.lo == neutral && r.hi == neutral); };
  return t.hflip > 0 || can(t.rotate, 0) || can(t.scale, 1) || can(t.translate, 0) || can(t.brightness, 0) ||
         can(t.contrast, 1) || can(t.gamma, 1) || can(t.noise, 0) || can(t.blur, 0);
}

CopyPlan SamplePlan(const AugmentTransforms& t, uint64_t seed, std::string_view file_name, int copy, int redraw) {
  Hasher h;
  h.Field("augment").Field(std::to_string(seed)).Field(file_name).Field(std::to_string(copy));
  if (redraw > 0) h.Field("redraw").Field(std::to_string(redraw));
  const std::string hex = h.HexDigest();
  std::mt19937_64 rng(std::strtoull(hex.substr(0, 16).c_str(), nullptr, 16));

  CopyPlan p;
  p.hflip = Uniform01(rng) < t.hflip;
  p.angle = Draw(rng, t.rotate, 0, 2);
  p.scale = Draw(rng, t.scale, 1, 3);
  // Translation draws both axes from one probability.
  const double u = Uniform01(rng), vx = Uniform01(rng), vy = Uniform01(rng);
  if (u < t.translate.p) {
    p.tx = RoundTo(t.translate.lo + (t.translate.hi - t.translate.lo) * vx, 4);
    p.ty = RoundTo(t.translate.lo + (t.translate.hi - t.translate.lo) * vy, 4);
  }
  p.brightness = Draw(rng, t.brightness, 0, 3);
  p.contrast = Draw(rng, t.contrast, 1, 3);
  p.gamma = Draw(rng, t.gamma, 1, 3);
  p.blur_sigma = Draw(rng, t.blur, 0, 2);
  p.noise_sigma = Draw(rng, t.noise, 0, 4);
  p.noise_seed = rng();
  return p;
}

cv::Matx23d BoxAffine(const CopyPlan& plan, int width, int height) {
  const double w = width, h = height, cx = w / 2, cy = h / 2;
  double c, s;
  CosSinDegrees(plan.angle, &c, &s);
  const double a = plan.scale * c, b = plan.scale * s;
  // Rotation and scale about the centre, as cv::getRotationMatrix2D builds
  // it (positive angles turn counterclockwise on screen), then the shift.
  cv::Matx33d rs(a, b, (1 - a) * cx - b * cy + plan.tx * w,  //
                 -b, a, b * cx + (1 - a) * cy + plan.ty * h,  //
                 0, 0, 1);
  cv::Matx33d flip = plan.hflip ? cv::Matx33d(-1, 0, w, 0, 1, 0, 0, 0, 1) : cv::Matx33d::eye();
  cv::Matx33d m = rs * flip;
  return cv::Matx23d(m(0, 0), m(0, 1), m(0, 2), m(1, 0), m(1, 1), m(1, 2));
}

BoxResult TransformBox(const cv::Matx23d& m, const double bbox[4], int width, int height, double min_visibility) {
  const double xs[4] = {bbox[0], bbox[0] + bbox[2], bbox[0], bbox[0] + bbox[2]};
  const double ys[4] = {bbox[1], bbox[1], bbox[1] + bbox[3], bbox[1] + bbox[3]};
  double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
  for (int k = 0; k < 4; ++k) {
    const double x = m(0, 0) * xs[k] + m(0, 1) * ys[k] + m(0, 2);
    const double y = m(1, 0) * xs[k] + m(1, 1) * ys[k] + m(1, 2);
    x0 = std::min(x0, x), x1 = std::max(x1, x);
    y0 = std::min(y0, y), y1 = std::max(y1, y);
  }
  BoxResult r;
  const double area = (x1 - x0) * (y1 - y0);
  const double cx0 = std::max(x0, 0.0), cy0 = std::max(y0, 0.0);
  const double cx1 = std::min(x1, static_cast<double>(width)), cy1 = std::min(y1, static_cast<double>(height));
  const double visible = cx1 > cx0 && cy1 > cy0 ? (cx1 - cx0) * (cy1 - cy0) : 0.0;
  r.visibility = area > 0 ? visible / area : 0.0;
  r.kept = visible > 0 && r.visibility >= min_visibility;
  if (r.kept) {
    r.bbox[0] = cx0, r.bbox[1] = cy0, r.bbox[2] = cx1 - cx0, r.bbox[3] = cy1 - cy0;
  }
  return r;
}

namespace {

// Clips a polygon to the rectangle [0, width] x [0, height]: Sutherland-Hodgman,
// one half-plane at a time. Written here because OpenCV clips only convex
// polygons (cv::intersectConvexConvex) and segmentations need not be convex;
// clipping a concave polygon against a convex window this way is exact, at
// worst leaving zero-width edges along the border where it was cut in two.
std::vector<cv::Point2d> ClipToImage(std::vector<cv::Point2d> poly, double width, double height) {
  // Each edge: keep points with `inside`, cut segments where they cross.
  auto clip = [&](auto inside, auto cross) {
    std::vector<cv::Point2d> out;
    for (size_t i = 0; i < poly.size(); ++i) {
      const cv::Point2d& a = poly[i];
      const cv::Point2d& b = poly[(i + 1) % poly.size()];
      const bool ia = inside(a), ib = inside(b);
      if (ia) out.push_back(a);
      if (ia != ib) out.push_back(cross(a, b));
    }
    poly = std::move(out);
  };
  auto at_x = [](const cv::Point2d& a, const cv::Point2d& b, double x) {
    return cv::Point2d(x, a.y + (b.y - a.y) * (x - a.x) / (b.x - a.x));
  };
  auto at_y = [](const cv::Point2d& a, const cv::Point2d& b, double y) {
    return cv::Point2d(a.x + (b.x - a.x) * (y - a.y) / (b.y - a.y), y);
  };
  clip([](const cv::Point2d& p) { return p.x >= 0; }, [&](auto& a, auto& b) { return at_x(a, b, 0); });
  clip([&](const cv::Point2d& p) { return p.x <= width; }, [&](auto& a, auto& b) { return at_x(a, b, width); });
  clip([](const cv::Point2d& p) { return p.y >= 0; }, [&](auto& a, auto& b) { return at_y(a, b, 0); });
  clip([&](const cv::Point2d& p) { return p.y <= height; }, [&](auto& a, auto& b) { return at_y(a, b, height); });
  return poly;
}

}  // namespace

SegmentationResult TransformSegmentation(const cv::Matx23d& m, const std::string& json, int width, int height) {
  SegmentationResult r;
  rapidjson::Document doc;
  doc.Parse(json.c_str(), json.size());
  if (doc.HasParseError() || !doc.IsArray()) return r;
  for (const auto& ring : doc.GetArray()) {
    if (!ring.IsArray() || ring.Size() % 2 != 0) return r;
    for (const auto& v : ring.GetArray()) {
      if (!v.IsNumber()) return r;
    }
  }
  r.polygons = true;
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartArray();
  size_t kept = 0;
  for (const auto& ring : doc.GetArray()) {
    std::vector<cv::Point2d> poly;
    for (rapidjson::SizeType k = 0; k + 1 < ring.Size(); k += 2) {
      const double x = ring[k].GetDouble(), y = ring[k + 1].GetDouble();
      poly.emplace_back(m(0, 0) * x + m(0, 1) * y + m(0, 2), m(1, 0) * x + m(1, 1) * y + m(1, 2));
    }
    if (poly.size() >= 3) poly = ClipToImage(std::move(poly), width, height);
    std::vector<cv::Point2f> area_pts(poly.begin(), poly.end());
    if (poly.size() < 3 || cv::contourArea(area_pts) <= 0) continue;
    w.StartArray();
    for (const auto& p : poly) w.Double(p.x), w.Double(p.y);
    w.EndArray();
    ++kept;
  }
  w.EndArray();
  if (kept > 0) r.json = buf.GetString();
  return r;
}

const cv::Mat& ApplyPlan(const CopyPlan& plan, const cv::Mat& image, Workspace* ws) {
  // Each step writes into the buffer the current image is not in.
  const cv::Mat* cur = &image;
  auto next = [&]() -> cv::Mat& { return cur == &ws->a ? ws->b : ws->a; };
  if (plan.geometric()) {
    // Box coordinates u = pixel + 0.5: the same map with the offset moved.
    const cv::Matx23d a = BoxAffine(plan, image.cols, image.rows);
    cv::Matx23d px = a;
    px(0, 2) += 0.5 * (a(0, 0) + a(0, 1)) - 0.5;
    px(1, 2) += 0.5 * (a(1, 0) + a(1, 1)) - 0.5;
    cv::Mat& dst = next();
    cv::warpAffine(*cur, dst, cv::Mat(px), cur->size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(0));
    cur = &dst;
  }
  const bool deep = image.depth() == CV_16U;
  const double max = deep ? 65535.0 : 255.0;
  if (plan.tonal()) {
    cv::Mat& dst = next();
    dst.create(cur->size(), cur->type());
    if (!deep) {
      cv::Mat lut(1, 256, CV_8U);
      for (int v = 0; v < 256; ++v) lut.at<uint8_t>(v) = cv::saturate_cast<uint8_t>(Tone(plan, v / max) * max);
      cv::LUT(*cur, lut, dst);
    } else {
      // cv::LUT takes 8-bit input only, so 16-bit samples go through a
      // 65536-entry table here.
      std::vector<uint16_t> lut(65536);
      for (int v = 0; v < 65536; ++v) lut[v] = cv::saturate_cast<uint16_t>(Tone(plan, v / max) * max);
      const int n = cur->cols * cur->channels();
      for (int y = 0; y < cur->rows; ++y) {
        const uint16_t* in = cur->ptr<uint16_t>(y);
        uint16_t* out = dst.ptr<uint16_t>(y);
        for (int x = 0; x < n; ++x) out[x] = lut[in[x]];
      }
    }
    cur = &dst;
  }
  if (plan.blur_sigma > 0) {
    cv::Mat& dst = next();
    cv::GaussianBlur(*cur, dst, cv::Size(0, 0), plan.blur_sigma, plan.blur_sigma, cv::BORDER_REFLECT_101);
    cur = &dst;
  }
  if (plan.noise_sigma > 0) {
    // cv::RNG is a local multiply-with-carry generator seeded from the plan
    // (not OpenCV's global or per-thread RNG), so the noise depends only on
    // (seed, image, copy); its normal sampler (ziggurat) is OpenCV's.
    cv::RNG rng(plan.noise_seed);
    ws->noise.create(cur->size(), CV_MAKETYPE(deep ? CV_32S : CV_16S, cur->channels()));
    rng.fill(ws->noise, cv::RNG::NORMAL, 0.0, plan.noise_sigma * max);
    cv::Mat& dst = next();
    cv::add(*cur, ws->noise, dst, cv::noArray(), cur->depth());  // saturating
    cur = &dst;
  }
  return *cur;
}

cv::Mat ApplyPlan(const CopyPlan& plan, const cv::Mat& image) {
  Workspace ws;
  return ApplyPlan(plan, image, &ws).clone();
}

}  // namespace medpipe
