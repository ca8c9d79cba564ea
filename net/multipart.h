// multipart/related bodies (RFC 2387), as DICOMweb WADO-RS returns a study,
// series or instance: one DICOM object per part.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

// The boundary parameter of a Content-Type such as
// `multipart/related; type="application/dicom"; boundary=abc`, unquoted;
// "" when there is none.
std::string MultipartBoundary(std::string_view content_type);

struct BodyPart {
  size_t offset = 0;  // of the part's content in the body
  size_t size = 0;
  std::string content_type;  // of the part; "" when it has none
};

// Locates the parts of `body`. kInvalid when the body has no part or ends
// before its closing delimiter (a truncated response is never taken as a
// shorter series).
Result<std::vector<BodyPart>> SplitMultipart(std::string_view body, const std::string& boundary);

// Splits the body in file `body` into one file per part, named
// `<prefix><k>.dcm` (k from 0), through a read-only mapping of the body.
// On error no part file is left behind.
Result<std::vector<fs::path>> SplitMultipartFile(const fs::path& body, const std::string& boundary,
                                                 const fs::path& prefix);

}  // namespace medpipe
