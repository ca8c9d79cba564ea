#include "util/csv.h"

#include "util/fs.h"

namespace medpipe {

int CsvTable::Column(std::string_view name) const {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return static_cast<int>(i);
  }
  return -1;
}

CsvTable ParseCsv(std::string_view text, std::string path) {
  CsvTable table;
  table.path = std::move(path);
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // BOM

  size_t pos = 0;
  size_t line = 1;
  bool have_header = false;
  auto error = [&](size_t at, std::string reason) {
    std::string message = table.path + ":" + std::to_string(at) + ": " + reason;
    table.errors.push_back(CsvError{at, std::move(reason), std::move(message)});
  };
  while (pos < text.size()) {
    const size_t row_pos = pos;
    CsvRow row;
    row.line = line;
    std::string field;
    bool bad = false;
    std::string bad_reason;
    for (;;) {
      field.clear();
      if (pos < text.size() && text[pos] == '"') {
        ++pos;
        const size_t field_line = line;
        for (;;) {
          if (pos >= text.size()) {
            bad = true;
            bad_reason = "unterminated quoted field";
            break;
          }
          char c = text[pos++];
          if (c == '"') {
            if (pos < text.size() && text[pos] == '"') {
              field.push_back('"');
              ++pos;
            } else {
              break;
            }
          } else {
            if (c == '\n') ++line;
            field.push_back(c);
          }
        }
        // Characters between a closing quote and the delimiter are kept, as
        // Python's csv module does; but after a field that ran over lines
        // they mean the "closing" quote opened a field of a later row: the
        // quote at the start was a stray one.
        const size_t junk_from = pos;
        while (pos < text.size() && text[pos] != ',' && text[pos] != '\n' && text[pos] != '\r') {
          field.push_back(text[pos++]);
        }
        if (!bad && line > field_line && pos > junk_from) {
          bad = true;
          bad_reason = "unterminated quoted field (its quote runs into later lines)";
        }
      } else {
        // A plain scan: string_view::find_first_of calls memchr over the
        // delimiter set once per byte, which was most of the parse time.
        size_t end = pos;
        while (end < text.size() && text[end] != ',' && text[end] != '\n' && text[end] != '\r') ++end;
        field.assign(text.data() + pos, end - pos);
        pos = end;
      }
      row.fields.push_back(std::move(field));
      field = std::string();
      if (pos < text.size() && text[pos] == ',') {
        ++pos;
        continue;
      }
      break;
    }
    if (pos < text.size() && text[pos] == '\r') ++pos;
    if (pos < text.size() && text[pos] == '\n') ++pos;
    const bool multi_line = line > row.line;
    ++line;

    bool blank = row.fields.size() == 1 && row.fields[0].empty();
    if (blank && !bad) continue;
    if (!have_header) {
      if (bad) {
        error(row.line, "header: " + bad_reason);
        return table;
      }
      table.header = std::move(row.fields);
      have_header = true;
      continue;
    }
    if (!bad && row.fields.size() != table.header.size()) {
      bad = true;
      bad_reason = "expected " + std::to_string(table.header.size()) + " fields, found " +
                   std::to_string(row.fields.size());
    }
    if (bad) {
      error(row.line, bad_reason);
      // A quote that ran past the row's first line took the next lines with
      // it: they are rows of their own, so read on from the next line.
      if (multi_line) {
        size_t nl = text.find('\n', row_pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        line = row.line + 1;
      }
      continue;
    }
    table.rows.push_back(std::move(row));
  }
  return table;
}

Result<CsvTable> ReadCsv(const std::string& path) {
  MEDPIPE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseCsv(text, path);
}

}  // namespace medpipe
