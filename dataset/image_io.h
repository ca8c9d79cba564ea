// Image file I/O below the stages: header probes (size without decoding the
// pixels) and PNG encoding with explicit compression settings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

struct ImageHeader {
  std::string format;  // "png" or "jpeg"
  int width = 0;
  int height = 0;
  int channels = 0;
  int bit_depth = 0;
};

// Reads only the header of a PNG or JPEG file (libpng / libjpeg-turbo).
// Any other content, or a truncated or corrupt header, is kInvalid with the
// reason.
Result<ImageHeader> ProbeImage(const fs::path& path);

struct PngOptions {
  int compression_level = 6;  // zlib level 0..9
  // libpng filter mask: PNG_ALL_FILTERS (adaptive) or one of PNG_FILTER_NONE,
  // ...; 0 leaves libpng's default.
  int filters = 0;
  // zlib strategy: Z_DEFAULT_STRATEGY (0), Z_FILTERED (1), Z_HUFFMAN_ONLY (2),
  // Z_RLE (3).
  int strategy = 0;
};

// Encodes `pixels` (row-major, `channels` interleaved samples per pixel; for
// 16-bit, native-endian uint16 samples) as a non-interlaced PNG.
// REQUIRES: channels in {1, 3}; bit_depth in {8, 16};
//           pixels.size() == width * height * channels * bit_depth / 8.
Result<std::string> EncodePng(const void* pixels, int width, int height, int channels, int bit_depth,
                              const PngOptions& options);

}  // namespace medpipe
