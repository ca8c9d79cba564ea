// The fast path of DICOM windowing, below dicom/convert: for the common
// monochrome image with a linear modality transform (rescale slope and
// intercept, no Modality LUT Sequence) under a linear VOI window, the stored
// values are read straight from DCMTK's decoded pixel data (DcmDataset, after
// DCMTK decompressed any transfer syntax it decodes) and mapped to output
// values through one lookup table indexed by the stored value. DicomImage
// would make an intermediate copy of every frame's modality values and then
// window that copy; the table does both steps at once.
//
// The table reproduces DCMTK 3.6.7's arithmetic exactly (dimoipxt.h rescale:
// modality value truncated to an integer; dimoopxt.h window, "VOI LINEAR #6":
// the Supplement 33 borders and a truncated linear ramp), so the output
// equals DicomImage's and `dcm2pnm +Ww` pixel for pixel; tests check both
// paths over the whole test corpus. Everything else (palette and colour,
// Modality LUT Sequences, sigmoid and LINEAR_EXACT, min-max and "none"
// windows, a Presentation LUT Shape, unusual bit layouts) stays with
// DicomImage.
#pragma once

#include <cstdint>
#include <optional>

class DcmDataset;

namespace medpipe {

// What the table path needs of one file; valid while its dataset lives.
struct LinearMono {
  const uint8_t* data8 = nullptr;    // BitsAllocated 8
  const uint16_t* data16 = nullptr;  // BitsAllocated 16, host byte order
  int bits_allocated = 16, bits_stored = 16, high_bit = 15;
  bool is_signed = false;
  bool monochrome1 = false;  // MONOCHROME1: the output is inverted
  double slope = 1, intercept = 0;
  int rows = 0, cols = 0, frames = 1;
  // The file's first VOI window, when it has a usable one (width >= 1).
  bool has_file_window = false;
  double file_center = 0, file_width = 0;
};

// The file's stored values and parameters if the table path applies to it,
// else nullopt. REQUIRES: the pixel data is uncompressed (ConvertDicomFile
// has chosen the little-endian explicit representation of encapsulated
// data).
std::optional<LinearMono> ProbeLinearMono(DcmDataset* ds);

// Renders frame `frame` (0-based, < src.frames) with the linear window
// (center, width >= 1) into `out`: rows * cols samples of `bits` (8 or 16,
// native-endian) bits. The table is built once per thread for each
// (slope, intercept, window, bits, stored bit layout, polarity) and reused
// while those stay the same, as they do across a series.
void RenderLinearMono(const LinearMono& src, int frame, double center, double width, int bits, uint8_t* out);

}  // namespace medpipe
