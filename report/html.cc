#include "report/html.h"

#include <fmt/format.h>

namespace medpipe::report {

std::string Escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20 && ch != '\t' && ch != '\n') {
          out += "\xEF\xBF\xBD";
        } else {
          out += ch;
        }
    }
  }
  return out;
}

Table::Table(std::string id, std::string corner, std::vector<std::string> columns)
    : id_(std::move(id)), corner_(std::move(corner)), columns_(std::move(columns)) {}

Table& Table::Row(const std::string& key, const std::string& label) {
  rows_.push_back(RowData{key, label, {}, {}});
  return *this;
}

Table& Table::CellHtml(const std::string& html) {
  rows_.back().cells.push_back(html);
  rows_.back().values.emplace_back();
  return *this;
}

Table& Table::Cell(const std::string& text, const std::string& value) {
  CellHtml(Escape(text));
  rows_.back().values.back() = value;
  return *this;
}

Table& Table::Cell(const std::string& text) { return CellHtml(Escape(text)); }
Table& Table::Cell(int64_t value) { return CellHtml(std::to_string(value)); }

std::string Table::Render() const {
  std::string out = fmt::format("<table class=\"data\" id=\"tbl-{0}\" data-table=\"{0}\">\n<thead><tr><th>{1}</th>",
                                Escape(id_), Escape(corner_));
  for (const auto& c : columns_) out += fmt::format("<th scope=\"col\" data-col=\"{0}\">{0}</th>", Escape(c));
  out += "</tr></thead>\n<tbody>\n";
  for (const auto& r : rows_) {
    out += fmt::format("<tr data-row=\"{}\"><th scope=\"row\">{}</th>", Escape(r.key), Escape(r.label));
    for (size_t k = 0; k < r.cells.size() && k < columns_.size(); ++k) {
      const std::string value = r.values[k].empty() ? "" : " data-value=\"" + Escape(r.values[k]) + "\"";
      out += fmt::format("<td data-row=\"{}\" data-col=\"{}\"{}>{}</td>", Escape(r.key), Escape(columns_[k]), value,
                         r.cells[k]);
    }
    out += "</tr>\n";
  }
  out += "</tbody></table>\n";
  return out;
}

namespace {

// Print-friendly, no web fonts (they would be a fetch).
constexpr const char* kCss = R"CSS(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 48px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:20px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}nav a{margin-right:12px}
table.data{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
table.data th,table.data td{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:middle}
table.data th[scope=row],table.data thead th:first-child{text-align:left}
table.data thead th{background:#f4f4f6;cursor:pointer}
.ok{color:#137333;font-weight:600}.fail{color:#b3261e;font-weight:600}.warn{color:#a05a00;font-weight:600}
.muted{color:#666}.legend span{display:inline-block;margin-right:12px}
.sw{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:baseline}
.gallery{display:flex;flex-wrap:wrap;gap:10px;margin:4px 0 12px}
figure{margin:0;border:1px solid #ddd;padding:4px;background:#fafafa}
figure .row{display:flex;gap:4px;align-items:flex-start}
figcaption{font-size:11px;word-break:break-all;color:#444;max-width:480px}
figure img{display:block;image-rendering:auto}
.aug{border-left:3px solid #8e44ad;padding-left:3px}
svg text{font:11px system-ui,sans-serif}
.hist{display:inline-block;vertical-align:middle}
code{font-size:12px}
@media print{nav{display:none}section{break-inside:avoid-page}}
)CSS";

// Sorts a data table by the clicked header's column: numbers numerically,
// other text alphabetically; a second click reverses. The page reads the
// same without it.
constexpr const char* kJs = R"JS(
document.querySelectorAll('table.data thead th').forEach(function(th, i){
  th.title='sort';th.addEventListener('click',function(){
    var t=th.closest('table'),b=t.tBodies[0],rows=Array.from(b.rows),d=th.dataset.dir==='a'?-1:1;
    var idx=Array.from(th.parentNode.children).indexOf(th);
    rows.sort(function(x,y){var a=x.cells[idx].textContent,c=y.cells[idx].textContent,
      p=parseFloat(a),q=parseFloat(c);return d*((isNaN(p)||isNaN(q))?a.localeCompare(c):p-q);});
    th.dataset.dir=d===1?'a':'d';rows.forEach(function(r){b.appendChild(r);});});});
)JS";

}  // namespace

Page::Page(std::string title) : title_(std::move(title)) {}

void Page::Section(const std::string& id, const std::string& heading, const std::string& body) {
  toc_.emplace_back(id, heading);
  body_ += fmt::format("<section id=\"{}\">\n<h2>{}</h2>\n{}</section>\n", Escape(id), Escape(heading), body);
}

std::string Page::Render() const {
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self' file: data:; "
      "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  out += "<title>" + Escape(title_) + "</title>\n<style>" + kCss + "</style>\n</head>\n<body>\n";
  out += "<h1>" + Escape(title_) + "</h1>\n<nav>";
  for (const auto& [id, heading] : toc_) out += fmt::format("<a href=\"#{}\">{}</a>", Escape(id), Escape(heading));
  out += "</nav>\n" + body_ + "<script>" + kJs + "</script>\n</body>\n</html>\n";
  return out;
}

std::string Percent(int64_t part, int64_t whole) {
  if (whole == 0) return "-";
  return fmt::format("{:.1f}%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

}  // namespace medpipe::report
