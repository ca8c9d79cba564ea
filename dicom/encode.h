// Pixel buffers to image files, below dicom/convert: JPEG encoding
// (libjpeg-turbo) and area resizing (OpenCV). PNG encoding is EncodePng in
// dataset/image_io.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace medpipe {

// An interleaved image: `channels` samples per pixel, 8-bit samples in
// `bytes`, or 16-bit native-endian samples (2 bytes each) when bit_depth is 16.
struct PixelBuffer {
  int width = 0, height = 0, channels = 1, bit_depth = 8;
  std::vector<uint8_t> bytes;
};

// Encodes an 8-bit grey or RGB buffer as a baseline JPEG at `quality`
// (1..100), 4:2:0 for colour as libjpeg's defaults give.
// REQUIRES: image.bit_depth == 8; image.channels in {1, 3}.
Result<std::string> EncodeJpeg(const PixelBuffer& image, int quality);

// Resizes with OpenCV's INTER_AREA (the average over each output pixel's
// footprint when shrinking; bilinear-like when enlarging). Deterministic.
// A zero width or height keeps the aspect ratio; both zero is a no-op.
PixelBuffer ResizeArea(const PixelBuffer& image, int width, int height);

}  // namespace medpipe
