// Label tables: a CSV with one row per item (a volume, an image), an id
// column, optionally a patient column, and one column per label. Read by
// ctprep (labels_csv joined to the volumes) and folds (a table alone).
//
// Which columns are labels is decided by the header and the config, never
// by whether every cell parses, so one bad cell cannot remove a label:
//  - `label_columns` given: exactly those (each must exist);
//  - else every column but the id column, the patient column and
//    `exclude_columns`, except a column in which no cell at all reads as a
//    label value (free text such as CT-RATE's report_text, an age): that
//    one is left out with a line in the log and its name in the counter
//    `non_label_columns`, and `exclude_columns` silences it.
// Cells: a number equal to 0 or 1 ("0", "1", "1.0", "0.00"), true/false
// (any case) are values; a blank cell (or "nan", as numpy writes a missing
// value) is unknown; anything else ("2", "yes?") is a per-row problem
// naming file:line, the column and the value, and the cell is unknown too:
// the row and its other labels stay.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataset/dataset.h"
#include "runner/stage_context.h"
#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

constexpr int8_t kLabelUnknown = -1;

struct LabelTableOptions {
  std::string id_column;
  std::string patient_column;                // "": no patient column
  std::vector<std::string> label_columns;    // given: exactly these
  std::vector<std::string> exclude_columns;  // never labels (when label_columns is empty)
  // The key an id is compared by, for duplicates (ctprep: the volume name
  // without .nii/.nii.gz). Null: the cell as it is.
  std::function<std::string(const std::string&)> normalize_id;
};

struct LabelRow {
  size_t line = 0;        // 1-based line of the CSV where the row starts
  std::string id;         // normalised
  std::string patient;    // "" without a patient column or for a blank cell
  std::vector<int8_t> values;  // per label: 0, 1 or kLabelUnknown
};

struct LabelTable {
  std::string file;                  // the CSV's file name, for messages
  std::vector<std::string> labels;   // in header order
  std::vector<LabelRow> rows;        // in file order, one per id (the first)
  std::vector<int64_t> blank, bad;   // per label: blank and unreadable cells (both unknown)
  std::vector<std::string> non_label_columns;
};

// 0, 1 or kLabelUnknown for a cell's text; nullopt when it is not a label value.
std::optional<int8_t> ParseLabelCell(std::string_view text);

// Reads `csv`. Fails (ends the stage) when the file cannot be read, a named
// column is missing or no column is a label. Per-row problems through `ctx`:
// malformed rows, rows without an id, a second row for an id (the first is
// kept), unreadable cells. Logs the labels and, per label, how many cells are
// unknown; counts them as `unknown_cells.<label>` and `unknown_cells`.
Result<LabelTable> ReadLabelTable(const fs::path& csv, const LabelTableOptions& options, StageContext& ctx);

// Puts a row's labels on an image: the positives in `labels`, the unknown
// ones as a JSON array in attributes["unknown_labels"] (only when any).
void SetImageLabels(const LabelTable& table, const LabelRow& row, Image* image);

// The unknown labels of an image as SetImageLabels wrote them (an unreadable
// attribute reads as none).
std::vector<std::string> UnknownLabels(const Image& image);

}  // namespace medpipe
