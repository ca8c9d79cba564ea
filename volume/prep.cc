#include "volume/prep.h"

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

}  // namespace medpipe
