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

}  // namespace medpipe
