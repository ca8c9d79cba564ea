// DICOM series assembly on DCMTK-written series: shuffled files, a missing
// slice, unequal steps, two series in one folder, mixed sizes, a gantry tilt.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tests/test_util.h"
#include "volume/dicom_series.h"
#include "volume/dicom_write.h"

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

}  // namespace
}  // namespace medpipe
