// Image preprocessing for classification networks: decoded pixels to the
// float tensor a network was trained on. Knows nothing of pipelines.
#pragma once

#include <string>
#include <vector>

#include "util/fs.h"
#include "util/status.h"

namespace cv {
class Mat;
}

namespace medpipe {

struct PreprocessOptions {
  // "xrv": torchxrayvision's normalisation (grey, values scaled from
  // [0, max] to [-1024, 1024], XRayCenterCrop, XRayResizer with OpenCV's
  // area interpolation). "imagenet": RGB scaled to [0, 1], minus
  // mean, over std, per channel.
  std::string preset = "xrv";
  int size = 224;             // output width and height
  bool center_crop = true;    // crop the longer side to a centred square first
  int channels = 1;           // 1 (grey) or 3 (RGB)
  std::vector<float> mean;    // per channel, after scaling
  std::vector<float> std;     // per channel, after scaling
  float scale_lo = -1024, scale_hi = 1024;  // [0, max] maps to [scale_lo, scale_hi]
};

// The preset's values ("xrv" or "imagenet"); kInvalid for any other name.
Result<PreprocessOptions> PreprocessPreset(const std::string& name);

// Checks the fields (size 8..4096, channels 1 or 3, mean/std sizes).
Status ValidatePreprocess(const PreprocessOptions& o);

// The number of floats one image takes: channels * size * size.
inline size_t TensorSize(const PreprocessOptions& o) {
  return static_cast<size_t>(o.channels) * o.size * o.size;
}

// Converts a decoded image (OpenCV: 8- or 16-bit, 1, 3 (BGR) or 4 (BGRA)
// channels) to CHW floats in `out`, which must hold TensorSize(o) floats.
// The order follows torchxrayvision: scale to floats, crop, then resize the
// float image with INTER_AREA (as XRayResizer's cv2 engine does).
Status Preprocess(const cv::Mat& image, const PreprocessOptions& o, float* out);

// Decodes an image file's bytes (PNG or JPEG by content, or DICOM through
// dicom/convert with the file's own window, MONOCHROME1 inverted by DCMTK)
// into `image`. kInvalid with the reason for anything else.
Status DecodeImageBytes(const std::string& bytes, cv::Mat* image);

// The same for a file: DICOM files are rendered in place (first frame).
// A missing or unreadable file is kInvalid too: a per-image problem.
Status DecodeImageFile(const fs::path& path, cv::Mat* image);
Status DecodeDicomFile(const fs::path& path, cv::Mat* image);

}  // namespace medpipe
