#include "dicom/encode.h"

#include <jpeglib.h>

#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace medpipe {

namespace {

// libjpeg reports errors by longjmp; EncodeJpegInto holds only trivially
// destructible locals, so the jump skips no C++ destructor.
struct JpegWriteState {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char error[JMSG_LENGTH_MAX] = {0};
};

void JpegWriteError(j_common_ptr cinfo) {
  auto* st = reinterpret_cast<JpegWriteState*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, st->error);
  longjmp(st->jump, 1);
}

bool EncodeJpegInto(JpegWriteState* st, jpeg_compress_struct* cinfo, const PixelBuffer* image, int quality,
                    unsigned char** out, unsigned long* out_size) {
  cinfo->err = jpeg_std_error(&st->mgr);
  st->mgr.error_exit = JpegWriteError;
  if (setjmp(st->jump)) {
    jpeg_destroy_compress(cinfo);
    return false;
  }
  jpeg_create_compress(cinfo);
  jpeg_mem_dest(cinfo, out, out_size);
  cinfo->image_width = static_cast<JDIMENSION>(image->width);
  cinfo->image_height = static_cast<JDIMENSION>(image->height);
  cinfo->input_components = image->channels;
  cinfo->in_color_space = image->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(cinfo);
  jpeg_set_quality(cinfo, quality, TRUE);
  jpeg_start_compress(cinfo, TRUE);
  const size_t stride = static_cast<size_t>(image->width) * image->channels;
  while (cinfo->next_scanline < cinfo->image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(image->bytes.data() + stride * cinfo->next_scanline);
    jpeg_write_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_compress(cinfo);
  jpeg_destroy_compress(cinfo);
  return true;
}

}  // namespace

Result<std::string> EncodeJpeg(const PixelBuffer& image, int quality) {
  if (image.bit_depth != 8 || (image.channels != 1 && image.channels != 3)) {
    return Status::Invalid("JPEG output needs 8-bit grey or RGB pixels");
  }
  JpegWriteState st;
  jpeg_compress_struct cinfo;
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  bool ok = EncodeJpegInto(&st, &cinfo, &image, quality, &out, &out_size);
  std::string bytes;
  if (ok) bytes.assign(reinterpret_cast<char*>(out), out_size);
  std::free(out);  // jpeg_mem_dest allocates with malloc and leaves it to us
  if (!ok) return Status::Invalid(std::string("libjpeg: ") + st.error);
  return bytes;
}

PixelBuffer ResizeArea(const PixelBuffer& image, int width, int height) {
  if (width <= 0 && height <= 0) return image;
  if (width <= 0) width = std::max(1, static_cast<int>(std::lround(double(image.width) * height / image.height)));
  if (height <= 0) height = std::max(1, static_cast<int>(std::lround(double(image.height) * width / image.width)));
  if (width == image.width && height == image.height) return image;
  const int depth = image.bit_depth == 16 ? CV_16U : CV_8U;
  const int type = CV_MAKETYPE(depth, image.channels);
  cv::Mat src(image.height, image.width, type, const_cast<uint8_t*>(image.bytes.data()));
  PixelBuffer out;
  out.width = width;
  out.height = height;
  out.channels = image.channels;
  out.bit_depth = image.bit_depth;
  out.bytes.resize(static_cast<size_t>(width) * height * image.channels * (image.bit_depth / 8));
  cv::Mat dst(height, width, type, out.bytes.data());
  cv::resize(src, dst, cv::Size(width, height), 0, 0, cv::INTER_AREA);
  return out;
}

}  // namespace medpipe
