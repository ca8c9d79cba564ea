#include "dataset/image_io.h"

#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>

namespace medpipe {

namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

// libpng and libjpeg report errors by longjmp. The functions that call
// setjmp hold only trivially destructible locals, so the jump skips no C++
// destructor.
struct PngProbe {
  char error[200] = {0};
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, channels = 0;
};

void PngError(png_structp png, png_const_charp msg) {
  auto* probe = static_cast<PngProbe*>(png_get_error_ptr(png));
  std::snprintf(probe->error, sizeof probe->error, "%s", msg);
  png_longjmp(png, 1);
}
void PngWarning(png_structp, png_const_charp) {}

bool ProbePngFile(FILE* f, PngProbe* probe) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, probe, PngError, PngWarning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    std::snprintf(probe->error, sizeof probe->error, "libpng: out of memory");
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_init_io(png, f);
  png_read_info(png, info);
  png_get_IHDR(png, info, &probe->width, &probe->height, &probe->bit_depth, &probe->color_type, nullptr,
               nullptr, nullptr);
  probe->channels = png_get_channels(png, info);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

struct JpegProbe {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char error[JMSG_LENGTH_MAX] = {0};
};

void JpegError(j_common_ptr cinfo) {
  auto* probe = reinterpret_cast<JpegProbe*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, probe->error);
  longjmp(probe->jump, 1);
}

bool ProbeJpegFile(FILE* f, JpegProbe* probe, jpeg_decompress_struct* cinfo) {
  cinfo->err = jpeg_std_error(&probe->mgr);
  probe->mgr.error_exit = JpegError;
  probe->mgr.output_message = [](j_common_ptr) {};  // warnings would garble progress lines
  if (setjmp(probe->jump)) {
    jpeg_destroy_decompress(cinfo);
    return false;
  }
  jpeg_create_decompress(cinfo);
  jpeg_stdio_src(cinfo, f);
  jpeg_read_header(cinfo, TRUE);
  jpeg_destroy_decompress(cinfo);
  return true;
}

struct PngWriteState {
  std::string out;
  char error[200] = {0};
};

void PngWriteError(png_structp png, png_const_charp msg) {
  auto* st = static_cast<PngWriteState*>(png_get_error_ptr(png));
  std::snprintf(st->error, sizeof st->error, "%s", msg);
  png_longjmp(png, 1);
}

void PngWriteData(png_structp png, png_bytep data, png_size_t n) {
  static_cast<PngWriteState*>(png_get_io_ptr(png))->out.append(reinterpret_cast<char*>(data), n);
}
void PngFlush(png_structp) {}

bool EncodePngInto(PngWriteState* st, const png_byte* pixels, int width, int height, int channels,
                   int bit_depth, const PngOptions* options, png_bytep* rows) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, st, PngWriteError, PngWarning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    std::snprintf(st->error, sizeof st->error, "libpng: out of memory");
    png_destroy_write_struct(&png, &info);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, st, PngWriteData, PngFlush);
  png_set_compression_level(png, options->compression_level);
  if (options->filters != 0) png_set_filter(png, PNG_FILTER_TYPE_BASE, options->filters);
  png_set_compression_strategy(png, options->strategy);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), bit_depth,
               channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
  png_write_info(png, info);
  if (bit_depth == 16) png_set_swap(png);  // PNG is big-endian; our samples are native (little)
  size_t stride = static_cast<size_t>(width) * channels * (bit_depth / 8);
  for (int y = 0; y < height; ++y) rows[y] = const_cast<png_bytep>(pixels + stride * y);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

Result<ImageHeader> ProbeImage(const fs::path& path) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) return Status::NotFound(path.string() + ": cannot open: " + std::strerror(errno));
  unsigned char magic[8] = {0};
  size_t n = std::fread(magic, 1, sizeof magic, f.get());
  std::rewind(f.get());
  ImageHeader h;
  if (n == 8 && png_sig_cmp(magic, 0, 8) == 0) {
    PngProbe probe;
    if (!ProbePngFile(f.get(), &probe)) {
      return Status::Invalid(path.string() + ": corrupt PNG: " + probe.error);
    }
    h.format = "png";
    h.width = static_cast<int>(probe.width);
    h.height = static_cast<int>(probe.height);
    h.channels = probe.channels;
    h.bit_depth = probe.bit_depth;
    return h;
  }
  if (n >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) {
    JpegProbe probe;
    jpeg_decompress_struct cinfo;
    if (!ProbeJpegFile(f.get(), &probe, &cinfo)) {
      return Status::Invalid(path.string() + ": corrupt JPEG: " + probe.error);
    }
    h.format = "jpeg";
    h.width = static_cast<int>(cinfo.image_width);
    h.height = static_cast<int>(cinfo.image_height);
    h.channels = cinfo.num_components;
    h.bit_depth = cinfo.data_precision;
    return h;
  }
  return Status::Invalid(path.string() + ": neither PNG nor JPEG (" + std::to_string(n) + " bytes read)");
}

Result<std::string> EncodePng(const void* pixels, int width, int height, int channels, int bit_depth,
                              const PngOptions& options) {
  PngWriteState st;
  std::vector<png_bytep> rows(static_cast<size_t>(height));
  if (!EncodePngInto(&st, static_cast<const png_byte*>(pixels), width, height, channels, bit_depth, &options,
                     rows.data())) {
    return Status::Invalid(std::string("PNG encoding failed: ") + st.error);
  }
  return std::move(st.out);
}

}  // namespace medpipe
