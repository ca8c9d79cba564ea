// DICOM series assembly on DCMTK-written series: shuffled files, a missing
// slice, unequal steps, two series in one folder, mixed sizes, a gantry tilt.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tests/test_util.h"
#include "volume/dicom_series.h"
#include "volume/dicom_write.h"
#include "volume/orient.h"

namespace medpipe {
namespace {

using testing::TempDir;

// Writes slices at positions z_k along (0, 0, 1) (plus a sideways shift of
// `tilt_y` per mm of z), in file order `order` (file names are the order
// index, so the names say nothing of the position). Slice k stores 100 * k
// with intercept -1024, so its HU is 100 * k - 1024.
void WriteSeries(const fs::path& dir, const std::string& uid, const std::vector<double>& z,
                 const std::vector<size_t>& order, double tilt_y = 0, int size = 8, int odd_size_at = -1) {
  for (size_t i = 0; i < order.size(); ++i) {
    size_t k = order[i];
    DicomSliceSpec s;
    s.patient_id = "P1";
    s.study_uid = UidFromKey("study");
    s.series_uid = uid;
    s.frame_of_reference_uid = UidFromKey("for");
    s.sop_uid = UidFromKey(uid + std::to_string(k));
    s.rows = s.cols = static_cast<int>(k) == odd_size_at ? size + 2 : size;
    s.spacing_row = 0.7, s.spacing_col = 0.8;
    s.position = {-10, -10 + tilt_y * z[k], z[k]};
    s.stored.assign(static_cast<size_t>(s.rows) * s.cols, static_cast<int16_t>(100 * k));
    ASSERT_TRUE(WriteDicomSlice(dir / (uid.substr(uid.size() - 6) + "_" + std::to_string(i) + ".dcm"), s).ok());
  }
}

std::vector<DicomSeries> Scan(const fs::path& dir) {
  std::vector<DicomSliceHeader> headers;
  Result<std::vector<ListedFile>> files = ListFiles(dir, true);
  EXPECT_TRUE(files.ok());
  for (const auto& f : *files) {
    Result<DicomSliceHeader> h = ReadSliceHeader(dir / f.rel);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    if (h.ok()) headers.push_back(*h);
  }
  return GroupSeries(std::move(headers));
}

std::vector<double> Steps(int n, double step) {
  std::vector<double> z;
  for (int k = 0; k < n; ++k) z.push_back(-50 + k * step);
  return z;
}

TEST(DicomSeries, ShuffledFilesGiveTheOrderedVolume) {
  TempDir dir;
  WriteSeries(dir.path(), UidFromKey("s1"), Steps(6, 2.5), {3, 0, 5, 1, 4, 2});
  auto series = Scan(dir.path());
  ASSERT_EQ(series.size(), 1u);
  Result<Volume> v = AssembleSeries(series[0]);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->nz, 6);
  EXPECT_EQ(v->nx, 8);
  EXPECT_NEAR(v->spacing[0], 0.8, 1e-9);  // PixelSpacing's column spacing is along x
  EXPECT_NEAR(v->spacing[1], 0.7, 1e-9);
  EXPECT_NEAR(v->spacing[2], 2.5, 1e-6);
  for (int z = 0; z < 6; ++z) EXPECT_EQ(v->at(3, 4, z), 100 * z - 1024) << z;
}

TEST(DicomSeries, MissingSliceUnequalStepsAndTiltAreErrors) {
  {
    TempDir dir;
    std::vector<double> z = Steps(7, 2.0);
    z.erase(z.begin() + 3);
    WriteSeries(dir.path(), UidFromKey("gap"), z, {0, 1, 2, 3, 4, 5});
    Result<Volume> v = AssembleSeries(Scan(dir.path())[0]);
    ASSERT_FALSE(v.ok());
    EXPECT_NE(v.status().message().find("missing slice"), std::string::npos) << v.status().message();
    EXPECT_NE(v.status().message().find(UidFromKey("gap")), std::string::npos);
  }
  {
    TempDir dir;
    std::vector<double> z = {0, 2, 4, 5.3, 7.3, 9.3};
    WriteSeries(dir.path(), UidFromKey("uneq"), z, {0, 1, 2, 3, 4, 5});
    Result<Volume> v = AssembleSeries(Scan(dir.path())[0]);
    ASSERT_FALSE(v.ok());
    EXPECT_NE(v.status().message().find("unequal spacing"), std::string::npos) << v.status().message();
  }
  {
    TempDir dir;
    WriteSeries(dir.path(), UidFromKey("tilt"), Steps(5, 2.0), {0, 1, 2, 3, 4}, std::tan(15 * M_PI / 180));
    Result<Volume> v = AssembleSeries(Scan(dir.path())[0]);
    ASSERT_FALSE(v.ok());
    EXPECT_NE(v.status().message().find("gantry tilt of 15.00 degrees"), std::string::npos) << v.status().message();
  }
  {
    TempDir dir;
    WriteSeries(dir.path(), UidFromKey("size"), Steps(4, 2.0), {0, 1, 2, 3}, 0, 8, 2);
    Result<Volume> v = AssembleSeries(Scan(dir.path())[0]);
    ASSERT_FALSE(v.ok());
    EXPECT_NE(v.status().message().find("mixed sizes"), std::string::npos) << v.status().message();
  }
}

TEST(DicomSeries, TwoSeriesInOneFolderAreTwoVolumes) {
  TempDir dir;
  WriteSeries(dir.path(), UidFromKey("a"), Steps(4, 1.5), {2, 0, 3, 1});
  WriteSeries(dir.path(), UidFromKey("b"), Steps(3, 5.0), {1, 2, 0});
  auto series = Scan(dir.path());
  ASSERT_EQ(series.size(), 2u);
  std::vector<int> depths;
  for (const auto& s : series) {
    Result<Volume> v = AssembleSeries(s);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    depths.push_back(v->nz);
  }
  std::sort(depths.begin(), depths.end());
  EXPECT_EQ(depths, (std::vector<int>{3, 4}));
}

// A series tilted so that each slice's position moves one pixel row (0.7 mm)
// sideways per 2 mm step: a dot fixed in the patient sits one row higher in
// each slice. Resampled, the dot is on one row in every slice (the stack's
// centre slice keeps its place) and the grid is untilted.
TEST(DicomSeries, TiltResampledOntoAnUntiltedGrid) {
  TempDir dir;
  const int n = 12, slices = 5, dot_row = 8;
  for (int k = 0; k < slices; ++k) {
    DicomSliceSpec s;
    s.patient_id = "P1";
    s.study_uid = UidFromKey("study");
    s.series_uid = UidFromKey("tilted");
    s.frame_of_reference_uid = UidFromKey("for");
    s.sop_uid = UidFromKey("tilted" + std::to_string(k));
    s.rows = s.cols = n;
    s.spacing_row = 0.7, s.spacing_col = 0.8;
    s.position = {-10, -10 + 0.35 * 2.0 * k, 2.0 * k};
    s.stored.assign(static_cast<size_t>(n) * n, 0);
    s.stored[static_cast<size_t>(dot_row - k) * n + 5] = 1000;
    ASSERT_TRUE(WriteDicomSlice(dir / (std::to_string(k) + ".dcm"), s).ok());
  }
  DicomSeries series = Scan(dir.path())[0];
  AssembleOptions refuse;
  Result<SeriesVolume> refused = AssembleSeries(series, refuse);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("gantry_tilt: resample"), std::string::npos) << refused.status().message();
  AssembleOptions o;
  o.resample_tilt = true;
  Result<SeriesVolume> sv = AssembleSeries(series, o);
  ASSERT_TRUE(sv.ok()) << sv.status().ToString();
  EXPECT_TRUE(sv->tilt_corrected);
  EXPECT_NEAR(sv->tilt_degrees, std::atan(0.35) * 180 / M_PI, 1e-3);
  const Volume& v = sv->volume;
  ASSERT_EQ(v.nz, slices);
  EXPECT_NEAR(v.spacing[2], 2.0, 1e-6);
  for (int z = 0; z < slices; ++z) {
    EXPECT_FLOAT_EQ(v.at(5, dot_row - 2, z), 1000 - 1024) << z;
    EXPECT_FLOAT_EQ(v.at(5, dot_row - 1, z), -1024) << z;
    EXPECT_FLOAT_EQ(v.at(4, dot_row - 2, z), -1024) << z;
  }
  // Rows shifted in from outside the slice are air.
  EXPECT_FLOAT_EQ(v.at(0, n - 1, 0), -1024);
  EXPECT_FLOAT_EQ(v.at(0, 0, slices - 1), -1024);
  // The grid: DICOM's x (towards L) and y (towards P) as RAS+ columns, z
  // straight along the normal, the first slice's origin shifted by its
  // correction (2 rows of 0.7 mm).
  EXPECT_NEAR(sv->affine[0][0], -0.8, 1e-9);
  EXPECT_NEAR(sv->affine[1][1], -0.7, 1e-9);
  EXPECT_NEAR(sv->affine[2][2], 2.0, 1e-9);
  EXPECT_NEAR(sv->affine[1][2], 0, 1e-9);
  EXPECT_NEAR(sv->affine[1][3], -(-10 + 0.35 * 4.0), 1e-6);
  EXPECT_EQ(AxisCodes(sv->affine), "LPS");
}

TEST(DicomSeries, UnevenStepsResampledOntoEqualSteps) {
  TempDir dir;
  std::vector<double> z = {0, 2, 4, 5.3, 7.3, 9.3};
  WriteSeries(dir.path(), UidFromKey("uneven"), z, {3, 1, 0, 5, 2, 4});
  AssembleOptions o;
  o.resample_uneven = true;
  Result<SeriesVolume> sv = AssembleSeries(Scan(dir.path())[0], o);
  ASSERT_TRUE(sv.ok()) << sv.status().ToString();
  EXPECT_TRUE(sv->spacing_equalized);
  EXPECT_EQ(sv->source_slices, 6);
  const Volume& v = sv->volume;
  ASSERT_EQ(v.nz, 8);  // 9.3 mm in steps of about the smallest (1.3): 7 steps
  EXPECT_NEAR(v.spacing[2], 9.3 / 7, 1e-6);
  for (int j = 0; j < v.nz; ++j) {
    double t = 9.3 * j / 7;
    size_t k = 0;
    while (k + 2 < z.size() && z[k + 1] <= t) ++k;
    double a = (t - z[k]) / (z[k + 1] - z[k]);
    EXPECT_NEAR(v.at(3, 3, j), (1 - a) * 100 * k + a * 100 * (k + 1) - 1024, 1e-3) << j;
  }
  // A missing slice stays an error even when uneven steps are resampled.
  TempDir gap;
  std::vector<double> zg = Steps(7, 2.0);
  zg.erase(zg.begin() + 3);
  WriteSeries(gap.path(), UidFromKey("gap2"), zg, {0, 1, 2, 3, 4, 5});
  o.resample_tilt = true;
  Result<SeriesVolume> g = AssembleSeries(Scan(gap.path())[0], o);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("missing slice"), std::string::npos) << g.status().message();
}

// The real GE head CT (dcm_qa_ct): 8 slices, 18.5 degrees of tilt, steps of
// 12 to 28 mm along the normal.
TEST(DicomSeries, RealGeHeadCtWithTiltAndUnevenSteps) {
  std::vector<DicomSliceHeader> headers;
  const fs::path ge = fs::path(MEDPIPE_PUBLIC_DATA) / "ct_head_ge_dcm_qa_ct";
  for (const char* f : {"01.dcm", "04.dcm", "08.dcm", "12.dcm", "16.dcm", "20.dcm", "24.dcm", "28.dcm"}) {
    Result<DicomSliceHeader> h = ReadSliceHeader(ge / f);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    headers.push_back(*h);
  }
  std::vector<DicomSeries> series = GroupSeries(headers);
  ASSERT_EQ(series.size(), 1u);
  EXPECT_EQ(series[0].slices[0].series_number, "2");
  Result<SeriesVolume> refused = AssembleSeries(series[0], AssembleOptions{});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("gantry tilt of 18.50 degrees"), std::string::npos)
      << refused.status().message();
  AssembleOptions o;
  o.resample_tilt = o.resample_uneven = true;
  Result<SeriesVolume> sv = AssembleSeries(series[0], o);
  ASSERT_TRUE(sv.ok()) << sv.status().ToString();
  EXPECT_NEAR(sv->tilt_degrees, 18.5, 0.01);
  EXPECT_TRUE(sv->tilt_corrected && sv->spacing_equalized);
  const double cos_tilt = 0.9483237;  // the normal's z component
  const double span = (157.7760586 - 5.8360586) * cos_tilt, smallest = (18.4960586 - 5.8360586) * cos_tilt;
  const int slices = static_cast<int>(std::lround(span / smallest)) + 1;
  EXPECT_EQ(slices, 13);
  EXPECT_EQ(sv->volume.nz, slices);
  EXPECT_EQ(sv->volume.nx, 512);
  EXPECT_NEAR(sv->volume.spacing[0], 0.4882812, 1e-7);
  EXPECT_NEAR(sv->volume.spacing[2], span / (slices - 1), 1e-4);
  // The untilted grid's z axis is the slice normal (0, 0.317, 0.948) in LPS.
  EXPECT_NEAR(sv->affine[1][2] / sv->volume.spacing[2], -0.3173047, 1e-5);
  EXPECT_NEAR(sv->affine[2][2] / sv->volume.spacing[2], cos_tilt, 1e-5);
  // Real tissue: the middle slice of a head holds brain (around 30 HU).
  const Volume& v = sv->volume;
  int soft = 0;
  for (int y = 0; y < v.ny; ++y) {
    for (int x = 0; x < v.nx; ++x) soft += v.at(x, y, v.nz / 2) > 0 && v.at(x, y, v.nz / 2) < 80;
  }
  EXPECT_GT(soft, 10000);
}

}  // namespace
}  // namespace medpipe
