#include "cli/starter_cxr.h"

#include <fmt/format.h>

#include <opencv2/imgproc.hpp>

#include "image/png.h"
#include "infer/starter_model.h"

namespace medpipe {

Result<std::string> StarterRadiographPng(int index) {
  // Portrait and not square, as most radiographs are, so classify's centre
  // crop has work to do. Small: these files only show the pipeline running.
  const int w = 320, h = 384;
  const cv::Point c(w / 2, h / 2);
  cv::Mat m(h, w, CV_8U, cv::Scalar(20));  // air
  cv::ellipse(m, c + cv::Point(0, h / 10), {int(w * 0.46), int(h * 0.55)}, 0, 0, 360, cv::Scalar(120), -1);
  // Lung fields, a little larger on later images.
  const cv::Size lung(int(w * (0.15 + 0.01 * index)), int(h * (0.29 + 0.01 * index)));
  cv::ellipse(m, c + cv::Point(-int(w * 0.2), -h / 20), lung, 0, 0, 360, cv::Scalar(45), -1);
  cv::ellipse(m, c + cv::Point(int(w * 0.2), -h / 20), lung, 0, 0, 360, cv::Scalar(48), -1);
  // The heart shadow widens with the index (the last one cardiomegaly-like).
  cv::ellipse(m, c + cv::Point(w / 30, h / 6), {int(w * (0.11 + 0.03 * index)), int(h * 0.14)}, 0, 0, 360,
              cv::Scalar(150), -1);
  cv::rectangle(m, cv::Rect(c.x - w / 30, 0, w / 15, h), cv::Scalar(170), -1);  // spine
  for (int r = 0; r < 9; ++r) {
    const int y = int(h * (0.18 + r * 0.065));
    cv::ellipse(m, {c.x, y}, {int(w * 0.36), int(h * 0.06)}, 0, 180, 360, cv::Scalar(135), 3);
  }
  if (index % 2 == 1) {
    const int side = index % 4 == 1 ? -1 : 1;
    cv::circle(m, c + cv::Point(side * int(w * 0.2), h / 30), int(w * 0.07), cv::Scalar(110), -1);
  }
  cv::GaussianBlur(m, m, cv::Size(0, 0), 2.0);
  return EncodePng(m.data, w, h, /*channels=*/1, /*bit_depth=*/8, PngOptions{});
}

Result<std::vector<std::pair<std::string, std::string>>> StarterCxrFiles() {
  std::vector<std::pair<std::string, std::string>> files;
  for (int i = 0; i < kStarterCxrImageCount; ++i) {
    MEDPIPE_ASSIGN_OR_RETURN(std::string png, StarterRadiographPng(i));
    files.emplace_back(fmt::format("{}starter_{}.png", kStarterCxrImages, i + 1), std::move(png));
  }
  MEDPIPE_ASSIGN_OR_RETURN(std::string model, StarterModelBytes(kStarterCxrModelSeed));
  files.emplace_back(kStarterCxrModel, std::move(model));
  return files;
}

}  // namespace medpipe
