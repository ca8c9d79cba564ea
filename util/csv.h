// A CSV reader for label and feedback files (RFC 4180: quoted fields, doubled
// quotes, CRLF, newlines inside quotes), with line numbers for messages.
//
// Written by hand because no Debian-packaged C++ library parses CSV; it is a
// single pass over an in-memory buffer, so 325,000 rows take well under a
// second.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace medpipe {

struct CsvRow {
  size_t line = 0;                  // 1-based line where the row starts
  std::vector<std::string> fields;
};

struct CsvTable {
  std::string path;                 // for messages
  std::vector<std::string> header;
  std::vector<CsvRow> rows;         // rows with the header's field count
  std::vector<std::string> errors;  // "file:line: reason" for rows skipped

  // Index of `name` in the header, or -1.
  int Column(std::string_view name) const;
};

// Parses `text`. A row whose field count differs from the header's, or with an
// unterminated quote, is recorded in `errors` and skipped; parsing goes on.
CsvTable ParseCsv(std::string_view text, std::string path);
Result<CsvTable> ReadCsv(const std::string& path);

}  // namespace medpipe
