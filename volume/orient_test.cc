// Orientation against nibabel (as_closest_canonical, io_orientation), run as
// /usr/bin/python3 with Debian's python3-nibabel, and NIfTI files cut short.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <sstream>

#include "tests/test_util.h"
#include "volume/nifti_io.h"
#include "volume/orient.h"

namespace medpipe {
namespace {

using testing::TempDir;

std::vector<float> ReadF32(const fs::path& p) {
  std::string s = testing::ReadText(p);
  std::vector<float> out(s.size() / 4);
  std::memcpy(out.data(), s.data(), out.size() * 4);
  return out;
}

// Writes NIfTI files with nibabel (its own header writer) in several stored
// orientations, and beside each its as_closest_canonical voxels (x fastest)
// and, for LPS, the voxels nibabel's io_orientation towards LPS gives.
const char* kWriter = R"(
import numpy as np, nibabel as nib, sys
from nibabel.orientations import io_orientation, apply_orientation
out = sys.argv[1]
rng = np.random.default_rng(7)
data = rng.integers(-1000, 1000, size=(5, 4, 3)).astype(np.int16)
def rot(ax, deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    m = np.eye(3)
    i, j = [k for k in range(3) if k != ax]
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m
cases = {
    'ras': np.diag([0.7, 0.8, 2.0]),
    'lps': np.diag([-0.7, -0.8, 2.0]),
    'sagittal': np.array([[0, 0, -2.0], [0.7, 0, 0], [0, -0.8, 0]]),
    'oblique': rot(2, 30) @ rot(0, -20) @ np.diag([0.7, 0.8, 2.0]),
    'oblique44': rot(2, 44) @ np.diag([1.0, 1.0, 2.0]),
    'flipped_oblique': rot(1, 170) @ rot(2, -60) @ np.diag([0.7, -0.8, 2.0]),
}
for name, m in cases.items():
    aff = np.eye(4); aff[:3, :3] = m; aff[:3, 3] = [10, -20, 30]
    for form in ('sform', 'qform'):
        img = nib.Nifti1Image(data, aff)
        if form == 'qform':
            img.set_sform(None, code=0); img.set_qform(aff, code=1)
        else:
            img.set_qform(None, code=0); img.set_sform(aff, code=2)
        f = f'{out}/{name}_{form}.nii.gz'
        nib.save(img, f)
        back = nib.load(f)
        can = nib.as_closest_canonical(back)
        np.asarray(can.dataobj, dtype='<f4').flatten(order='F').tofile(f + '.ras')
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        lps = apply_orientation(np.asarray(back.dataobj), io_orientation(flip @ back.affine))
        lps.astype('<f4').flatten(order='F').tofile(f + '.lps')
        print(f'{name}_{form}', ''.join(nib.aff2axcodes(back.affine)), *can.header.get_zooms())
# No sform, no qform: Analyze's x-reversed affine.
hdr = nib.Nifti1Header(); hdr.set_data_shape(data.shape); hdr.set_zooms((0.7, 0.8, 2.0))
img = nib.Nifti1Image(data, None, hdr); img.set_qform(None, code=0); img.set_sform(None, code=0)
nib.save(img, f'{out}/none_none.nii.gz')
back = nib.load(f'{out}/none_none.nii.gz')
can = nib.as_closest_canonical(back)
np.asarray(can.dataobj, dtype='<f4').flatten(order='F').tofile(f'{out}/none_none.nii.gz.ras')
flip = np.diag([-1.0, -1.0, 1.0, 1.0])
apply_orientation(np.asarray(back.dataobj), io_orientation(flip @ back.affine)).astype('<f4').flatten(order='F').tofile(f'{out}/none_none.nii.gz.lps')
print('none_none', ''.join(nib.aff2axcodes(back.affine)), *can.header.get_zooms())
)";

TEST(Orientation, ReorientedNiftiEqualsNibabelClosestCanonical) {
  TempDir dir;
  testing::WriteText(dir / "w.py", kWriter);
  testing::ProcessResult p = testing::RunProcess({"/usr/bin/python3", (dir / "w.py").string(), dir.path().string()});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  std::istringstream lines(p.out);
  int cases = 0;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream in(line);
    std::string name, codes;
    std::array<double, 3> zooms{};
    in >> name >> codes >> zooms[0] >> zooms[1] >> zooms[2];
    fs::path file = dir / (name + ".nii.gz");
    Result<NiftiVolume> n = ReadNifti(file);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(AxisCodes(n->affine), codes) << name;
    for (Canonical target : {Canonical::kRAS, Canonical::kLPS}) {
      Result<AxisMap> m = ClosestCanonical(n->affine, target);
      ASSERT_TRUE(m.ok()) << name;
      Volume v = Reorient(n->volume, *m);
      fs::path ref = file.string() + (target == Canonical::kRAS ? ".ras" : ".lps");
      EXPECT_EQ(v.data, ReadF32(ref)) << name << " " << CanonicalName(target);
      if (target == Canonical::kRAS) {
        // Spacing follows the axes (nibabel's zooms of the canonical image).
        for (size_t a = 0; a < 3; ++a) EXPECT_NEAR(v.spacing[a], zooms[a], 1e-5) << name << " axis " << a;
      }
    }
    ++cases;
  }
  EXPECT_EQ(cases, 13);
}

TEST(Orientation, ReorientUpdatesTheAffine) {
  Volume v;
  v.nx = 3, v.ny = 2, v.nz = 2;
  v.spacing = {0.5, 0.6, 2.0};
  v.data.resize(v.size());
  for (size_t i = 0; i < v.data.size(); ++i) v.data[i] = static_cast<float>(i);
  // DICOM-like: x towards L, y towards P (RAS rows negated).
  Affine a = {{{-0.5, 0, 0, 10}, {0, -0.6, 0, 20}, {0, 0, 2.0, -5}}};
  Result<AxisMap> m = ClosestCanonical(a, Canonical::kRAS);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->flip[0] && m->flip[1] && !m->flip[2]);
  Affine b = a;
  Volume r = Reorient(v, *m, &b);
  EXPECT_EQ(r.at(0, 0, 0), v.at(2, 1, 0));
  EXPECT_EQ(r.at(2, 1, 1), v.at(0, 0, 1));
  EXPECT_DOUBLE_EQ(b[0][0], 0.5);
  EXPECT_DOUBLE_EQ(b[0][3], 10 - 0.5 * 2);  // the old last voxel along x
  EXPECT_DOUBLE_EQ(b[1][3], 20 - 0.6);
  EXPECT_EQ(AxisCodes(b), "RAS");
  EXPECT_TRUE(ClosestCanonical(a, Canonical::kLPS)->identity());
  Affine flat = {{{1, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 1, 0}}};
  EXPECT_FALSE(ClosestCanonical(flat, Canonical::kRAS).ok());
}

// A .nii or .nii.gz cut to 50% or 90% of its length is an error naming the
// missing bytes and slices; nifticlib alone would pad it with zeros.
TEST(NiftiIo, TruncatedFileIsAnErrorNotABlankVolume) {
  TempDir dir;
  Volume v;
  v.nx = 16, v.ny = 16, v.nz = 20;
  v.data.resize(v.size());
  for (size_t i = 0; i < v.data.size(); ++i) v.data[i] = static_cast<float>(std::sin(i * 0.37) * 900);
  for (bool gz : {false, true}) {
    Result<std::string> bytes = NiftiBytes(v, gz);
    ASSERT_TRUE(bytes.ok());
    for (double keep : {0.5, 0.9}) {
      fs::path f = dir / fmt::format("cut{}{}", static_cast<int>(keep * 100), gz ? ".nii.gz" : ".nii");
      testing::WriteText(f, bytes->substr(0, static_cast<size_t>(bytes->size() * keep)));
      Result<NiftiVolume> n = ReadNifti(f);
      ASSERT_FALSE(n.ok()) << f;
      const std::string& msg = n.status().message();
      EXPECT_NE(msg.find(f.string()), std::string::npos) << msg;
      EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
      EXPECT_NE(msg.find("bytes missing"), std::string::npos) << msg;
      EXPECT_NE(msg.find("of 20 slices incomplete"), std::string::npos) << msg;
    }
    fs::path whole = dir / (gz ? "whole.nii.gz" : "whole.nii");
    testing::WriteText(whole, *bytes);
    Result<NiftiVolume> n = ReadNifti(whole);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(n->volume.data, v.data);
  }
  // The raw .nii cut in half misses exactly half the voxel bytes past the
  // 352-byte header.
  Result<NiftiVolume> half = ReadNifti(dir / "cut50.nii");
  const size_t data_bytes = v.size() * 4, file = 352 + data_bytes;
  EXPECT_NE(half.status().message().find(fmt::format("after {} of {} bytes", file / 2 - 352, data_bytes)),
            std::string::npos)
      << half.status().message();
}

}  // namespace
}  // namespace medpipe
