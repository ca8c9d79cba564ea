// HTML building for self-contained reports: escaping, and a small writer for
// documents whose structure is known in advance (sections, tables, figures).
//
// Every piece of text that did not come from this file's own literals goes
// through Escape (text and attribute values alike), so a file name or class
// name such as `<script>` or `" onload=` is shown, never run. Nothing here
// knows about datasets or pipelines.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace medpipe::report {

// Escapes &, <, >, " and ' so the result is safe both as element text and
// inside a double- or single-quoted attribute value. Bytes below 0x20 other
// than tab and newline become U+FFFD, so a control byte cannot corrupt the
// document's parsing.
std::string Escape(std::string_view text);

// A data table with parseable markup: every body cell is
//   <td data-row="ROW" data-col="COL">VALUE</td>
// or, for a value shown rounded, <td ... data-value="EXACT">SHOWN</td>
// (header cells <th scope="col" data-col="COL">), with ROW, COL and VALUE
// escaped. Tests and tools read numbers back from these attributes; the inline
// sorting script reads the text.
class Table {
 public:
  // `id` becomes the table's data-table attribute and, prefixed "tbl-", its
  // id (sections own the bare names as anchors); `corner` is the
  // text of the top-left header cell.
  Table(std::string id, std::string corner, std::vector<std::string> columns);

  // Starts a row keyed `key` (data-row) shown as `label`.
  Table& Row(const std::string& key, const std::string& label);
  // Appends one cell to the current row; `html` is inserted as is (use
  // Cell for text).
  Table& CellHtml(const std::string& html);
  Table& Cell(const std::string& text);
  Table& Cell(int64_t value);
  // A cell showing `text` whose exact value (e.g. a share as a fraction, not
  // the rounded percentage shown) is in its data-value attribute.
  Table& Cell(const std::string& text, const std::string& value);

  // REQUIRES: every row has as many cells as there are columns.
  std::string Render() const;

 private:
  std::string id_, corner_;
  std::vector<std::string> columns_;
  struct RowData {
    std::string key, label;
    std::vector<std::string> cells;   // HTML
    std::vector<std::string> values;  // data-value, "" for none
  };
  std::vector<RowData> rows_;
};

// The page: a head with inline CSS (and a little inline JS for sorting
// tables), then sections appended in order. Renders one self-contained
// document with a Content-Security-Policy that forbids every network fetch:
// images only from relative files or data: URIs, no external style or
// script.
class Page {
 public:
  explicit Page(std::string title);
  // Appends <section id=ID><h2>HEADING</h2>BODY</section>; `body` is HTML.
  void Section(const std::string& id, const std::string& heading, const std::string& body);
  std::string Render() const;

 private:
  std::string title_;
  std::vector<std::pair<std::string, std::string>> toc_;  // id, heading
  std::string body_;
};

// "12.5%" with one decimal; "-" when `whole` is 0.
std::string Percent(int64_t part, int64_t whole);

}  // namespace medpipe::report
