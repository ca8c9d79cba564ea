// The web page of `medpipe serve`: one self-contained HTML document (inline
// CSS and JS, no external scripts, fonts or images), so it works offline and
// leaks nothing to third parties.
#include <fmt/format.h>

#include "serve/server.h"

namespace medpipe {
namespace {

std::string EscapeHtml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

constexpr const char* kModelSlot = "<!--MODEL-->";

const std::string& PageTemplate() {
  static const std::string page = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>medpipe chest X-ray triage</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; padding: 0 1rem; }
  h1 { font-size: 1.4rem; }
  #drop { border: 2px dashed #888; border-radius: 8px; padding: 2rem; text-align: center; background: #fafafa; }
  #drop.over { background: #e8f0ff; border-color: #36c; }
  #progress { width: 100%; height: 1rem; margin: 1rem 0; display: none; }
  #summary { display: flex; gap: 1rem; margin: 1rem 0; flex-wrap: wrap; }
  .count { padding: .6rem 1rem; border-radius: 6px; background: #eee; min-width: 6rem; }
  .count b { display: block; font-size: 1.5rem; }
  .High { background: #fde2e1; } .Medium { background: #fff4cc; } .Low { background: #e2f5e1; }
  table { border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }
  th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #ddd; font-size: .9rem; }
  .error { color: #b00; }
  .note { color: #666; font-size: .85rem; }
  .untrained { background: #b00; color: #fff; font-weight: bold; padding: .6rem 1rem; border-radius: 6px; }
</style>
</head>
<body>
<h1>Chest X-ray triage</h1>
<p class="note">Research tool, not for clinical use. Results need expert review.</p>
<!--MODEL-->
<div id="drop">
  <p>Drop chest X-rays here (PNG, JPEG, DICOM) or</p>
  <input type="file" id="files" name="files" multiple accept=".png,.jpg,.jpeg,.dcm,image/*,application/dicom">
  <button id="predict" disabled>Predict</button>
</div>
<progress id="progress" max="100" value="0"></progress>
<div id="status" class="note"></div>
<div id="summary"></div>
<div id="csv"></div>
<div id="result-warning"></div>
<div id="results"></div>
<div id="errors"></div>
<script>
(function () {
  "use strict";
  var chosen = [];
  var input = document.getElementById("files");
  var button = document.getElementById("predict");
  var drop = document.getElementById("drop");
  var progress = document.getElementById("progress");
  var statusLine = document.getElementById("status");

  function choose(list) {
    chosen = Array.prototype.slice.call(list);
    button.disabled = chosen.length === 0;
    statusLine.textContent = chosen.length + " file(s) selected";
  }
  input.addEventListener("change", function () { choose(input.files); });
  drop.addEventListener("dragover", function (e) { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
  drop.addEventListener("drop", function (e) {
    e.preventDefault();
    drop.classList.remove("over");
    choose(e.dataTransfer.files);
  });

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function pct(p) { return (100 * p).toFixed(1) + "%"; }

  function show(data) {
    var summary = document.getElementById("summary");
    var results = document.getElementById("results");
    var errors = document.getElementById("errors");
    summary.textContent = ""; results.textContent = ""; errors.textContent = "";
    var warning = document.getElementById("result-warning");
    warning.textContent = "";
    if (data.warning) warning.appendChild(el("p", data.warning, "untrained"));
    var levels = Object.keys(data.summary || {});
    levels.forEach(function (level) {
      var box = el("div", undefined, "count " + level);
      box.id = "count-" + level;
      box.appendChild(el("b", String(data.summary[level])));
      box.appendChild(document.createTextNode(level));
      summary.appendChild(box);
    });
    levels.forEach(function (level) {
      var rows = (data.results || []).filter(function (r) { return r.risk_level === level; });
      if (!rows.length) return;
      results.appendChild(el("h2", level + " (" + rows.length + ")"));
      var table = el("table");
      table.className = "level-" + level;
      var head = el("tr");
      ["File", "Top label", "Confidence", "Top 3"].forEach(function (h) { head.appendChild(el("th", h)); });
      table.appendChild(head);
      rows.forEach(function (r) {
        var tr = el("tr", undefined, "result");
        tr.appendChild(el("td", r.filename));
        tr.appendChild(el("td", r.top_label));
        tr.appendChild(el("td", pct(r.top_probability)));
        tr.appendChild(el("td", r.top_predictions.map(function (p) { return p.label + " " + pct(p.prob); }).join(", ")));
        table.appendChild(tr);
      });
      results.appendChild(table);
    });
    (data.errors || []).forEach(function (e) { errors.appendChild(el("p", e.filename + ": " + e.error, "error")); });
    var csv = document.getElementById("csv");
    csv.textContent = "";
    if (data.csv_url) {
      var a = el("a", "Download results as CSV");
      a.href = data.csv_url;
      a.id = "csv-link";
      csv.appendChild(a);
    }
  }

  button.addEventListener("click", function () {
    var form = new FormData();
    chosen.forEach(function (f) { form.append("files", f, f.name); });
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/predict_batch");
    progress.style.display = "block";
    progress.removeAttribute("value");
    button.disabled = true;
    statusLine.textContent = "Uploading...";
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) progress.value = Math.round(90 * e.loaded / e.total);
    };
    xhr.upload.onload = function () { statusLine.textContent = "Classifying..."; };
    xhr.onload = function () {
      progress.value = 100;
      button.disabled = false;
      var data;
      try { data = JSON.parse(xhr.responseText); } catch (err) { data = { error: xhr.responseText }; }
      if (data.results) {
        statusLine.textContent = "Done: " + data.results.length + " image(s) classified";
        statusLine.id = "status";
        document.body.setAttribute("data-done", "1");
        show(data);
      } else {
        statusLine.textContent = "Error " + xhr.status + ": " + (data.error || "");
        document.body.setAttribute("data-done", "1");
      }
    };
    xhr.onerror = function () { statusLine.textContent = "Network error"; button.disabled = false; };
    xhr.send(form);
  });
})();
</script>
</body>
</html>
)HTML";
  return page;
}

}  // namespace

std::string TriagePage(const ModelInfo& model) {
  std::string slot = fmt::format("<p class=\"note\" id=\"model\">Model: {} ({}, sha256 {})</p>",
                                 EscapeHtml(model.name), EscapeHtml(model.file), model.sha256);
  if (model.untrained) {
    slot = fmt::format("<p class=\"untrained\" id=\"model-warning\">{}</p>\n", kUntrainedWarning) + slot;
  }
  std::string page = PageTemplate();
  page.replace(page.find(kModelSlot), std::string(kModelSlot).size(), slot);
  return page;
}

}  // namespace medpipe
