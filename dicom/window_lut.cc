#include "dicom/window_lut.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace medpipe {

namespace {

std::string Trimmed(DcmDataset* ds, const DcmTagKey& key) {
  OFString v;
  if (ds->findAndGetOFString(key, v).bad()) return std::string();
  std::string s = v.c_str();
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(0, 1);
  return s;
}

// One thread's table and the key it was built for.
struct Table {
  double slope = 0, intercept = 0, center = 0, width = 0;
  int bits = 0, bits_stored = 0;
  bool is_signed = false, monochrome1 = false;
  bool built = false;
  std::vector<uint16_t> values;  // indexed by the stored bit pattern
};

// DCMTK's modality value of stored value `s` (dimoipxt.h, rescale): the
// rescaled value cast to its integer intermediate type, i.e. truncated.
double ModalityValue(double s, double slope, double intercept) {
  if (slope == 1.0 && intercept == 0.0) return s;
  double v = slope == 1.0 ? s + intercept : intercept == 0.0 ? s * slope : s * slope + intercept;
  return std::trunc(v);
}

void Build(Table* t) {
  const size_t n = size_t{1} << t->bits_stored;
  t->values.resize(n);
  const double maxout = t->bits == 16 ? 65535.0 : 255.0;
  // dimoopxt.h, window() without presentation or display LUT ("VOI LINEAR
  // #6"); MONOCHROME1 swaps the output's low and high ends.
  const double low = t->monochrome1 ? maxout : 0.0, high = t->monochrome1 ? 0.0 : maxout;
  const double width_1 = t->width - 1;
  const double left = t->center - 0.5 - width_1 / 2;
  const double right = t->center - 0.5 + width_1 / 2;
  const double outrange = high - low;
  const double offset = width_1 == 0 ? 0 : (high - ((t->center - 0.5) / width_1 + 0.5) * outrange);
  const double gradient = width_1 == 0 ? 0 : outrange / width_1;
  for (size_t v = 0; v < n; ++v) {
    double s = static_cast<double>(v);
    if (t->is_signed && (v >> (t->bits_stored - 1)) & 1) s -= static_cast<double>(n);
    const double m = ModalityValue(s, t->slope, t->intercept);
    double out;
    if (m <= left) out = low;
    else if (m > right) out = high;
    else out = offset + m * gradient;
    // The cast to the unsigned output type truncates, as DCMTK's does.
    t->values[v] = static_cast<uint16_t>(out);
  }
  t->built = true;
}

const Table& TableFor(const LinearMono& src, double center, double width, int bits) {
  thread_local Table t;
  if (!t.built || t.slope != src.slope || t.intercept != src.intercept || t.center != center || t.width != width ||
      t.bits != bits || t.bits_stored != src.bits_stored || t.is_signed != src.is_signed ||
      t.monochrome1 != src.monochrome1) {
    t.slope = src.slope, t.intercept = src.intercept, t.center = center, t.width = width;
    t.bits = bits, t.bits_stored = src.bits_stored, t.is_signed = src.is_signed, t.monochrome1 = src.monochrome1;
    Build(&t);
  }
  return t;
}

template <typename In, typename Out>
void Apply(const In* in, size_t n, int shift, uint32_t mask, const uint16_t* lut, Out* out) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<Out>(lut[(static_cast<uint32_t>(in[i]) >> shift) & mask]);
}

}  // namespace

std::optional<LinearMono> ProbeLinearMono(DcmDataset* ds) {
  LinearMono s;
  const std::string photometric = Trimmed(ds, DCM_PhotometricInterpretation);
  if (photometric != "MONOCHROME1" && photometric != "MONOCHROME2") return std::nullopt;
  s.monochrome1 = photometric == "MONOCHROME1";
  Uint16 u = 0;
  if (ds->findAndGetUint16(DCM_SamplesPerPixel, u).bad() || u != 1) return std::nullopt;
  if (ds->findAndGetUint16(DCM_BitsAllocated, u).bad() || (u != 8 && u != 16)) return std::nullopt;
  s.bits_allocated = u;
  if (ds->findAndGetUint16(DCM_BitsStored, u).bad() || u < 1 || u > s.bits_allocated) return std::nullopt;
  s.bits_stored = u;
  if (ds->findAndGetUint16(DCM_HighBit, u).bad() || u + 1 < s.bits_stored || u >= s.bits_allocated) {
    return std::nullopt;
  }
  s.high_bit = u;
  if (ds->findAndGetUint16(DCM_PixelRepresentation, u).bad() || u > 1) return std::nullopt;
  s.is_signed = u == 1;
  if (ds->findAndGetUint16(DCM_Rows, u).bad() || u == 0) return std::nullopt;
  s.rows = u;
  if (ds->findAndGetUint16(DCM_Columns, u).bad() || u == 0) return std::nullopt;
  s.cols = u;
  Sint32 frames = 0;
  s.frames = ds->findAndGetSint32(DCM_NumberOfFrames, frames).good() && frames > 0 ? frames : 1;

  // A Modality LUT Sequence, a Presentation LUT Shape or a pixel-level
  // overlay make DicomImage do more than rescale and window.
  if (ds->tagExists(DCM_ModalityLUTSequence) || ds->tagExists(DCM_PresentationLUTShape)) return std::nullopt;
  Float64 f = 0;
  if (ds->findAndGetFloat64(DCM_RescaleSlope, f).good()) {
    if (!std::isfinite(f) || f == 0) return std::nullopt;
    s.slope = f;
  }
  if (ds->findAndGetFloat64(DCM_RescaleIntercept, f).good()) {
    if (!std::isfinite(f)) return std::nullopt;
    s.intercept = f;
  }
  Float64 c = 0, w = 0;
  if (ds->findAndGetFloat64(DCM_WindowCenter, c).good() && ds->findAndGetFloat64(DCM_WindowWidth, w).good() &&
      std::isfinite(c) && std::isfinite(w) && w >= 1) {
    s.has_file_window = true;
    s.file_center = c;
    s.file_width = w;
  }

  // The stored values, already decompressed and in host byte order. 8-bit
  // samples in an OW element of a big-endian file are byte-swapped pairs:
  // left to DicomImage.
  const size_t count = static_cast<size_t>(s.rows) * s.cols * s.frames;
  if (s.bits_allocated == 16) {
    const Uint16* p = nullptr;
    unsigned long n = 0;
    if (ds->findAndGetUint16Array(DCM_PixelData, p, &n).bad() || p == nullptr || n < count) return std::nullopt;
    s.data16 = p;
  } else {
    if (DcmXfer(ds->getCurrentXfer()).isBigEndian()) return std::nullopt;
    const Uint8* p = nullptr;
    unsigned long n = 0;
    if (ds->findAndGetUint8Array(DCM_PixelData, p, &n).bad() || p == nullptr || n < count) return std::nullopt;
    s.data8 = p;
  }
  return s;
}

void RenderLinearMono(const LinearMono& src, int frame, double center, double width, int bits, uint8_t* out) {
  const Table& t = TableFor(src, center, width, bits);
  const size_t n = static_cast<size_t>(src.rows) * src.cols;
  const size_t off = n * static_cast<size_t>(frame);
  const int shift = src.high_bit + 1 - src.bits_stored;
  const uint32_t mask = (uint32_t{1} << src.bits_stored) - 1;
  if (bits == 16) {
    thread_local std::vector<uint16_t> tmp;
    tmp.resize(n);
    if (src.data16) Apply(src.data16 + off, n, shift, mask, t.values.data(), tmp.data());
    else Apply(src.data8 + off, n, shift, mask, t.values.data(), tmp.data());
    std::memcpy(out, tmp.data(), n * 2);
  } else {
    if (src.data16) Apply(src.data16 + off, n, shift, mask, t.values.data(), out);
    else Apply(src.data8 + off, n, shift, mask, t.values.data(), out);
  }
}

}  // namespace medpipe
