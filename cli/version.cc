// `medpipe --version`: medpipe's version and the versions of the libraries it
// was built with (and, where they say, runs with), for bug reports.
#include "cli/version.h"

#include <curl/curl.h>
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <fmt/format.h>
#include <oneapi/tbb/version.h>
#include <opencv2/core/version.hpp>
#include <png.h>
#include <zlib.h>

namespace medpipe {

std::string VersionText() {
  std::string out = fmt::format("medpipe {}\n", MEDPIPE_VERSION);
  out += fmt::format("  DCMTK     {}\n", OFFIS_DCMTK_VERSION_STRING);
  out += fmt::format("  OpenCV    {}\n", CV_VERSION);
  out += fmt::format("  oneTBB    {} (runtime {})\n", TBB_VERSION_STRING, TBB_runtime_version());
  out += fmt::format("  libcurl   {}\n", curl_version_info(CURLVERSION_NOW)->version);
  out += fmt::format("  libpng    {}\n", PNG_LIBPNG_VER_STRING);
  out += fmt::format("  zlib      {}\n", zlibVersion());
  out += fmt::format("  fmt       {}.{}.{}\n", FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100);
  return out;
}

}  // namespace medpipe
