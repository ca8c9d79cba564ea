#include "volume/prep.h"

#include <algorithm>
#include <cstring>

namespace medpipe {

PrepResult PrepareCt(Volume v, double slope, double intercept, const PrepOptions& o) {
  PrepResult r;
  r.spacing_before = v.spacing;
  r.hu = ApplyRescaleAndClip(v, slope, intercept, o.hu_lo, o.hu_hi);
  if (o.spacing) v = Resample(v, *o.spacing);
  if (o.shape) v = CropOrPad(v, (*o.shape)[0], (*o.shape)[1], (*o.shape)[2], o.hu_lo);
  r.spacing_after = v.spacing;
  r.tensor = WindowChannels(v, o.windows, o.hu_lo, o.hu_hi);
  if (o.keep_hu) r.hu_volume = std::move(v);
  if (o.clahe) ApplyClahe(r.tensor, o.clahe_clip, o.clahe_tiles);
  if (o.symmetric) ToSymmetricRange(r.tensor);
  return r;
}

Result<StreamResult> PrepareCtStreaming(Volume v, double slope, double intercept, const PrepOptions& o,
                                        const StreamOutputs& want) {
  StreamResult r;
  r.spacing_before = v.spacing;
  r.hu = ApplyRescaleAndClip(v, slope, intercept, o.hu_lo, o.hu_hi);
  SliceResampler resampler(v, o.spacing);
  const int rx = resampler.nx(), ry = resampler.ny(), rz = resampler.nz();
  const int W = o.shape ? (*o.shape)[0] : rx, H = o.shape ? (*o.shape)[1] : ry, D = o.shape ? (*o.shape)[2] : rz;
  const AxisCrop cx = CropAxis(rx, W), cy = CropAxis(ry, H), cz = CropAxis(rz, D);
  const int C = o.windows.empty() ? 1 : static_cast<int>(o.windows.size());
  r.channels = C, r.nz = D, r.ny = H, r.nx = W;
  r.spacing_after = resampler.spacing();
  const size_t plane = static_cast<size_t>(W) * H;

  size_t base = 0;
  const size_t elem = NpyElementSize(want.dtype);
  if (want.npy) {
    r.npy = NpyHeader(C, D, H, W, want.dtype);
    base = r.npy.size();
    r.npy.resize(base + static_cast<size_t>(C) * D * plane * elem);
  }
  if (o.keep_hu) {
    r.hu_volume.nx = W, r.hu_volume.ny = H, r.hu_volume.nz = D;
    r.hu_volume.spacing = r.spacing_after;
    r.hu_volume.data.resize(r.hu_volume.size());
  }
  std::vector<int> preview_z = want.preview_slices > 0 ? PreviewSliceIndices(D, want.preview_slices) : std::vector<int>();
  Tensor4 preview;
  preview.channels = C, preview.nz = static_cast<int>(preview_z.size()), preview.ny = H, preview.nx = W;
  preview.data.resize(static_cast<size_t>(C) * preview_z.size() * plane);
  std::vector<int> png_z = want.select_slices ? want.select_slices(D, want.select_arg) : std::vector<int>();

  std::optional<SliceClahe> clahe;
  if (o.clahe) clahe.emplace(o.clahe_clip, o.clahe_tiles);
  std::vector<float> resampled(static_cast<size_t>(rx) * ry), hu(plane);
  Tensor4 one;  // the current output slice, all channels: C x 1 x H x W
  one.channels = C, one.nz = 1, one.ny = H, one.nx = W;
  one.data.resize(static_cast<size_t>(C) * plane);
  for (int z = 0; z < D; ++z) {
    std::fill(hu.begin(), hu.end(), o.hu_lo);
    if (z >= cz.dst && z < cz.dst + cz.len) {
      resampler.Slice(z - cz.dst + cz.src, resampled.data());
      for (int y = 0; y < cy.len; ++y) {
        std::memcpy(&hu[static_cast<size_t>(cy.dst + y) * W + cx.dst],
                    &resampled[static_cast<size_t>(cy.src + y) * rx + cx.src], static_cast<size_t>(cx.len) * sizeof(float));
      }
    }
    if (o.keep_hu) std::memcpy(&r.hu_volume.data[static_cast<size_t>(z) * plane], hu.data(), plane * sizeof(float));
    for (int c = 0; c < C; ++c) {
      float* ch = one.data.data() + static_cast<size_t>(c) * plane;
      WindowValues(hu.data(), plane, o.windows, static_cast<size_t>(c), o.hu_lo, o.hu_hi, ch);
      if (clahe) clahe->Apply(ch, W, H);
      if (o.symmetric) {
        for (size_t i = 0; i < plane; ++i) ch[i] = 2 * ch[i] - 1;
      }
      if (want.npy) ToNpyElements(ch, W, H, want.dtype, &r.npy[base + (static_cast<size_t>(c) * D + z) * plane * elem]);
      for (size_t p = 0; p < preview_z.size(); ++p) {
        if (preview_z[p] == z) {
          std::memcpy(&preview.data[(static_cast<size_t>(c) * preview_z.size() + p) * plane], ch, plane * sizeof(float));
        }
      }
    }
    if (std::find(png_z.begin(), png_z.end(), z) != png_z.end()) {
      MEDPIPE_ASSIGN_OR_RETURN(std::string png, SlicePng(one, 0, o.symmetric ? -1.0f : 0.0f, 1.0f));
      r.slice_pngs.emplace_back(z, std::move(png));
    }
  }
  if (!preview_z.empty()) {
    MEDPIPE_ASSIGN_OR_RETURN(r.preview_png, PreviewStrip(preview, preview.nz, o.symmetric ? -1.0f : 0.0f, 1.0f));
  }
  return r;
}

}  // namespace medpipe
