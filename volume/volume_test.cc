// The volume library against hand-computed values and against independent
// Python references (scipy.ndimage.zoom, cv2.createCLAHE, nibabel, numpy),
// run as /usr/bin/python3 (Debian's python3-scipy, -nibabel, -opencv, -numpy).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tests/test_util.h"
#include "volume/nifti_io.h"
#include "volume/ops.h"
#include "volume/prep.h"

namespace medpipe {
namespace {

using testing::TempDir;

Volume Make(int nx, int ny, int nz, std::array<double, 3> spacing, float (*f)(int, int, int)) {
  Volume v;
  v.nx = nx, v.ny = ny, v.nz = nz;
  v.spacing = spacing;
  v.data.resize(v.size());
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x) v.at(x, y, z) = f(x, y, z);
  return v;
}

void WriteRaw(const fs::path& p, const std::vector<float>& data) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size() * 4));
}

std::vector<float> ReadRaw(const fs::path& p) {
  std::string s = testing::ReadText(p);
  std::vector<float> out(s.size() / 4);
  std::memcpy(out.data(), s.data(), out.size() * 4);
  return out;
}

testing::ProcessResult Python(const fs::path& dir, const std::string& script) {
  testing::WriteText(dir / "ref.py", script);
  return testing::RunProcess({"/usr/bin/python3", (dir / "ref.py").string()});
}

TEST(VolumeOps, RescaleClipByHand) {
  Volume v = Make(4, 1, 1, {1, 1, 1}, [](int x, int, int) { return static_cast<float>(x * 1000); });
  // Stored 0, 1000, 2000, 3000 with slope 0.5, intercept -1024 -> -1024, -524, -24, 476.
  HuStats s = ApplyRescaleAndClip(v, 0.5, -1024, -1000, 400);
  EXPECT_FLOAT_EQ(s.min, -1024);
  EXPECT_FLOAT_EQ(s.max, 476);
  EXPECT_EQ(v.data, (std::vector<float>{-1000, -524, -24, 400}));
}

TEST(VolumeOps, WindowsAndNormalisationByHand) {
  Volume v = Make(3, 1, 1, {1, 1, 1}, [](int x, int, int) { return std::array<float, 3>{-600, 40, 400}[x]; });
  std::vector<Window> w = {*ParseWindow("lung"), *ParseWindow("mediastinum"), *ParseWindow("100/200")};
  Tensor4 t = WindowChannels(v, w, -1000, 400);
  ASSERT_EQ(t.channels, 3);
  // lung -600/1500: (HU + 1350) / 1500.
  EXPECT_NEAR(t.data[0], 0.5, 1e-6);
  EXPECT_NEAR(t.data[1], 1390.0 / 1500, 1e-6);
  EXPECT_NEAR(t.data[2], 1.0, 1e-6);
  // mediastinum 40/400: (HU + 160) / 400, clamped.
  EXPECT_NEAR(t.data[3], 0.0, 1e-6);
  EXPECT_NEAR(t.data[4], 0.5, 1e-6);
  EXPECT_NEAR(t.data[5], 1.0, 1e-6);
  // 100/200: (HU - 0) / 200.
  EXPECT_NEAR(t.data[7], 0.2, 1e-6);
  // No windows: the HU range [-1000, 400].
  Tensor4 h = WindowChannels(v, {}, -1000, 400);
  ASSERT_EQ(h.channels, 1);
  EXPECT_NEAR(h.data[0], 400.0 / 1400, 1e-6);
  ToSymmetricRange(h);
  EXPECT_NEAR(h.data[0], 2 * 400.0 / 1400 - 1, 1e-6);
  EXPECT_FALSE(ParseWindow("40/0").ok());
  EXPECT_FALSE(ParseWindow("lungs").ok());
}

TEST(VolumeOps, CropAndPadByHand) {
  Volume v = Make(5, 4, 3, {1, 1, 1}, [](int x, int y, int z) { return static_cast<float>(100 * z + 10 * y + x); });
  Volume c = CropOrPad(v, 3, 2, 3, -1000);  // crop x by 2 (start 1), y by 2 (start 1)
  EXPECT_EQ(c.at(0, 0, 0), 11);
  EXPECT_EQ(c.at(2, 1, 2), 223);
  Volume p = CropOrPad(v, 7, 4, 6, -1000);  // pad x by 2 (1 before), z by 3 (1 before)
  EXPECT_EQ(p.at(0, 0, 0), -1000);
  EXPECT_EQ(p.at(1, 0, 1), 0);
  EXPECT_EQ(p.at(5, 3, 3), 234);
  EXPECT_EQ(p.at(6, 3, 3), -1000);
  EXPECT_EQ(p.at(3, 2, 5), -1000);
}

TEST(VolumeOps, ResampleKeepsARampAndMovesAPoint) {
  // f = 2x + 3y + 5z on a grid of spacing (1, 1, 2) resampled to (0.5, 0.8, 1):
  // inside (away from the clamped edges) the result is the same plane in mm.
  Volume v = Make(20, 20, 10, {1, 1, 2}, [](int x, int y, int z) { return static_cast<float>(2 * x + 3 * y + 5 * z); });
  Volume r = Resample(v, {0.5, 0.8, 1.0});
  ASSERT_EQ(r.nx, 40);
  ASSERT_EQ(r.ny, 25);
  ASSERT_EQ(r.nz, 20);
  for (int z = 2; z < r.nz - 2; ++z) {
    for (int y = 2; y < r.ny - 2; ++y) {
      for (int x = 2; x < r.nx - 2; ++x) {
        // Output voxel k samples input coordinate (k + 0.5) * n / size - 0.5.
        double ix = (x + 0.5) * 20 / 40 - 0.5, iy = (y + 0.5) * 20 / 25 - 0.5, iz = (z + 0.5) * 10 / 20 - 0.5;
        ASSERT_NEAR(r.at(x, y, z), 2 * ix + 3 * iy + 5 * iz, 1e-3) << x << "," << y << "," << z;
      }
    }
  }
  // A point at input (10, 10, 5): its mm position (10.5, 10.5, 11) is output
  // voxel 20.5 - 0.5 = 20 along x at 0.5 mm, and 10.5 along z at 1 mm, whose
  // neighbours 10 and 11 take half each.
  Volume pt = Make(20, 20, 10, {1, 1, 2}, [](int x, int y, int z) { return x == 10 && y == 10 && z == 5 ? 1.0f : 0.0f; });
  Volume rp = Resample(pt, {0.5, 1, 1});
  int bx = 0;
  for (int x = 0; x < rp.nx; ++x) if (rp.at(x, 10, 10) > rp.at(bx, 10, 10)) bx = x;
  EXPECT_TRUE(bx == 20 || bx == 21) << bx;
  EXPECT_NEAR(rp.at(20, 10, 10), rp.at(20, 10, 11), 1e-6);
  EXPECT_GT(rp.at(20, 10, 10), 0.3);
}

TEST(VolumeOps, ResampleMatchesScipyZoom) {
  TempDir dir;
  Volume v = Make(23, 17, 11, {0.7, 0.9, 2.5}, [](int x, int y, int z) {
    return static_cast<float>(std::sin(x * 0.7) * 300 + std::cos(y * 0.45) * 200 + z * z * 3.0 - 100);
  });
  Volume r = Resample(v, {0.5, 0.6, 1.25});
  WriteRaw(dir / "in.f32", v.data);
  testing::ProcessResult p = Python(dir.path(), fmt::format(R"(
import numpy as np, scipy.ndimage as nd
v = np.fromfile('{0}/in.f32', dtype='<f4').reshape(11, 17, 23)
out = nd.zoom(v, ({1}/11, {2}/17, {3}/23), order=1, grid_mode=True, mode='nearest')
assert out.shape == ({1}, {2}, {3}), out.shape
out.astype('<f4').tofile('{0}/ref.f32')
)", dir.path().string(), r.nz, r.ny, r.nx));
  ASSERT_EQ(p.exit_code, 0) << p.err;
  std::vector<float> ref = ReadRaw(dir / "ref.f32");
  ASSERT_EQ(ref.size(), r.data.size());
  auto [mn, mx] = std::minmax_element(v.data.begin(), v.data.end());
  double tol = 1e-3 * (*mx - *mn), worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(ref[i]) - r.data[i]));
  EXPECT_LE(worst, tol) << "worst difference " << worst;
}

TEST(VolumeOps, ClaheEqualsOpenCvPython) {
  TempDir dir;
  Tensor4 t;
  t.channels = 1, t.nz = 1, t.ny = 64, t.nx = 80;
  std::vector<float> raw(64 * 80);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 80; ++x) raw[y * 80 + x] = static_cast<float>(((x * 7 + y * 13) % 97 + (x / 10) * 15) % 256) / 255.0f;
  t.data = raw;
  ApplyClahe(t, 2.0, 8);
  WriteRaw(dir / "in.f32", raw);
  testing::ProcessResult p = Python(dir.path(), fmt::format(R"(
import numpy as np, cv2
v = np.fromfile('{0}/in.f32', dtype='<f4').reshape(64, 80)
u8 = np.clip(np.rint(v * 255), 0, 255).astype(np.uint8)
out = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(u8)
out.astype(np.uint8).tofile('{0}/ref.u8')
)", dir.path().string()));
  ASSERT_EQ(p.exit_code, 0) << p.err;
  std::string ref = testing::ReadText(dir / "ref.u8");
  ASSERT_EQ(ref.size(), t.data.size());
  int diffs = 0;
  for (size_t i = 0; i < ref.size(); ++i) diffs += static_cast<uint8_t>(ref[i]) != std::lround(t.data[i] * 255);
  EXPECT_EQ(diffs, 0);
}

TEST(VolumeIo, NiftiReadEqualsNibabel) {
  TempDir dir;
  Volume v = Make(9, 7, 5, {0.8, 0.9, 2.0}, [](int x, int y, int z) { return static_cast<float>(x * 100 - y * 7 + z * 0.25); });
  for (bool gz : {false, true}) {
    std::string name = gz ? "v.nii.gz" : "v.nii";
    Result<std::string> bytes = NiftiBytes(v, gz);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    testing::WriteText(dir / name, *bytes);
    EXPECT_EQ(gz, static_cast<uint8_t>((*bytes)[0]) == 0x1f);
  }
  // And an int16 file with scaling, written by the example generator.
  testing::ProcessResult g = testing::RunProcess({MEDPIPE_CTVOLGEN, "--out", (dir / "gen").string(), "--patients", "1",
                                                  "--size", "24", "--slices", "6", "--dicom-patients", "0"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  for (std::string name : {"v.nii", "v.nii.gz", "gen/volumes/train_1_a_1.nii.gz"}) {
    Result<NiftiVolume> n = ReadNifti(dir / name);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    testing::ProcessResult p = Python(dir.path(), fmt::format(R"(
import numpy as np, nibabel as nib
img = nib.load('{0}/{1}')
raw = np.asanyarray(img.dataobj.get_unscaled())
print(raw.shape[0], raw.shape[1], raw.shape[2], *img.header.get_zooms()[:3], *img.header.get_slope_inter())
raw.astype('<f4').flatten(order='F').tofile('{0}/ref.f32')
)", dir.path().string(), name));
    ASSERT_EQ(p.exit_code, 0) << p.err;
    std::istringstream line(p.out);
    int nx, ny, nz;
    double sx, sy, sz;
    std::string slope, inter;
    line >> nx >> ny >> nz >> sx >> sy >> sz >> slope >> inter;
    EXPECT_EQ(n->volume.nx, nx);
    EXPECT_EQ(n->volume.ny, ny);
    EXPECT_EQ(n->volume.nz, nz);
    EXPECT_NEAR(n->volume.spacing[0], sx, 1e-6);
    EXPECT_NEAR(n->volume.spacing[2], sz, 1e-6);
    if (slope != "None") {
      EXPECT_NEAR(n->slope, std::stod(slope), 1e-9) << name;
      EXPECT_NEAR(n->intercept, std::stod(inter), 1e-9) << name;
    }
    EXPECT_EQ(ReadRaw(dir / "ref.f32"), n->volume.data) << name;
  }
  EXPECT_FALSE(ReadNifti(dir / "ref.py").ok());
}

// The streaming path ctprep uses gives the bytes of the whole-tensor one.
TEST(VolumeOps, StreamingEqualsWholeTensor) {
  Volume v = Make(30, 26, 14, {0.8, 0.7, 2.0}, [](int x, int y, int z) {
    return static_cast<float>(1024 + 600 * std::sin(x * 0.4) + 300 * std::cos(y * 0.3) + 40 * z - 900);
  });
  PrepOptions o;
  o.hu_lo = -1000, o.hu_hi = 400;
  o.spacing = std::array<double, 3>{0.6, 0.9, 1.5};
  o.shape = std::array<int, 3>{36, 16, 21};  // pad x and z, crop y
  o.windows = {*ParseWindow("lung"), *ParseWindow("mediastinum"), *ParseWindow("bone")};
  o.clahe = true;
  o.keep_hu = true;
  for (bool symmetric : {false, true}) {
    o.symmetric = symmetric;
    PrepResult whole = PrepareCt(v, 1, -1024, o);
    StreamOutputs want;
    want.preview_slices = 4;
    want.select_slices = [](int nz, const void*) { return std::vector<int>{0, nz / 2, nz - 1}; };
    Result<StreamResult> s = PrepareCtStreaming(v, 1, -1024, o, want);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->npy, NpyBytes(whole.tensor, NpyType::kFloat16));
    const float lo = symmetric ? -1.0f : 0.0f;
    EXPECT_EQ(s->preview_png, *PreviewStrip(whole.tensor, 4, lo, 1.0f));
    ASSERT_EQ(s->slice_pngs.size(), 3u);
    EXPECT_EQ(s->slice_pngs[2].first, 20);
    EXPECT_EQ(s->slice_pngs[2].second, *SlicePng(whole.tensor, 20, lo, 1.0f));
    EXPECT_EQ(s->hu_volume.data, whole.hu_volume.data);
    EXPECT_EQ(s->spacing_after, whole.spacing_after);
  }
}

TEST(VolumeIo, NpyLoadsInNumpy) {
  TempDir dir;
  Volume v = Make(6, 5, 4, {1, 1, 1}, [](int x, int y, int z) { return static_cast<float>(x * 60 + y * 10 + z * 80 - 1000); });
  PrepOptions o;
  o.windows = {*ParseWindow("lung"), *ParseWindow("mediastinum")};
  PrepResult r = PrepareCt(v, 1, 0, o);
  testing::WriteText(dir / "a.npy", NpyBytes(r.tensor, NpyType::kFloat16));
  testing::WriteText(dir / "b.npy", NpyBytes(r.tensor, NpyType::kUint8));
  WriteRaw(dir / "t.f32", r.tensor.data);
  testing::ProcessResult p = Python(dir.path(), fmt::format(R"(
import numpy as np
t = np.fromfile('{0}/t.f32', dtype='<f4').reshape(2, 4, 5, 6)
a = np.load('{0}/a.npy'); b = np.load('{0}/b.npy')
assert a.shape == (2, 4, 5, 6) and a.dtype == np.float16, (a.shape, a.dtype)
assert b.shape == (2, 4, 5, 6) and b.dtype == np.uint8, (b.shape, b.dtype)
assert np.array_equal(a, t.astype(np.float16))
assert np.abs(b.astype(int) - np.rint(t * 255)).max() <= 0
print('ok')
)", dir.path().string()));
  EXPECT_EQ(p.exit_code, 0) << p.err;
  EXPECT_EQ(p.out, "ok\n");
}

}  // namespace
}  // namespace medpipe
