// Thumbnails for reports: an image scaled to fit a square, its boxes drawn in
// their class colours with the class name, encoded as JPEG or PNG. Plain
// OpenCV; nothing here knows about datasets or stages.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "report/svg.h"
#include "util/status.h"

namespace medpipe::report {

struct ThumbBox {
  double x = 0, y = 0, w = 0, h = 0;  // in the source image's pixels
  Rgb colour;
  std::string label;  // drawn above the box; non-ASCII characters show as '?'
};

struct ThumbOptions {
  int max_side = 192;  // the longer side of the thumbnail, in pixels
  bool png = false;    // else JPEG
  int jpeg_quality = 85;
};

// Decodes `file` (PNG, JPEG or anything OpenCV reads; 8- or 16-bit, grey or
// colour; 16-bit is stretched from the scaled image's min..max so dim CT slices stay
// visible), scales it with INTER_AREA so its longer side is at most
// max_side, draws `boxes`, and encodes it. kInvalid when the bytes do not
// decode.
Result<std::string> MakeThumbnail(std::string_view file, const std::vector<ThumbBox>& boxes,
                                  const ThumbOptions& options);

}  // namespace medpipe::report
