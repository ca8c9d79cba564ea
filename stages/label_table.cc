#include "stages/label_table.h"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <set>
#include <unordered_map>

#include "util/csv.h"

namespace medpipe {
namespace {

std::string_view Trimmed(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// A cell for messages: cut to 40 characters.
std::string Shown(const std::string& v) { return v.size() > 40 ? v.substr(0, 37) + "..." : v; }

}  // namespace

std::optional<int8_t> ParseLabelCell(std::string_view text) {
  std::string_view t = Trimmed(text);
  if (t.empty() || EqualsIgnoringCase(t, "nan")) return kLabelUnknown;
  if (EqualsIgnoringCase(t, "true")) return int8_t{1};
  if (EqualsIgnoringCase(t, "false")) return int8_t{0};
  std::string s(t);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0' || !std::isfinite(v)) return std::nullopt;
  if (v == 0.0) return int8_t{0};
  if (v == 1.0) return int8_t{1};
  return std::nullopt;
}

Result<LabelTable> ReadLabelTable(const fs::path& csv, const LabelTableOptions& o, StageContext& ctx) {
  MEDPIPE_ASSIGN_OR_RETURN(CsvTable t, ReadCsv(csv.string()));
  LabelTable out;
  out.file = csv.filename().string();
  const int id = t.Column(o.id_column);
  if (id < 0) return Status::Failed(fmt::format("{}: no id column '{}'", csv.string(), o.id_column));
  int patient = -1;
  if (!o.patient_column.empty()) {
    patient = t.Column(o.patient_column);
    if (patient < 0) return Status::Failed(fmt::format("{}: no patient column '{}'", csv.string(), o.patient_column));
  }
  std::vector<int> cols;
  if (!o.label_columns.empty()) {
    for (const std::string& name : o.label_columns) {
      int c = t.Column(name);
      if (c < 0) return Status::Failed(fmt::format("{}: no label column '{}'", csv.string(), name));
      if (c == id || c == patient) {
        return Status::Failed(fmt::format("{}: '{}' is the id or patient column, not a label", csv.string(), name));
      }
      cols.push_back(c);
    }
  } else {
    const std::set<std::string> excluded(o.exclude_columns.begin(), o.exclude_columns.end());
    for (int c = 0; c < static_cast<int>(t.header.size()); ++c) {
      if (c == id || c == patient || excluded.count(t.header[c])) continue;
      // Left out only when not one cell reads as a value or a blank: a text
      // column. One bad cell (or a hundred) among 0/1 values keeps the label.
      const CsvRow* first_text = nullptr;
      bool any_value = false;
      for (const CsvRow& row : t.rows) {
        std::optional<int8_t> v = ParseLabelCell(row.fields[c]);
        if (v && *v != kLabelUnknown) any_value = true;
        if (!v && !first_text) first_text = &row;
      }
      if (!any_value && first_text) {
        out.non_label_columns.push_back(t.header[c]);
        ctx.Log(fmt::format("{}: column '{}' is not a label column: no cell is 0, 1, true or false (line {}: '{}'); "
                            "name it in exclude_columns, or list the labels in label_columns",
                            out.file, t.header[c], first_text->line, Shown(first_text->fields[c])));
        ctx.Count("non_label_columns");
        continue;
      }
      cols.push_back(c);
    }
  }
  if (cols.empty()) {
    return Status::Failed(fmt::format("{}: no label column (every column is the id, the patient, excluded or text)",
                                      csv.string()));
  }
  for (int c : cols) out.labels.push_back(t.header[c]);
  out.blank.assign(cols.size(), 0);
  out.bad.assign(cols.size(), 0);

  for (const CsvError& e : t.errors) {
    ctx.Problem(fmt::format("{}:{}", out.file, e.line), e.reason, "malformed CSV row");
  }
  std::unordered_map<std::string, size_t> first_line;
  for (const CsvRow& row : t.rows) {
    const std::string where = fmt::format("{}:{}", out.file, row.line);
    std::string key(Trimmed(row.fields[id]));
    if (o.normalize_id) key = o.normalize_id(key);
    if (key.empty()) {
      ctx.Problem(where, fmt::format("no id in column '{}'; row skipped", o.id_column), "label row without id");
      ctx.Count("label_rows_without_id");
      continue;
    }
    auto [it, inserted] = first_line.emplace(key, row.line);
    if (!inserted) {
      ctx.Problem(where, fmt::format("a second row for {} (the first is line {}); the first is kept", key, it->second),
                  "duplicate label row");
      ctx.Count("duplicate_label_rows");
      continue;
    }
    LabelRow r;
    r.line = row.line;
    r.id = std::move(key);
    if (patient >= 0) r.patient = std::string(Trimmed(row.fields[patient]));
    r.values.resize(cols.size());
    for (size_t l = 0; l < cols.size(); ++l) {
      const std::string& cell = row.fields[cols[l]];
      std::optional<int8_t> v = ParseLabelCell(cell);
      if (!v) {
        ctx.Problem(where, fmt::format("column '{}': '{}' is not 0, 1, true, false or blank; unknown for this row",
                                       out.labels[l], Shown(cell)),
                    "unreadable label cell");
        ++out.bad[l];
        v = kLabelUnknown;
      } else if (*v == kLabelUnknown) {
        ++out.blank[l];
      }
      r.values[l] = *v;
    }
    out.rows.push_back(std::move(r));
  }

  int64_t unknown_total = 0;
  std::string per_label;
  for (size_t l = 0; l < out.labels.size(); ++l) {
    const int64_t u = out.blank[l] + out.bad[l];
    if (u == 0) continue;
    unknown_total += u;
    ctx.Count("unknown_cells." + out.labels[l], u);
    per_label += fmt::format("{}  {}: {} ({} blank, {} unreadable)", per_label.empty() ? "" : "\n", out.labels[l], u,
                             out.blank[l], out.bad[l]);
  }
  ctx.Count("unknown_cells", unknown_total);
  ctx.Log(fmt::format("{}: {} rows, {} label columns; unknown cells: {}{}", out.file, out.rows.size(),
                      out.labels.size(), unknown_total == 0 ? "none" : std::to_string(unknown_total),
                      per_label.empty() ? "" : "\n" + per_label));
  return out;
}

void SetImageLabels(const LabelTable& table, const LabelRow& row, Image* image) {
  image->labels.clear();
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartArray();
  bool any_unknown = false;
  for (size_t l = 0; l < table.labels.size(); ++l) {
    if (row.values[l] == 1) image->labels.push_back(table.labels[l]);
    if (row.values[l] == kLabelUnknown) {
      w.String(table.labels[l].c_str(), static_cast<rapidjson::SizeType>(table.labels[l].size()));
      any_unknown = true;
    }
  }
  w.EndArray();
  if (any_unknown) {
    image->attributes["unknown_labels"] = JsonText{buf.GetString()};
  } else {
    image->attributes.erase("unknown_labels");
  }
}

std::vector<std::string> UnknownLabels(const Image& image) {
  std::vector<std::string> out;
  auto it = image.attributes.find("unknown_labels");
  if (it == image.attributes.end() || !std::holds_alternative<JsonText>(it->second)) return out;
  const std::string& json = std::get<JsonText>(it->second).json;
  rapidjson::Document d;
  d.Parse(json.c_str(), json.size());
  if (d.HasParseError() || !d.IsArray()) return out;
  for (const auto& v : d.GetArray()) {
    if (v.IsString()) out.emplace_back(v.GetString(), v.GetStringLength());
  }
  return out;
}

}  // namespace medpipe
