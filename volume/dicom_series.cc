#include "volume/dicom_series.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "dicom/convert.h"

namespace medpipe {

namespace {

using Vec3 = std::array<double, 3>;

Vec3 Cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double Dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

Vec3 Normal(const std::array<double, 6>& o) {
  Vec3 n = Cross({o[0], o[1], o[2]}, {o[3], o[4], o[5]});
  double len = std::sqrt(Dot(n, n));
  return len > 0 ? Vec3{n[0] / len, n[1] / len, n[2] / len} : Vec3{0, 0, 1};
}

// A stack whose positions step sideways by more than this fraction of the
// step along the normal (tan 0.5 degrees) is tilted.
constexpr double kMaxTiltTan = 0.0087;
// Steps that differ by more than this (relative) are unequal.
constexpr double kStepTolerance = 0.01;

}  // namespace

Result<DicomSliceHeader> ReadSliceHeader(const fs::path& file) {
  EnsureDicomDecoders();
  DcmFileFormat ff;
  OFCondition c = ff.loadFileUntilTag(file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect,
                                      DCM_PixelData);
  if (c.bad()) return Status::Invalid(fmt::format("{}: cannot read the DICOM header: {}", file.string(), c.text()));
  DcmDataset* ds = ff.getDataset();
  DicomSliceHeader h;
  h.file = file;
  OFString uid;
  if (ds->findAndGetOFString(DCM_SeriesInstanceUID, uid).bad() || uid.empty()) {
    return Status::Invalid(file.string() + ": no SeriesInstanceUID");
  }
  h.series_uid = uid.c_str();
  for (unsigned long i = 0; i < 3; ++i) {
    if (ds->findAndGetFloat64(DCM_ImagePositionPatient, h.position[i], i).bad()) {
      return Status::Invalid(file.string() + ": no ImagePositionPatient");
    }
  }
  for (unsigned long i = 0; i < 6; ++i) {
    if (ds->findAndGetFloat64(DCM_ImageOrientationPatient, h.orientation[i], i).bad()) {
      return Status::Invalid(file.string() + ": no ImageOrientationPatient");
    }
  }
  Uint16 rows = 0, cols = 0;
  ds->findAndGetUint16(DCM_Rows, rows);
  ds->findAndGetUint16(DCM_Columns, cols);
  if (rows == 0 || cols == 0) return Status::Invalid(file.string() + ": no Rows/Columns");
  h.rows = rows;
  h.cols = cols;
  if (ds->findAndGetFloat64(DCM_PixelSpacing, h.spacing_row, 0).bad() ||
      ds->findAndGetFloat64(DCM_PixelSpacing, h.spacing_col, 1).bad() || h.spacing_row <= 0 || h.spacing_col <= 0) {
    return Status::Invalid(file.string() + ": no valid PixelSpacing");
  }
  return h;
}

std::vector<DicomSeries> GroupSeries(std::vector<DicomSliceHeader> headers) {
  std::vector<DicomSeries> out;
  std::map<std::string, size_t> index;
  for (auto& h : headers) {
    auto [it, inserted] = index.try_emplace(h.series_uid, out.size());
    if (inserted) out.push_back(DicomSeries{h.series_uid, {}});
    out[it->second].slices.push_back(std::move(h));
  }
  return out;
}

namespace {

// Decodes one slice's pixels into `dst` (rows x cols) in modality units.
Status DecodeSlice(const DicomSliceHeader& h, float* dst) {
  auto invalid = [&](const std::string& why) { return Status::Invalid(h.file.string() + ": " + why); };
  DcmFileFormat ff;
  OFCondition c = ff.loadFile(h.file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect);
  if (c.bad()) return invalid(std::string("cannot read DICOM: ") + c.text());
  DcmDataset* ds = ff.getDataset();
  // Decompresses any transfer syntax with a registered decoder.
  if (ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr).bad()) {
    return invalid("cannot decode its transfer syntax");
  }
  Uint16 bits = 0, stored = 0, sign = 0, samples = 1;
  ds->findAndGetUint16(DCM_BitsAllocated, bits);
  ds->findAndGetUint16(DCM_BitsStored, stored);
  ds->findAndGetUint16(DCM_PixelRepresentation, sign);
  ds->findAndGetUint16(DCM_SamplesPerPixel, samples);
  if (bits != 16 || samples != 1) return invalid(fmt::format("{} bits x {} samples; CT slices are 16-bit grey", bits, samples));
  if (stored == 0 || stored > 16) stored = 16;
  Float64 slope = 1, intercept = 0;
  ds->findAndGetFloat64(DCM_RescaleSlope, slope);
  ds->findAndGetFloat64(DCM_RescaleIntercept, intercept);
  const Uint16* px = nullptr;
  unsigned long count = 0;
  if (ds->findAndGetUint16Array(DCM_PixelData, px, &count).bad() || !px) return invalid("no pixel data");
  const size_t n = static_cast<size_t>(h.rows) * h.cols;
  if (count < n) return invalid(fmt::format("{} pixels, expected {}", count, n));
  const uint32_t mask = stored == 16 ? 0xffffu : ((1u << stored) - 1);
  const uint32_t sign_bit = 1u << (stored - 1);
  for (size_t i = 0; i < n; ++i) {
    uint32_t raw = px[i] & mask;
    double v = sign && (raw & sign_bit) ? static_cast<double>(static_cast<int32_t>(raw) - static_cast<int32_t>(mask) - 1)
                                        : static_cast<double>(raw);
    dst[i] = static_cast<float>(v * slope + intercept);
  }
  return Status::OK();
}

}  // namespace

Result<Volume> AssembleSeries(const DicomSeries& series) {
  auto invalid = [&](const std::string& why) {
    return Status::Invalid(fmt::format("series {}: {}", series.uid, why));
  };
  if (series.slices.size() < 2) return invalid("fewer than 2 slices");
  const DicomSliceHeader& first = series.slices[0];
  for (const auto& s : series.slices) {
    if (s.rows != first.rows || s.cols != first.cols) {
      return invalid(fmt::format("mixed sizes: {}x{} in {} and {}x{} in {}", first.cols, first.rows,
                                 first.file.filename().string(), s.cols, s.rows, s.file.filename().string()));
    }
    for (size_t i = 0; i < 6; ++i) {
      if (std::abs(s.orientation[i] - first.orientation[i]) > 1e-4) {
        return invalid(fmt::format("mixed orientations in {} and {}", first.file.filename().string(),
                                   s.file.filename().string()));
      }
    }
    if (std::abs(s.spacing_row - first.spacing_row) > 1e-4 || std::abs(s.spacing_col - first.spacing_col) > 1e-4) {
      return invalid("mixed pixel spacings");
    }
  }
  const Vec3 n = Normal(first.orientation);
  std::vector<size_t> order(series.slices.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<double> d(series.slices.size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = Dot(series.slices[i].position, n);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return d[a] < d[b]; });

  std::vector<double> steps;
  for (size_t k = 0; k + 1 < order.size(); ++k) {
    const Vec3& a = series.slices[order[k]].position;
    const Vec3& b = series.slices[order[k + 1]].position;
    Vec3 delta = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
    double along = Dot(delta, n);
    if (along < 1e-3) {
      return invalid(fmt::format("{} and {} are at the same position", series.slices[order[k]].file.filename().string(),
                                 series.slices[order[k + 1]].file.filename().string()));
    }
    Vec3 side = {delta[0] - along * n[0], delta[1] - along * n[1], delta[2] - along * n[2]};
    double tan_tilt = std::sqrt(Dot(side, side)) / along;
    if (tan_tilt > kMaxTiltTan) {
      return invalid(fmt::format("gantry tilt of {:.2f} degrees (positions move sideways along the stack); "
                                 "resample it to an untilted grid first",
                                 std::atan(tan_tilt) * 180 / M_PI));
    }
    steps.push_back(along);
  }
  std::vector<double> sorted = steps;
  std::sort(sorted.begin(), sorted.end());
  const double typical = sorted[sorted.size() / 2];
  for (size_t k = 0; k < steps.size(); ++k) {
    if (std::abs(steps[k] - typical) <= kStepTolerance * typical) continue;
    double ratio = steps[k] / typical;
    const std::string& fa = series.slices[order[k]].file.filename().string();
    const std::string& fb = series.slices[order[k + 1]].file.filename().string();
    if (ratio > 1.5 && std::abs(ratio - std::round(ratio)) < 0.1) {
      return invalid(fmt::format("missing slice(s): a step of {:.3g} mm between {} and {} where the spacing is "
                                 "{:.3g} mm ({} slice(s) missing)",
                                 steps[k], fa, fb, typical, static_cast<int>(std::round(ratio)) - 1));
    }
    return invalid(fmt::format("unequal spacing: a step of {:.3g} mm between {} and {} where the spacing is {:.3g} mm",
                               steps[k], fa, fb, typical));
  }

  Volume v;
  v.nx = first.cols;
  v.ny = first.rows;
  v.nz = static_cast<int>(order.size());
  v.spacing = {first.spacing_col, first.spacing_row, std::accumulate(steps.begin(), steps.end(), 0.0) / steps.size()};
  v.data.resize(v.size());
  for (int z = 0; z < v.nz; ++z) {
    MEDPIPE_RETURN_IF_ERROR(DecodeSlice(series.slices[order[z]], v.data.data() + z * v.slice_size()));
  }
  return v;
}

}  // namespace medpipe
