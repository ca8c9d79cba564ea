// Writes synthetic frontal chest radiographs for the chest X-ray triage demo
// and tests: PNG files, plus a few as DICOM CR MONOCHROME1 (as many
// computed-radiography systems store them: high stored values are dark).
//
//   medpipe-cxrgen --out DIR [--images N] [--dicoms N] [--size PX] [--seed S] [--square]
//
// Each image has a bright mediastinum and spine, two dark lung fields,
// rib arcs, clavicles, a heart shadow of varying width, and on some images
// an opacity blob in one lung; sizes and aspect ratios vary so the centre
// crop matters. Output is byte-for-byte deterministic for a seed (own RNG,
// UIDs derived from the seed under 2.25, fixed dates).
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <fmt/format.h>

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "dataset/image_io.h"
#include "image/png.h"
#include "util/fs.h"
#include "util/hash.h"

using namespace medpipe;

namespace {

// A 16-bit radiograph (0 = no attenuation, 4095 = bone), 12 bits used.
cv::Mat Radiograph(int width, int height, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  cv::Mat m(height, width, CV_32F, cv::Scalar(300));
  const cv::Point c(width / 2, height / 2);
  // Body and soft tissue.
  cv::ellipse(m, c + cv::Point(0, height / 10), {int(width * 0.46), int(height * 0.55)}, 0, 0, 360, cv::Scalar(1900), -1);
  // Lungs.
  const int lw = int(width * (0.16 + 0.03 * u(rng))), lh = int(height * (0.30 + 0.04 * u(rng)));
  cv::ellipse(m, c + cv::Point(-int(width * 0.2), -height / 20), {lw, lh}, 0, 0, 360, cv::Scalar(700), -1);
  cv::ellipse(m, c + cv::Point(int(width * 0.2), -height / 20), {lw, lh}, 0, 0, 360, cv::Scalar(720), -1);
  // Heart: wider on some images (a cardiomegaly-like silhouette).
  const int hw = int(width * (0.12 + 0.08 * u(rng)));
  cv::ellipse(m, c + cv::Point(width / 30, height / 6), {hw, int(height * 0.14)}, 0, 0, 360, cv::Scalar(2300), -1);
  // Spine and ribs.
  cv::rectangle(m, cv::Rect(c.x - width / 30, 0, width / 15, height), cv::Scalar(2600), -1);
  for (int r = 0; r < 9; ++r) {
    const int y = int(height * (0.18 + r * 0.065));
    for (int side : {-1, 1}) {
      cv::ellipse(m, {c.x, y}, {int(width * 0.36), int(height * 0.06)}, 0, side < 0 ? 180 : 270, side < 0 ? 270 : 360,
                  cv::Scalar(2100), std::max(2, height / 90));
    }
  }
  // Clavicles.
  cv::line(m, {c.x - width / 3, int(height * 0.16)}, {c.x - width / 20, int(height * 0.2)}, cv::Scalar(2800),
           std::max(3, height / 60));
  cv::line(m, {c.x + width / 3, int(height * 0.16)}, {c.x + width / 20, int(height * 0.2)}, cv::Scalar(2800),
           std::max(3, height / 60));
  // An opacity in one lung on some images.
  if (u(rng) < 0.4) {
    const int side = u(rng) < 0.5 ? -1 : 1;
    cv::circle(m, c + cv::Point(side * int(width * 0.2), int(height * (0.1 * u(rng)))),
               int(width * (0.04 + 0.06 * u(rng))), cv::Scalar(1500), -1);
  }
  cv::GaussianBlur(m, m, cv::Size(0, 0), std::max(1.0, width / 150.0));
  std::normal_distribution<float> noise(0, 40);
  for (int y = 0; y < height; ++y) {
    float* row = m.ptr<float>(y);
    for (int x = 0; x < width; ++x) row[x] = std::clamp(row[x] + noise(rng), 0.f, 4095.f);
  }
  cv::Mat out;
  m.convertTo(out, CV_16U);
  return out;
}

std::string DerivedUid(uint64_t seed, const std::string& what) {
  // 2.25.<decimal of 96 bits of a hash>: a valid UID that depends only on the seed.
  const std::string h = HashBytes(fmt::format("cxrgen/{}/{}", seed, what)).substr(0, 24);
  unsigned __int128 v = 0;
  for (char ch : h) v = v * 16 + (ch <= '9' ? ch - '0' : ch - 'a' + 10);
  std::string digits;
  do {
    digits.insert(digits.begin(), char('0' + int(v % 10)));
    v /= 10;
  } while (v);
  return "2.25." + digits;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path out;
  int images = 24, dicoms = 4, size = 512;
  bool square = false;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--square") {
      square = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "medpipe-cxrgen: %s needs a value\n", a.c_str());
      return 2;
    }
    if (a == "--out") out = argv[++i];
    else if (a == "--images") images = std::atoi(argv[++i]);
    else if (a == "--dicoms") dicoms = std::atoi(argv[++i]);
    else if (a == "--size") size = std::atoi(argv[++i]);
    else if (a == "--seed") seed = std::strtoull(argv[++i], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: medpipe-cxrgen --out DIR [--images N] [--dicoms N] [--size PX] [--seed S]\n");
      return 2;
    }
  }
  if (out.empty() || images < 0 || dicoms < 0 || size < 64) {
    std::fprintf(stderr, "usage: medpipe-cxrgen --out DIR [--images N] [--dicoms N] [--size PX] [--seed S]\n");
    return 2;
  }
  std::error_code ec;
  fs::create_directories(out, ec);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (int i = 0; i < images + dicoms; ++i) {
    // Portrait, square and landscape shapes, as detectors and crops vary.
    const double aspect = 0.85 + 0.35 * u(rng);
    const int w = size, h = square ? size : int(size * aspect);
    cv::Mat px = Radiograph(w, h, rng);
    if (i < images) {
      cv::Mat eight;
      px.convertTo(eight, CV_8U, 255.0 / 4095.0);
      Result<std::string> bytes = EncodePng(eight.data, w, h, 1, 8, PngOptions{});
      const fs::path path = out / fmt::format("cxr_{:04d}.png", i);
      if (!bytes.ok() || !DefaultDisk()->WriteAtomic(path, *bytes, false).ok()) {
        std::fprintf(stderr, "medpipe-cxrgen: cannot write %s\n", path.c_str());
        return 1;
      }
      continue;
    }
    // MONOCHROME1: stored = 4095 - attenuation, so the file's own display
    // (window, then inverted) shows bone bright.
    cv::Mat stored = cv::Scalar(4095) - px;
    DcmFileFormat ff;
    DcmDataset* ds = ff.getDataset();
    auto put = [&](const DcmTagKey& tag, const std::string& value) { ds->putAndInsertString(tag, value.c_str()); };
    put(DCM_SOPClassUID, UID_ComputedRadiographyImageStorage);
    put(DCM_SOPInstanceUID, DerivedUid(seed, fmt::format("sop/{}", i)));
    put(DCM_StudyInstanceUID, DerivedUid(seed, fmt::format("study/{}", i)));
    put(DCM_SeriesInstanceUID, DerivedUid(seed, fmt::format("series/{}", i)));
    put(DCM_StudyDate, "20240101");
    put(DCM_Modality, "CR");
    put(DCM_Manufacturer, "medpipe-cxrgen");
    put(DCM_PatientName, fmt::format("Synthetic^Chest{:03d}", i));
    put(DCM_PatientID, fmt::format("CXR{:04d}", i));
    put(DCM_BodyPartExamined, "CHEST");
    put(DCM_ViewPosition, "PA");
    put(DCM_SamplesPerPixel, "1");
    put(DCM_PhotometricInterpretation, "MONOCHROME1");
    ds->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(h));
    ds->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(w));
    ds->putAndInsertUint16(DCM_BitsAllocated, 16);
    ds->putAndInsertUint16(DCM_BitsStored, 12);
    ds->putAndInsertUint16(DCM_HighBit, 11);
    ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
    put(DCM_WindowCenter, "2048");
    put(DCM_WindowWidth, "4096");
    ds->putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16*>(stored.data),
                                static_cast<unsigned long>(stored.total()));
    const fs::path path = out / fmt::format("cxr_{:04d}.dcm", i);
    if (OFCondition c = ff.saveFile(path.c_str(), EXS_LittleEndianExplicit); c.bad()) {
      std::fprintf(stderr, "medpipe-cxrgen: cannot write %s: %s\n", path.c_str(), c.text());
      return 1;
    }
  }
  std::printf("medpipe-cxrgen: %d PNG and %d MONOCHROME1 DICOM chest radiographs in %s\n", images, dicoms,
              out.c_str());
  return 0;
}
