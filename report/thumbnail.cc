#include "report/thumbnail.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace medpipe::report {

namespace {

// Any decoded image as 8-bit BGR.
cv::Mat ToBgr8(const cv::Mat& in) {
  cv::Mat m = in;
  if (m.depth() != CV_8U) {
    double lo = 0, hi = 0;
    cv::minMaxLoc(m.reshape(1), &lo, &hi);
    cv::Mat scaled;
    const double scale = hi > lo ? 255.0 / (hi - lo) : 1.0;
    m.convertTo(scaled, CV_8U, scale, -lo * scale);
    m = scaled;
  }
  cv::Mat out;
  switch (m.channels()) {
    case 1: cv::cvtColor(m, out, cv::COLOR_GRAY2BGR); break;
    case 4: cv::cvtColor(m, out, cv::COLOR_BGRA2BGR); break;
    default: out = m;
  }
  return out;
}

}  // namespace

Result<std::string> MakeThumbnail(std::string_view file, const std::vector<ThumbBox>& boxes,
                                  const ThumbOptions& options) {
  if (file.empty()) return Status::Invalid("empty file");
  const cv::Mat raw(1, static_cast<int>(file.size()), CV_8U, const_cast<char*>(file.data()));
  cv::Mat decoded = cv::imdecode(raw, cv::IMREAD_UNCHANGED);
  if (decoded.empty() || decoded.cols <= 0 || decoded.rows <= 0) return Status::Invalid("cannot decode the image");
  // Resize first, in the file's own channels and depth, then convert the
  // small image: a grey slice is resized once, not as three channels.
  const double scale = std::min(1.0, static_cast<double>(options.max_side) / std::max(decoded.cols, decoded.rows));
  cv::Mat small = decoded;
  if (scale < 1.0) {
    const cv::Size size(std::max(1, static_cast<int>(std::lround(decoded.cols * scale))),
                        std::max(1, static_cast<int>(std::lround(decoded.rows * scale))));
    cv::resize(decoded, small, size, 0, 0, cv::INTER_AREA);
  }
  cv::Mat thumb = ToBgr8(small);

  constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
  constexpr double kFontScale = 0.35;
  for (const auto& b : boxes) {
    if (!std::isfinite(b.x) || !std::isfinite(b.y) || !std::isfinite(b.w) || !std::isfinite(b.h)) continue;
    const cv::Scalar colour(b.colour.b, b.colour.g, b.colour.r);
    const cv::Point p0(static_cast<int>(std::lround(b.x * scale)), static_cast<int>(std::lround(b.y * scale)));
    const cv::Point p1(static_cast<int>(std::lround((b.x + b.w) * scale)),
                       static_cast<int>(std::lround((b.y + b.h) * scale)));
    cv::rectangle(thumb, p0, p1, colour, 1, cv::LINE_AA);
    std::string label = b.label;
    for (char& ch : label) {
      if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) > 0x7e) ch = '?';
    }
    if (label.empty()) continue;
    int baseline = 0;
    const cv::Size text = cv::getTextSize(label, kFont, kFontScale, 1, &baseline);
    // Above the box when there is room, else inside its top edge.
    const int top = p0.y - text.height - 3 >= 0 ? p0.y - text.height - 3 : p0.y;
    const int left = std::clamp(p0.x, 0, std::max(0, thumb.cols - text.width - 2));
    cv::rectangle(thumb, cv::Point(left, top), cv::Point(left + text.width + 2, top + text.height + 3), colour,
                  cv::FILLED);
    cv::putText(thumb, label, cv::Point(left + 1, top + text.height + 1), kFont, kFontScale, cv::Scalar(255, 255, 255),
                1, cv::LINE_AA);
  }

  std::vector<uint8_t> out;
  const bool ok = options.png ? cv::imencode(".png", thumb, out, {cv::IMWRITE_PNG_COMPRESSION, 3})
                              : cv::imencode(".jpg", thumb, out, {cv::IMWRITE_JPEG_QUALITY, options.jpeg_quality});
  if (!ok) return Status::Invalid("cannot encode the thumbnail");
  return std::string(out.begin(), out.end());
}

}  // namespace medpipe::report
