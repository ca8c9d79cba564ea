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
  OFString number;
  if (ds->findAndGetOFString(DCM_SeriesNumber, number).good()) h.series_number = number.c_str();
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

namespace {

// dst(i, j) = src(i - sx, j - sy), bilinear, `fill` outside the slice. A
// whole-slice translation has the same four weights at every pixel, so they
// are computed once and exactly; OpenCV's warpAffine would round the
// sub-pixel position to 1/32 of a pixel (its INTER_TAB_SIZE).
void ShiftSlice(const float* src, int w, int h, double sx, double sy, float fill, float* dst) {
  const double fx = std::floor(-sx), fy = std::floor(-sy);
  const int ox = static_cast<int>(fx), oy = static_cast<int>(fy);
  const double ax = -sx - fx, ay = -sy - fy;
  auto at = [&](int x, int y) -> double {
    return x >= 0 && x < w && y >= 0 && y < h ? src[static_cast<size_t>(y) * w + x] : fill;
  };
  for (int j = 0; j < h; ++j) {
    for (int i = 0; i < w; ++i) {
      const int x = i + ox, y = j + oy;
      double top = (1 - ax) * at(x, y) + ax * at(x + 1, y);
      double bottom = (1 - ax) * at(x, y + 1) + ax * at(x + 1, y + 1);
      dst[static_cast<size_t>(j) * w + i] = static_cast<float>((1 - ay) * top + ay * bottom);
    }
  }
}

}  // namespace

Result<SeriesVolume> AssembleSeries(const DicomSeries& series, const AssembleOptions& o) {
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
  const size_t count = series.slices.size();
  std::vector<size_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  std::vector<double> d(count);
  for (size_t i = 0; i < count; ++i) d[i] = Dot(series.slices[i].position, n);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return d[a] < d[b]; });
  auto file_at = [&](size_t k) { return series.slices[order[k]].file.filename().string(); };

  SeriesVolume out;
  out.source_slices = static_cast<int>(count);
  std::vector<double> steps;
  double max_tan = 0;
  for (size_t k = 0; k + 1 < count; ++k) {
    const Vec3& a = series.slices[order[k]].position;
    const Vec3& b = series.slices[order[k + 1]].position;
    Vec3 delta = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
    double along = Dot(delta, n);
    if (along < 1e-3) return invalid(fmt::format("{} and {} are at the same position", file_at(k), file_at(k + 1)));
    Vec3 side = {delta[0] - along * n[0], delta[1] - along * n[1], delta[2] - along * n[2]};
    max_tan = std::max(max_tan, std::sqrt(Dot(side, side)) / along);
    steps.push_back(along);
  }
  const bool tilted = max_tan > kMaxTiltTan;
  if (tilted) {
    out.tilt_degrees = std::atan(max_tan) * 180 / M_PI;
    if (!o.resample_tilt) {
      return invalid(fmt::format("gantry tilt of {:.2f} degrees (positions move sideways along the stack); "
                                 "refused (gantry_tilt: refuse); gantry_tilt: resample corrects it",
                                 out.tilt_degrees));
    }
  }
  std::vector<double> sorted = steps;
  std::sort(sorted.begin(), sorted.end());
  const double typical = sorted[sorted.size() / 2];
  bool uneven = false;
  for (size_t k = 0; k < steps.size(); ++k) {
    if (std::abs(steps[k] - typical) <= kStepTolerance * typical) continue;
    double ratio = steps[k] / typical;
    if (ratio > 1.5 && std::abs(ratio - std::round(ratio)) < 0.1) {
      return invalid(fmt::format("missing slice(s): a step of {:.3g} mm between {} and {} where the spacing is "
                                 "{:.3g} mm ({} slice(s) missing)",
                                 steps[k], file_at(k), file_at(k + 1), typical, static_cast<int>(std::round(ratio)) - 1));
    }
    if (!o.resample_uneven) {
      return invalid(fmt::format("unequal spacing: a step of {:.3g} mm between {} and {} where the spacing is {:.3g} mm",
                                 steps[k], file_at(k), file_at(k + 1), typical));
    }
    uneven = true;
  }

  // Decode every slice in stack order; shift tilted ones onto the line
  // through the stack's centre along the normal.
  const int w = first.cols, h = first.rows;
  const size_t plane = static_cast<size_t>(w) * h;
  const Vec3 row = {first.orientation[0], first.orientation[1], first.orientation[2]};
  const Vec3 col = {first.orientation[3], first.orientation[4], first.orientation[5]};
  const Vec3& p_first = series.slices[order.front()].position;
  const Vec3& p_last = series.slices[order.back()].position;
  const Vec3 centre = {(p_first[0] + p_last[0]) / 2, (p_first[1] + p_last[1]) / 2, (p_first[2] + p_last[2]) / 2};
  std::vector<double> t(count);  // each slice's place along the normal, from the centre
  std::vector<float> stack(plane * count), decoded(tilted ? plane : 0);
  for (size_t k = 0; k < count; ++k) {
    const DicomSliceHeader& sl = series.slices[order[k]];
    Vec3 rel = {sl.position[0] - centre[0], sl.position[1] - centre[1], sl.position[2] - centre[2]};
    t[k] = Dot(rel, n);
    float* dst = stack.data() + k * plane;
    if (!tilted) {
      MEDPIPE_RETURN_IF_ERROR(DecodeSlice(sl, dst));
      continue;
    }
    MEDPIPE_RETURN_IF_ERROR(DecodeSlice(sl, decoded.data()));
    Vec3 side = {rel[0] - t[k] * n[0], rel[1] - t[k] * n[1], rel[2] - t[k] * n[2]};
    ShiftSlice(decoded.data(), w, h, Dot(side, row) / first.spacing_col, Dot(side, col) / first.spacing_row, o.fill_hu,
               dst);
  }
  out.tilt_corrected = tilted;

  Volume& v = out.volume;
  v.nx = w;
  v.ny = h;
  v.spacing = {first.spacing_col, first.spacing_row, (t.back() - t.front()) / static_cast<double>(count - 1)};
  std::vector<double> new_t = t;
  if (uneven) {
    // Equal steps of (about) the smallest step, the end slices kept.
    const double span = t.back() - t.front();
    const int slices = static_cast<int>(std::lround(span / sorted.front())) + 1;
    new_t.resize(static_cast<size_t>(slices));
    for (int j = 0; j < slices; ++j) new_t[static_cast<size_t>(j)] = t.front() + span * j / (slices - 1);
    v.spacing[2] = span / (slices - 1);
    out.spacing_equalized = true;
  }
  v.nz = static_cast<int>(new_t.size());
  if (!uneven) {
    v.data = std::move(stack);
  } else {
    v.data.resize(v.size());
    size_t k = 0;
    for (size_t j = 0; j < new_t.size(); ++j) {
      while (k + 2 < count && t[k + 1] <= new_t[j]) ++k;
      const double a = std::clamp((new_t[j] - t[k]) / (t[k + 1] - t[k]), 0.0, 1.0);
      const float* lo = stack.data() + k * plane;
      const float* hi = lo + plane;
      float* dst = v.data.data() + j * plane;
      for (size_t i = 0; i < plane; ++i) dst[i] = static_cast<float>((1 - a) * lo[i] + a * hi[i]);
    }
  }
  // The voxel grid in LPS+ (DICOM's patient space), then as RAS+.
  const Vec3 origin = {centre[0] + new_t.front() * n[0], centre[1] + new_t.front() * n[1],
                       centre[2] + new_t.front() * n[2]};
  for (size_t r = 0; r < 3; ++r) {
    const double sign = r < 2 ? -1 : 1;
    out.affine[r][0] = sign * row[r] * v.spacing[0];
    out.affine[r][1] = sign * col[r] * v.spacing[1];
    out.affine[r][2] = sign * n[r] * v.spacing[2];
    out.affine[r][3] = sign * origin[r];
  }
  return out;
}

Result<Volume> AssembleSeries(const DicomSeries& series) {
  MEDPIPE_ASSIGN_OR_RETURN(SeriesVolume sv, AssembleSeries(series, AssembleOptions{}));
  return std::move(sv.volume);
}

}  // namespace medpipe
