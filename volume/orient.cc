#include "volume/orient.h"

#include <opencv2/core.hpp>

#include <cmath>
#include <cstddef>

namespace medpipe {

const char* CanonicalName(Canonical c) { return c == Canonical::kLPS ? "LPS" : "RAS"; }

bool AxisMap::identity() const {
  for (int i = 0; i < 3; ++i) {
    if (axis[static_cast<size_t>(i)] != i || flip[static_cast<size_t>(i)]) return false;
  }
  return true;
}

namespace {

// nibabel.orientations.io_orientation on the 3x3 direction part `rzs`
// (world rows, voxel columns), step by step: divide each column by its
// length, take the closest orthogonal matrix (polar decomposition, from an
// SVD: U * Vt), then give each voxel axis in turn the world axis of its
// largest entry (numpy's argmax: the first on a tie) and zero that world row
// so no later voxel axis takes it.
Result<AxisMap> IoOrientation(double rzs[3][3]) {
  cv::Mat rs(3, 3, CV_64F);
  for (int c = 0; c < 3; ++c) {
    double len = std::sqrt(rzs[0][c] * rzs[0][c] + rzs[1][c] * rzs[1][c] + rzs[2][c] * rzs[2][c]);
    if (!(len > 0) || !std::isfinite(len)) return Status::Invalid("the affine has an axis of zero length");
    for (int r = 0; r < 3; ++r) rs.at<double>(r, c) = rzs[r][c] / len;
  }
  cv::Mat w, u, vt;
  cv::SVD::compute(rs, w, u, vt);
  // nibabel's rank threshold: S.max() * max(shape) * eps.
  const double tol = w.at<double>(0) * 3 * 2.220446049250313e-16;
  if (!(w.at<double>(2) > tol)) return Status::Invalid("the affine's axes are not independent");
  cv::Mat r = u * vt;
  AxisMap m;
  for (int in = 0; in < 3; ++in) {
    int best = -1;
    double best_abs = 0;
    for (int out = 0; out < 3; ++out) {
      double a = std::abs(r.at<double>(out, in));
      if (a > best_abs) best = out, best_abs = a;
    }
    // numpy.allclose(col, 0): every entry within 1e-8 of zero.
    if (best < 0 || best_abs <= 1e-8) return Status::Invalid("the affine's axes are not independent");
    m.axis[static_cast<size_t>(in)] = best;
    m.flip[static_cast<size_t>(in)] = r.at<double>(best, in) < 0;
    for (int c = 0; c < 3; ++c) r.at<double>(best, c) = 0;
  }
  return m;
}

}  // namespace

Result<AxisMap> ClosestCanonical(const Affine& a, Canonical target) {
  double rzs[3][3];
  for (int r = 0; r < 3; ++r) {
    // LPS+ is RAS+ with x and y negated.
    const double sign = target == Canonical::kLPS && r < 2 ? -1 : 1;
    for (int c = 0; c < 3; ++c) rzs[r][c] = sign * a[static_cast<size_t>(r)][static_cast<size_t>(c)];
  }
  return IoOrientation(rzs);
}

std::string AxisCodes(const Affine& a) {
  Result<AxisMap> m = ClosestCanonical(a, Canonical::kRAS);
  if (!m.ok()) return "???";
  static const char kLetters[3][2] = {{'R', 'L'}, {'A', 'P'}, {'S', 'I'}};
  std::string out;
  for (size_t i = 0; i < 3; ++i) out += kLetters[m->axis[i]][m->flip[i] ? 1 : 0];
  return out;
}

Volume Reorient(const Volume& v, const AxisMap& m, Affine* affine) {
  const std::array<int, 3> in_n = {v.nx, v.ny, v.nz};
  std::array<int, 3> out_n{};
  Volume o;
  for (size_t i = 0; i < 3; ++i) {
    out_n[static_cast<size_t>(m.axis[i])] = in_n[i];
    o.spacing[static_cast<size_t>(m.axis[i])] = v.spacing[i];
  }
  o.nx = out_n[0], o.ny = out_n[1], o.nz = out_n[2];
  o.data.resize(o.size());
  // The output stride of each input axis (negative when reversed) and the
  // output index of input voxel (0, 0, 0).
  const std::array<ptrdiff_t, 3> out_stride = {1, static_cast<ptrdiff_t>(o.nx), static_cast<ptrdiff_t>(o.nx) * o.ny};
  std::array<ptrdiff_t, 3> step{};
  ptrdiff_t start = 0;
  for (size_t i = 0; i < 3; ++i) {
    ptrdiff_t s = out_stride[static_cast<size_t>(m.axis[i])];
    step[i] = m.flip[i] ? -s : s;
    if (m.flip[i]) start += s * (in_n[i] - 1);
  }
  size_t src = 0;
  for (int z = 0; z < v.nz; ++z) {
    for (int y = 0; y < v.ny; ++y) {
      ptrdiff_t dst = start + step[2] * z + step[1] * y;
      for (int x = 0; x < v.nx; ++x, dst += step[0]) o.data[static_cast<size_t>(dst)] = v.data[src++];
    }
  }
  if (affine) {
    Affine in = *affine, out{};
    for (size_t r = 0; r < 3; ++r) {
      out[r][3] = in[r][3];
      for (size_t i = 0; i < 3; ++i) {
        const size_t j = static_cast<size_t>(m.axis[i]);
        out[r][j] = m.flip[i] ? -in[r][i] : in[r][i];
        if (m.flip[i]) out[r][3] += in[r][i] * (in_n[i] - 1);
      }
    }
    *affine = out;
  }
  return o;
}

}  // namespace medpipe
