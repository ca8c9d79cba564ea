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

// A row left out, and why.
struct CsvError {
  size_t line = 0;      // 1-based line where the row starts
  std::string reason;   // e.g. "unterminated quoted field"
  std::string message;  // "file:line: reason"
};

struct CsvTable {
  std::string path;                 // for messages
  std::vector<std::string> header;
  std::vector<CsvRow> rows;         // rows with the header's field count
  std::vector<CsvError> errors;     // rows skipped, in file order

  // Index of `name` in the header, or -1.
  int Column(std::string_view name) const;
};

// Parses `text`. A row whose field count differs from the header's, or with an
// unterminated quote, is recorded in `errors` and skipped, and costs that row
// only: when a bad row had run past its first line (a stray quote reading the
// next lines as one field), parsing resumes at the line after its start. A
// malformed header ends the parse (no header, no rows): no row can be read
// against it.
CsvTable ParseCsv(std::string_view text, std::string path);
Result<CsvTable> ReadCsv(const std::string& path);

}  // namespace medpipe
