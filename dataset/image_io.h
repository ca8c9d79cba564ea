// Image file I/O below the stages: header probes (size without decoding the
// pixels). PNG encoding is image/png.h.
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

}  // namespace medpipe
