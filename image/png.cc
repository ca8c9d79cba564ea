#include "image/png.h"

#include <isa-l/igzip_lib.h>
#include <libdeflate.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

// Why the container and the filters are written here: libpng owns its zlib
// stream and has no hook for another compressor, so ISA-L or libdeflate can
// only be used by writing the PNG chunks (signature, IHDR, IDAT, IEND, each
// with its CRC-32) and the row filters ourselves. Both are short and fixed by
// the PNG specification; tests decode every output with libpng and Pillow and
// compare the `zlib` back end's bytes with libpng's own.

namespace medpipe {

namespace {

constexpr int kFastLevel = 2;    // ISA-L: level 2 is as fast as 1 and 3% smaller (KNOWN.md)
constexpr int kSmallLevel = 6;   // libdeflate: Pillow's size or less at about 2.5x its speed (KNOWN.md)
constexpr size_t kLibpngIdatSize = 8192;  // libpng's PNG_ZBUF_SIZE: the size of each IDAT it writes

void PutU32(std::string* out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                     static_cast<char>(v)};
  out->append(b, 4);
}

// Appends one chunk: length, type, data, CRC-32 of type and data.
void AppendChunk(std::string* out, const char* type, const uint8_t* data, size_t n) {
  PutU32(out, static_cast<uint32_t>(n));
  const size_t start = out->size();
  out->append(type, 4);
  if (n) out->append(reinterpret_cast<const char*>(data), n);
  uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(out->data() + start), static_cast<uInt>(4 + n));
  PutU32(out, static_cast<uint32_t>(crc));
}

inline unsigned Cost(uint8_t v) { return v < 128 ? v : 256u - v; }

// Filters row `cur` (raw bytes, PNG byte order) against `prev` (the raw row
// above, zeros for the first) with filter type `type` (0 none .. 4 paeth)
// into `out[0..n]` (out[0] is the type byte). Returns the sum of Cost over
// the residuals.
size_t FilterRow(int type, const uint8_t* cur, const uint8_t* prev, size_t n, size_t bpp, uint8_t* out) {
  out[0] = static_cast<uint8_t>(type);
  uint8_t* d = out + 1;
  size_t sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const int a = i >= bpp ? cur[i - bpp] : 0;
    const int b = prev[i];
    const int c = i >= bpp ? prev[i - bpp] : 0;
    int pred = 0;
    switch (type) {
      case 1: pred = a; break;
      case 2: pred = b; break;
      case 3: pred = (a + b) / 2; break;
      case 4: {
        const int p = b - c, q = a - c;
        const int pa = p < 0 ? -p : p, pb = q < 0 ? -q : q, pc = (p + q) < 0 ? -(p + q) : p + q;
        pred = (pa <= pb && pa <= pc) ? a : (pb <= pc) ? b : c;
        break;
      }
      default: break;
    }
    d[i] = static_cast<uint8_t>((cur[i] - pred) & 0xff);
    sum += Cost(d[i]);
  }
  return sum;
}

// The filtered image data into `out`: per row a filter type byte and the
// residuals.
void FilterImage(const uint8_t* pixels, int width, int height, int channels, int bit_depth, int mask,
                 std::vector<uint8_t>* out_buffer) {
  const size_t bpp = static_cast<size_t>(channels) * (bit_depth / 8);
  const size_t n = static_cast<size_t>(width) * bpp;
  // libpng drops the filters that cannot help a single row or column.
  if (height == 1) mask &= ~(kPngFilterUp | kPngFilterAvg | kPngFilterPaeth);
  if (width == 1) mask &= ~(kPngFilterSub | kPngFilterAvg | kPngFilterPaeth);
  if (mask == 0) mask = kPngFilterNone;

  std::vector<uint8_t>& out = *out_buffer;
  out.resize((n + 1) * static_cast<size_t>(height));
  std::vector<uint8_t> prev(mask == kPngFilterNone ? 0 : n, 0), cur(bit_depth == 16 ? n : 0), trial(n + 1);
  for (int y = 0; y < height; ++y) {
    const uint8_t* src = pixels + n * static_cast<size_t>(y);
    uint8_t* dst = out.data() + (n + 1) * static_cast<size_t>(y);
    const uint8_t* row = src;
    if (bit_depth == 16) {  // PNG samples are big-endian; ours are native (little-endian)
      for (size_t i = 0; i < n; i += 2) cur[i] = src[i + 1], cur[i + 1] = src[i];
      row = cur.data();
    }
    if (mask == kPngFilterNone) {
      dst[0] = 0;
      std::memcpy(dst + 1, row, n);
    } else {
      size_t best = SIZE_MAX;
      for (int type = 0; type <= 4; ++type) {
        if (!(mask & (kPngFilterNone << type))) continue;
        const size_t sum = FilterRow(type, row, prev.data(), n, bpp, trial.data());
        if (sum < best) {  // strict: ties keep the earlier filter, as libpng
          best = sum;
          std::memcpy(dst, trial.data(), n + 1);
        }
      }
    }
    if (!prev.empty()) std::memcpy(prev.data(), row, n);
  }
}

// Zero bytes kept after the input handed to ISA-L, whose match finder may
// look up to ISAL_LOOK_AHEAD bytes past the end of its input.
constexpr size_t kIsalPad = ISAL_LOOK_AHEAD + 64;

// Compresses in[0, n) into `*out` (resized to the stream's length).
// REQUIRES: kIsalPad zero bytes follow in[n - 1].
//
// Not byte-reproducible, hence not the default (image/png.h). Every call
// gets a fresh ISA-L state from calloc, zero padding after its input and a
// zeroed output buffer: a state reused by the thread made other bytes in
// some runs. With all that, inside medpipe under load ISA-L still compressed
// about one stream in 50,000 to another valid stream, one match apart (the
// v4 pipeline wrote an odd augmented PNG in 3-5% of runs, at 1, 2 and 4
// threads; libdeflate in 0 of ~150). Two calls in a row on the same buffers
// could disagree, or agree on the odd stream, so calling again until two
// agree did not cure it either. A standalone program never reproduced it
// over 10^6 calls (alignment, bytes around every buffer, output size,
// register contents, fresh pages, concurrent OpenCV work all varied); the
// cause is not known.
Status DeflateFast(const uint8_t* in, size_t n, std::vector<uint8_t>* out) {
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<isal_zstream, Free> stream(static_cast<isal_zstream*>(std::calloc(1, sizeof(isal_zstream))));
  std::unique_ptr<uint8_t, Free> level_buf(static_cast<uint8_t*>(std::calloc(1, ISAL_DEF_LVL2_DEFAULT)));
  if (!stream || !level_buf) return Status::IOError("ISA-L: out of memory");
  isal_zstream& s = *stream;
  isal_deflate_init(&s);
  s.level = kFastLevel;
  s.level_buf = level_buf.get();
  s.level_buf_size = ISAL_DEF_LVL2_DEFAULT;
  s.gzip_flag = IGZIP_ZLIB;
  s.end_of_stream = 1;
  s.flush = NO_FLUSH;
  s.next_in = const_cast<uint8_t*>(in);
  s.avail_in = static_cast<uint32_t>(n);
  // Zeroed rather than resized, so no byte of an earlier file can reach
  // this one's stream whatever ISA-L reads of its output buffer.
  out->assign(std::max(out->capacity(), n + n / 8 + 1024), 0);
  size_t used = 0;
  while (true) {
    s.next_out = out->data() + used;
    s.avail_out = static_cast<uint32_t>(out->size() - used);
    const int rc = isal_deflate(&s);
    if (rc != COMP_OK) return Status::Invalid("ISA-L deflate failed with code " + std::to_string(rc));
    used = out->size() - s.avail_out;
    if (s.internal_state.state == ZSTATE_END) break;
    if (s.avail_out == 0) out->resize(out->size() * 2, 0);
  }
  out->resize(used);
  return Status::OK();
}

Status DeflateSmall(const std::vector<uint8_t>& in, std::vector<uint8_t>* out) {
  struct Free {
    void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
  };
  thread_local std::unique_ptr<libdeflate_compressor, Free> compressor(libdeflate_alloc_compressor(kSmallLevel));
  if (!compressor) return Status::Invalid("libdeflate: cannot allocate a compressor");
  out->resize(std::max(out->capacity(), libdeflate_zlib_compress_bound(compressor.get(), in.size())));
  const size_t n = libdeflate_zlib_compress(compressor.get(), in.data(), in.size(), out->data(), out->size());
  if (n == 0) return Status::Invalid("libdeflate: output larger than its own bound");
  out->resize(n);
  return Status::OK();
}

// Rewrites the zlib header's window size down to the data, as libpng's
// optimize_cmf does for the first IDAT of a small image.
void OptimizeCmf(char* data, size_t size) {
  if (size > 16384) return;
  unsigned cmf = static_cast<uint8_t>(data[0]);
  if ((cmf & 0x0f) != 8 || (cmf & 0xf0) > 0x70) return;
  unsigned cinfo = cmf >> 4;
  unsigned half = 1u << (cinfo + 7);
  if (size > half) return;
  do {
    half >>= 1;
    --cinfo;
  } while (cinfo > 0 && size <= half);
  cmf = (cmf & 0x0f) | (cinfo << 4);
  unsigned flg = static_cast<uint8_t>(data[1]) & 0xe0;
  flg += 0x1f - ((cmf << 8) + flg) % 0x1f;
  data[0] = static_cast<char>(cmf);
  data[1] = static_cast<char>(flg);
}

// zlib driven exactly as libpng 1.6 drives it for IDAT (png_deflate_claim,
// png_compress_IDAT), so the bytes are libpng's: memLevel 8; for at most
// 16 KiB of filtered data a window just large enough; one row of input per
// deflate call; an IDAT chunk each time the 8 KiB output buffer fills, and
// the rest at the end. (Stored blocks, level 0, are cut where the output
// buffer ends, so even the buffer size shows in the bytes.)
Status AppendZlibIdat(const std::vector<uint8_t>& in, size_t row, int level, int strategy, std::string* out) {
  int window_bits = 15;
  const size_t size = in.size();
  if (size <= 16384) {
    unsigned half = 1u << (window_bits - 1);
    while (size + 262 <= half) half >>= 1, --window_bits;
  }
  if (window_bits == 8) window_bits = 9;  // zlib refuses 8 for deflate
  z_stream z{};
  if (deflateInit2(&z, level, Z_DEFLATED, window_bits, 8, strategy) != Z_OK) {
    return Status::Invalid("zlib: deflateInit2 failed");
  }
  char buffer[kLibpngIdatSize];
  bool first = true;
  auto emit = [&](size_t n) {
    if (first) OptimizeCmf(buffer, size);
    first = false;
    if (n > 0) AppendChunk(out, "IDAT", reinterpret_cast<const uint8_t*>(buffer), n);
    z.next_out = reinterpret_cast<Bytef*>(buffer);
    z.avail_out = sizeof buffer;
  };
  z.next_out = reinterpret_cast<Bytef*>(buffer);
  z.avail_out = sizeof buffer;
  Status status;
  for (size_t off = 0; off <= size && status.ok(); off += row) {
    const bool finish = off == size;
    z.next_in = const_cast<Bytef*>(in.data()) + off;
    z.avail_in = finish ? 0 : static_cast<uInt>(row);
    while (true) {
      const int rc = deflate(&z, finish ? Z_FINISH : Z_NO_FLUSH);
      if (z.avail_out == 0) {
        emit(sizeof buffer);
        if (rc == Z_OK && finish) continue;
      }
      if (rc == Z_OK && !finish && z.avail_in == 0) break;
      if (rc == Z_OK && !finish) continue;
      if (rc == Z_STREAM_END && finish) {
        emit(sizeof buffer - z.avail_out);
        break;
      }
      if (rc == Z_BUF_ERROR && z.avail_out > 0 && !finish && z.avail_in == 0) break;
      status = Status::Invalid("zlib: deflate failed with code " + std::to_string(rc));
      break;
    }
  }
  deflateEnd(&z);
  return status;
}

}  // namespace

Result<PngCompressor> ParsePngCompressor(std::string_view name) {
  if (name == "fast") return PngCompressor::kFast;
  if (name == "small") return PngCompressor::kSmall;
  if (name == "zlib") return PngCompressor::kZlib;
  return Status::Invalid("'" + std::string(name) + "' is not fast (ISA-L), small (libdeflate) or zlib");
}

const char* PngCompressorName(PngCompressor c) {
  switch (c) {
    case PngCompressor::kFast: return "fast";
    case PngCompressor::kSmall: return "small";
    case PngCompressor::kZlib: return "zlib";
  }
  return "?";
}

Result<int> ParsePngFilterList(const std::string& text) {
  static const std::map<std::string, int> kMasks = {{"none", kPngFilterNone}, {"sub", kPngFilterSub},
                                                     {"up", kPngFilterUp},     {"avg", kPngFilterAvg},
                                                     {"paeth", kPngFilterPaeth}, {"all", kPngAllFilters}};
  int mask = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = std::min(text.find(',', start), text.size());
    std::string name = text.substr(start, comma - start);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    auto it = kMasks.find(name);
    if (it == kMasks.end()) return Status::Invalid("'" + name + "' is not none, sub, up, avg, paeth or all");
    mask |= it->second;
    start = comma + 1;
  }
  if (mask == 0) return Status::Invalid("name at least one filter");
  return mask;
}

Result<std::string> EncodePng(const void* pixels, int width, int height, int channels, int bit_depth,
                              const PngOptions& o) {
  if (width <= 0 || height <= 0 || width > (1 << 24) || height > (1 << 24)) {
    return Status::Invalid("PNG encoding failed: image size " + std::to_string(width) + "x" +
                           std::to_string(height) + " is not positive");
  }
  if (channels != 1 && channels != 3) return Status::Invalid("PNG encoding failed: channels must be 1 or 3");
  if (bit_depth != 8 && bit_depth != 16) return Status::Invalid("PNG encoding failed: bit depth must be 8 or 16");
  if (o.filters == 0 || (o.filters & ~kPngAllFilters) != 0) {
    return Status::Invalid("PNG encoding failed: filter mask must be a non-empty set of none, sub, up, avg, paeth");
  }
  if (o.compressor == PngCompressor::kZlib && (o.zlib_level < 0 || o.zlib_level > 9 || o.zlib_strategy < 0 ||
                                               o.zlib_strategy > 3)) {
    return Status::Invalid("PNG encoding failed: zlib level must be 0..9 and strategy 0..3");
  }
  // Per-thread buffers: at 512x512 a fresh one per call would cost a round
  // of page faults each time (glibc returns blocks this large to the kernel).
  thread_local std::vector<uint8_t> filtered, compressed;
  FilterImage(static_cast<const uint8_t*>(pixels), width, height, channels, bit_depth, o.filters, &filtered);
  if (o.compressor != PngCompressor::kZlib) {
    // ISA-L and libdeflate compress the whole buffer at once, into one IDAT.
    Status s;
    if (o.compressor == PngCompressor::kFast) {
      const size_t n = filtered.size();
      filtered.resize(n + kIsalPad);
      std::fill(filtered.begin() + static_cast<std::ptrdiff_t>(n), filtered.end(), 0);
      s = DeflateFast(filtered.data(), n, &compressed);
      filtered.resize(n);
    } else {
      s = DeflateSmall(filtered, &compressed);
    }
    if (!s.ok()) return Status::Invalid("PNG encoding failed: " + s.message());
  }
  std::string out;
  out.reserve((o.compressor == PngCompressor::kZlib ? filtered.size() / 4 : compressed.size()) + 64);
  out.append("\x89PNG\r\n\x1a\n", 8);
  uint8_t ihdr[13];
  const uint32_t w = static_cast<uint32_t>(width), h = static_cast<uint32_t>(height);
  for (int i = 0; i < 4; ++i) ihdr[i] = static_cast<uint8_t>(w >> (24 - 8 * i));
  for (int i = 0; i < 4; ++i) ihdr[4 + i] = static_cast<uint8_t>(h >> (24 - 8 * i));
  ihdr[8] = static_cast<uint8_t>(bit_depth);
  ihdr[9] = channels == 1 ? 0 : 2;  // colour type: greyscale or truecolour
  ihdr[10] = ihdr[11] = ihdr[12] = 0;  // deflate, adaptive filtering, no interlace
  AppendChunk(&out, "IHDR", ihdr, sizeof ihdr);
  if (o.compressor == PngCompressor::kZlib) {
    const size_t row = static_cast<size_t>(width) * channels * (bit_depth / 8) + 1;
    Status s = AppendZlibIdat(filtered, row, o.zlib_level, o.zlib_strategy, &out);
    if (!s.ok()) return Status::Invalid("PNG encoding failed: " + s.message());
  } else {
    AppendChunk(&out, "IDAT", compressed.data(), compressed.size());
  }
  AppendChunk(&out, "IEND", nullptr, 0);
  return out;
}

}  // namespace medpipe
