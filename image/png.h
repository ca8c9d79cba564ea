// The one PNG writer of medpipe: every stage that writes PNG (convert,
// download, augment, and whatever comes next) encodes through EncodePng.
//
// It writes 8- and 16-bit greyscale and RGB, non-interlaced, with the PNG
// filters (one, or several chosen per row as libpng chooses), and a choice of
// deflate back end:
//   small  libdeflate level 6: the size of zlib level 6 (Pillow's) or
//          smaller, at about 2.5x its speed; the default;
//   fast   ISA-L igzip level 2: about 4x zlib level 1's speed and 3x
//          small's (KNOWN.md "Faster deflate"), but NOT byte-reproducible
//          here: inside medpipe, under load, it now and then compresses the
//          same rows to another valid stream (see DeflateFast in png.cc), so
//          a rerun can write other bytes for the same pixels. Opt-in only;
//   zlib   zlib at a given level and strategy, IDAT chunked as libpng does,
//          so the bytes equal libpng's for the same settings (what medpipe
//          wrote before this writer, and what other tools may expect).
// All three write standard zlib streams; any PNG reader decodes the files.
//
// Decoding stays with libpng (dataset/image_io.h probes headers; OpenCV and
// libpng decode).
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace medpipe {

enum class PngCompressor { kFast, kSmall, kZlib };

// "fast", "small" or "zlib"; anything else is kInvalid naming the three.
Result<PngCompressor> ParsePngCompressor(std::string_view name);
const char* PngCompressorName(PngCompressor c);

// PNG filter bits, the same values as libpng's PNG_FILTER_* masks, so masks
// written for libpng keep their meaning.
inline constexpr int kPngFilterNone = 0x08;
inline constexpr int kPngFilterSub = 0x10;
inline constexpr int kPngFilterUp = 0x20;
inline constexpr int kPngFilterAvg = 0x40;
inline constexpr int kPngFilterPaeth = 0x80;
inline constexpr int kPngAllFilters = 0xF8;

// "none", "sub,up", "all": the filter mask (none, sub, up, avg, paeth, all).
Result<int> ParsePngFilterList(const std::string& text);

struct PngOptions {
  PngCompressor compressor = PngCompressor::kSmall;
  // One filter bit: every row uses it. Several: each row takes the one whose
  // residuals have the smallest sum of absolute (signed byte) values, ties to
  // the first of none, sub, up, avg, paeth: libpng's heuristic, reproduced
  // so that `zlib` files equal libpng's.
  int filters = kPngFilterNone;
  int zlib_level = 1;     // kZlib only: 0..9
  int zlib_strategy = 3;  // kZlib only: 0 default, 1 filtered, 2 huffman only, 3 rle (Z_RLE)
};

// Encodes `pixels` (row-major, `channels` interleaved samples per pixel; for
// 16-bit, native-endian uint16 samples) as a non-interlaced PNG.
// Thread-safe; each thread keeps its compressor state between calls.
// REQUIRES: pixels.size() == width * height * channels * bit_depth / 8.
// Bad arguments (channels not 1 or 3, depth not 8 or 16, sizes not
// positive, an empty or unknown filter mask, a zlib level outside 0..9) are
// kInvalid.
Result<std::string> EncodePng(const void* pixels, int width, int height, int channels, int bit_depth,
                              const PngOptions& options);

}  // namespace medpipe
