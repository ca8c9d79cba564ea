#include "report/sections.h"

#include <fmt/format.h>

#include <set>

#include "report/html.h"
#include "report/svg.h"

namespace medpipe::report {

namespace {

std::string Share(int64_t part, int64_t whole) {
  return whole == 0 ? "0" : fmt::format("{}", static_cast<double>(part) / static_cast<double>(whole));
}

std::string Para(const std::string& html, const char* cls = nullptr) {
  return cls ? fmt::format("<p class=\"{}\">{}</p>\n", cls, html) : "<p>" + html + "</p>\n";
}

std::string Img(const Thumb& t) {
  if (t.url.empty()) {
    return "<div class=\"muted\">no thumbnail: " + Escape(t.error) + "</div>";
  }
  return fmt::format("<img src=\"{}\" alt=\"{}\" loading=\"eager\">", Escape(t.url), Escape(t.caption));
}

std::string Legend(const std::vector<std::string>& names, const std::vector<Rgb>& colours) {
  std::string out = "<div class=\"legend\">";
  for (size_t k = 0; k < names.size(); ++k) out += "<span>" + Swatch(colours[k]) + Escape(names[k]) + "</span>";
  return out + "</div>\n";
}

constexpr Rgb kNegative{170, 170, 170};
constexpr Rgb kAccent{78, 121, 167};

}  // namespace

std::string SplitsSection(const DatasetStats& st, std::optional<double> negative_target) {
  std::vector<std::string> columns = st.splits;
  columns.push_back("total");
  std::vector<const SplitStats*> cols;
  for (const auto& s : st.per_split) cols.push_back(&s);
  cols.push_back(&st.total);

  Table t("splits" + st.id_suffix, "", columns);
  auto row = [&](const std::string& key, const std::string& label, auto cell) {
    t.Row(key, label);
    for (const SplitStats* s : cols) cell(*s);
  };
  row("images", "images", [&](const SplitStats& s) { t.Cell(s.images); });
  row("patients", "patients", [&](const SplitStats& s) { t.Cell(s.patients); });
  row("images_without_patient", "images without patient", [&](const SplitStats& s) { t.Cell(s.images_without_patient); });
  if (st.image_level) {
    // A classification dataset: what it has is labels, not boxes.
    row("images_with_labels", "images with a label", [&](const SplitStats& s) { t.Cell(s.images_with_labels); });
    row("images_without_labels", "images without a label",
        [&](const SplitStats& s) { t.Cell(s.images - s.images_with_labels); });
    row("augmented", "augmented", [&](const SplitStats& s) { t.Cell(s.augmented); });
    for (size_t k = 0; k < st.labels.size(); ++k) {
      row("images_per_label/" + st.labels[k], "images " + st.labels[k],
          [&](const SplitStats& s) { t.Cell(s.images_per_label[k]); });
    }
    for (const auto& [source, n] : st.total.sources) {
      row("sources/" + source, "source " + source, [&](const SplitStats& s) {
        auto it = s.sources.find(source);
        t.Cell(it == s.sources.end() ? 0 : it->second);
      });
    }
    return Para("Image-level labels (a classification dataset: no boxes).", "muted") + t.Render();
  }
  row("negatives", "negatives", [&](const SplitStats& s) { t.Cell(s.negatives); });
  row("negative_share", "negative share", [&](const SplitStats& s) {
    t.Cell(Percent(s.negatives, s.images), Share(s.negatives, s.images));
  });
  if (negative_target) {
    row("negative_target_gap", "negative share - target", [&](const SplitStats& s) {
      const double gap = s.images == 0 ? 0 : static_cast<double>(s.negatives) / s.images - *negative_target;
      t.CellHtml(fmt::format("<span class=\"{}\">{:+.1f} pt</span>", std::abs(gap) <= 0.02 ? "ok" : "warn",
                             100 * gap));
    });
  }
  row("augmented", "augmented", [&](const SplitStats& s) { t.Cell(s.augmented); });
  row("augmented_share", "augmented share", [&](const SplitStats& s) {
    t.Cell(Percent(s.augmented, s.images), Share(s.augmented, s.images));
  });
  row("boxes", "boxes", [&](const SplitStats& s) { t.Cell(s.boxes); });
  for (size_t c = 0; c < st.classes.size(); ++c) {
    row("images_per_class/" + st.classes[c], "images " + st.classes[c],
        [&](const SplitStats& s) { t.Cell(s.images_per_class[c]); });
  }
  for (size_t c = 0; c < st.classes.size(); ++c) {
    row("boxes_per_class/" + st.classes[c], "boxes " + st.classes[c],
        [&](const SplitStats& s) { t.Cell(s.boxes_per_class[c]); });
  }
  for (const auto& [source, n] : st.total.sources) {
    row("sources/" + source, "source " + source, [&](const SplitStats& s) {
      auto it = s.sources.find(source);
      t.Cell(it == s.sources.end() ? 0 : it->second);
    });
  }
  std::string out;
  if (negative_target) {
    out += Para(fmt::format("Target negative share: <b>{:.1f}%</b> (from the balance stage or the report's "
                            "<code>negative_target</code>).",
                            100 * *negative_target));
  }
  out += t.Render();
  if (st.annotations_with_undefined_category > 0) {
    out += Para(fmt::format("{} annotations name an undefined category and are not counted.",
                            st.annotations_with_undefined_category),
                "warn");
  }
  return out;
}

std::string ClassesSection(const DatasetStats& st) {
  std::vector<std::string> segments = st.classes;
  segments.push_back("negatives");
  std::vector<Rgb> colours;
  for (size_t c = 0; c < st.classes.size(); ++c) colours.push_back(ClassColour(c));
  colours.push_back(kNegative);
  std::vector<std::vector<int64_t>> values;
  for (const auto& s : st.per_split) {
    std::vector<int64_t> v = s.images_per_class;
    v.push_back(s.negatives);
    values.push_back(std::move(v));
  }
  std::string out = Para("Images per class and split (an image with boxes of two classes counts in both); "
                         "negatives are images without boxes.");
  out += Legend(segments, colours);
  out += StackedBars(st.splits, segments, colours, values);

  Table t("classes" + st.id_suffix, "class", st.splits);
  for (size_t c = 0; c < segments.size(); ++c) {
    t.Row(segments[c], segments[c]);
    for (const auto& v : values) t.Cell(v[c]);
  }
  return out + t.Render();
}

std::string LabelsSection(const DatasetStats& st) {
  std::vector<std::string> segments = st.labels;
  segments.push_back("no label");
  std::vector<Rgb> colours;
  for (size_t k = 0; k < st.labels.size(); ++k) colours.push_back(ClassColour(k));
  colours.push_back(kNegative);
  std::vector<std::vector<int64_t>> values;
  for (const auto& s : st.per_split) {
    std::vector<int64_t> v = s.images_per_label;
    v.push_back(s.images - s.images_with_labels);
    values.push_back(std::move(v));
  }
  std::string out = Para("Images per label and split (an image with two labels counts in both).");
  out += Legend(segments, colours);
  out += StackedBars(st.splits, segments, colours, values);
  std::vector<std::string> columns = st.splits;
  columns.push_back("total");
  Table t("labels" + st.id_suffix, "label", columns);
  for (size_t k = 0; k < segments.size(); ++k) {
    t.Row(segments[k], segments[k]);
    for (const auto& v : values) t.Cell(v[k]);
    t.Cell(k < st.labels.size() ? st.total.images_per_label[k] : st.total.images - st.total.images_with_labels);
  }
  return out + t.Render();
}

std::string BoxesSection(const DatasetStats& st) {
  Table t("box_stats" + st.id_suffix, "class", {"boxes", "images", "boxes per image", "width (px)", "height (px)", "area (of image)"});
  for (size_t c = 0; c < st.classes.size(); ++c) {
    const ClassBoxStats& b = st.boxes[c];
    const Rgb colour = ClassColour(c);
    t.Row(st.classes[c], st.classes[c]).Cell(b.boxes).Cell(b.images);
    t.Cell(b.images == 0 ? "-" : fmt::format("{:.2f}", static_cast<double>(b.boxes) / b.images));
    t.CellHtml(Histogram(kSideBins, b.width, colour));
    t.CellHtml(Histogram(kSideBins, b.height, colour));
    t.CellHtml(Histogram(kAreaBins, b.area, colour));
  }
  std::string out = Para(fmt::format("Histogram bins: width and height {}; area {}.", Escape(fmt::format("{}", fmt::join(kSideBins, ", "))),
                                     Escape(fmt::format("{}", fmt::join(kAreaBins, ", ")))),
                         "muted");
  out += t.Render();
  out += "<h3>Boxes per image</h3>\n";
  std::vector<std::string> columns = st.splits;
  columns.push_back("total");
  Table b("boxes_per_image" + st.id_suffix, "boxes", columns);
  for (size_t k = 0; k < kBoxesPerImageBins.size(); ++k) {
    b.Row(kBoxesPerImageBins[k], kBoxesPerImageBins[k]);
    for (const auto& s : st.per_split) b.Cell(s.boxes_per_image[k]);
    b.Cell(st.total.boxes_per_image[k]);
  }
  return out + b.Render();
}

std::string PatientsSection(const DatasetStats& st) {
  std::string out;
  if (st.patients_in_several_splits == 0) {
    out += Para("<span class=\"ok\">No patient is in two splits.</span> The diagonal counts each split's patients.");
  } else {
    out += Para(fmt::format("<span class=\"fail\">{} patient{} in more than one split.</span>",
                            st.patients_in_several_splits, st.patients_in_several_splits == 1 ? " is" : "s are"));
  }
  Table t("patient_overlap" + st.id_suffix, "", st.splits);
  for (size_t a = 0; a < st.splits.size(); ++a) {
    t.Row(st.splits[a], st.splits[a]);
    for (size_t b = 0; b < st.splits.size(); ++b) {
      const int64_t v = st.patient_overlap[a][b];
      const bool leak = a != b && v > 0 && st.splits[a] != kUnsplit && st.splits[b] != kUnsplit;
      t.CellHtml(leak ? fmt::format("<span class=\"fail\">{}</span>", v) : std::to_string(v));
    }
  }
  out += t.Render();
  if (!st.overlap_offenders.empty()) {
    out += "<h3>Patients in several splits</h3>\n<ul>\n";
    for (const auto& [patient, splits] : st.overlap_offenders) {
      out += "<li>" + Escape(patient) + ": " + Escape(fmt::format("{}", fmt::join(splits, ", "))) + "</li>\n";
    }
    out += "</ul>\n";
    if (st.patients_in_several_splits > static_cast<int64_t>(st.overlap_offenders.size())) {
      out += Para(fmt::format("... and {} more.", st.patients_in_several_splits -
                                                       static_cast<int64_t>(st.overlap_offenders.size())),
                  "muted");
    }
  }
  const int64_t without = st.total.images_without_patient;
  if (without > 0) out += Para(fmt::format("{} images have no patient id and are not in the matrix.", without), "muted");
  if (!st.splits.empty() && st.splits.back() == kUnsplit) {
    out += Para("Images without a split (\"unsplit\") share patients with splits without leaking.", "muted");
  }
  return out;
}

namespace {

std::string FindingsList(const CheckResult& c) {
  std::string out;
  std::string text;
  std::string gallery;
  for (const auto& f : c.findings) {
    if (f.thumb && !f.thumb->url.empty()) {
      gallery += "<figure>" + Img(*f.thumb) + "<figcaption><b>" + Escape(f.item) + "</b><br>" + Escape(f.reason) +
                 "</figcaption></figure>\n";
    } else {
      text += "<li><b>" + Escape(f.item) + "</b>: " + Escape(f.reason) +
              (f.thumb ? " <span class=\"muted\">(no thumbnail: " + Escape(f.thumb->error) + ")</span>" : "") +
              "</li>\n";
    }
  }
  if (!gallery.empty()) out += "<div class=\"gallery\">\n" + gallery + "</div>\n";
  if (!text.empty()) out += "<ul>\n" + text + "</ul>\n";
  if (c.not_listed > 0) {
    out += Para(fmt::format("... and {} more (validate's <code>max_listed</code> bounds the list).", c.not_listed),
                "muted");
  }
  return out;
}

}  // namespace

std::string DuplicatesSection(const std::vector<ValidationResult>& validations) {
  std::string out;
  bool any = false;
  for (const auto& v : validations) {
    for (const auto& c : v.checks) {
      if (c.name != "duplicates") continue;
      any = true;
      if (c.failures == 0) {
        out += Para("<span class=\"ok\">No file content is in two splits</span> (checked by " + Escape(v.stage) + ").");
        continue;
      }
      out += Para(fmt::format("<span class=\"fail\">{} duplicate{} across splits</span> (checked by {}):", c.failures,
                              c.failures == 1 ? "" : "s", Escape(v.stage)));
      out += FindingsList(c);
    }
  }
  if (!any) {
    out += Para("Not checked: duplicates are found by content in a <code>validate</code> stage; add one as an "
                "input of the report.",
                "muted");
  }
  return out;
}

std::string ValidationSection(const std::vector<ValidationResult>& validations) {
  std::string out;
  for (const auto& v : validations) {
    out += fmt::format("<h3>{}: <span class=\"{}\">{}</span></h3>\n", Escape(v.stage), v.passed ? "ok" : "fail",
                       v.passed ? "passed" : "failed");
    Table t("validation_" + v.stage, "check", {"result", "fatal", "failures"});
    for (const auto& c : v.checks) {
      t.Row(c.name, c.name)
          .CellHtml(c.passed ? "<span class=\"ok\">pass</span>" : "<span class=\"fail\">fail</span>")
          .Cell(c.fatal ? "yes" : "no")
          .Cell(c.failures);
    }
    out += t.Render();
    for (const auto& c : v.checks) {
      if (c.failures == 0) continue;
      out += "<h3>" + Escape(v.stage) + " / " + Escape(c.name) + "</h3>\n" + FindingsList(c);
    }
    if (!v.notes.empty()) {
      out += "<p class=\"muted\">";
      for (const auto& [k, n] : v.notes) out += Escape(k) + ": " + std::to_string(n) + ". ";
      out += "</p>\n";
    }
  }
  return out;
}

std::string GallerySection(const DatasetStats& st, const std::vector<GallerySet>& gallery, size_t per_group) {
  std::string out = Para(st.image_level
                             ? fmt::format("Up to {} images per split and label, chosen by the pipeline's seed.",
                                           per_group)
                             : fmt::format("Up to {} images per split and class, chosen by the pipeline's seed; boxes "
                                           "in their class colours. Augmented copies (purple edge) follow their "
                                           "source.",
                                           per_group),
                         "muted");
  std::vector<Rgb> colours;
  for (size_t c = 0; c < st.classes.size(); ++c) colours.push_back(ClassColour(c));
  if (!st.image_level) out += Legend(st.classes, colours);
  std::string split;
  for (const auto& set : gallery) {
    if (set.split != split) {
      split = set.split;
      out += "<h3>" + Escape(split) + "</h3>\n";
    }
    out += "<h4>" + Escape(set.group) + "</h4>\n<div class=\"gallery\">\n";
    for (const auto& f : set.figures) {
      out += "<figure><div class=\"row\">" + Img(f.image);
      for (const auto& c : f.copies) out += "<div class=\"aug\">" + Img(c) + "</div>";
      out += "</div><figcaption>" + Escape(f.image.caption);
      if (!f.copies.empty()) out += fmt::format(" <span class=\"muted\">+{} augmented</span>", f.copies.size());
      out += "</figcaption></figure>\n";
    }
    out += "</div>\n";
  }
  return out;
}

std::string AttributesSection(const DatasetStats& st) {
  std::string out;
  if (!st.folds.empty()) {
    out += "<h3>Folds</h3>\n" + Para("Images positive for each label (image labels and box classes) per fold.");
    out += HeatMap(st.folds, st.labels, st.fold_positives, kAccent);
    std::vector<std::string> cols = st.labels;
    cols.insert(cols.begin(), "images");
    Table t("folds" + st.id_suffix, "fold", cols);
    for (size_t f = 0; f < st.folds.size(); ++f) {
      t.Row(st.folds[f], st.folds[f]).Cell(st.fold_images[f]);
      for (int64_t v : st.fold_positives[f]) t.Cell(v);
    }
    out += t.Render();
  }
  auto counts = [&](const char* id, const char* title, const AttributeCounts& a) {
    if (a.values.empty()) return;
    out += std::string("<h3>") + title + "</h3>\n";
    std::vector<Rgb> colours;
    for (size_t k = 0; k < a.values.size(); ++k) colours.push_back(ClassColour(k));
    std::vector<std::vector<int64_t>> by_split(st.splits.size(), std::vector<int64_t>(a.values.size()));
    for (size_t v = 0; v < a.values.size(); ++v) {
      for (size_t s = 0; s < st.splits.size(); ++s) by_split[s][v] = a.per_split[v][s];
    }
    out += Legend(a.values, colours) + StackedBars(st.splits, a.values, colours, by_split);
    Table t(id + st.id_suffix, title, st.splits);
    for (size_t v = 0; v < a.values.size(); ++v) {
      t.Row(a.values[v], a.values[v]);
      for (int64_t n : a.per_split[v]) t.Cell(n);
    }
    out += t.Render();
  };
  counts("risk_level", "Risk level", st.risk_level);
  if (!st.probabilities.empty()) {
    out += "<h3>Probabilities</h3>\n";
    Table t("probabilities" + st.id_suffix, "label", {"images", "histogram (0 to 1)"});
    size_t k = 0;
    for (const auto& [label, hist] : st.probabilities) {
      int64_t n = 0;
      for (int64_t v : hist) n += v;
      t.Row(label, label).Cell(n).CellHtml(Histogram(kProbabilityBins, hist, ClassColour(k++), 240, 60));
    }
    out += t.Render();
  }
  counts("machine_type", "Machine type", st.machine_type);
  if (!st.machine_type.values.empty() && !st.labels.empty()) {
    Table t("machine_type_labels" + st.id_suffix, "machine type", st.labels);
    for (size_t v = 0; v < st.machine_type.values.size(); ++v) {
      t.Row(st.machine_type.values[v], st.machine_type.values[v]);
      for (int64_t n : st.machine_type_labels[v]) t.Cell(n);
    }
    out += Para("Images positive per label and machine type.") + t.Render();
  }
  return out;
}

std::string ProvenanceSection(const Provenance& p) {
  std::string out = "<p>";
  if (!p.pipeline_file.empty()) out += "Pipeline file <code>" + Escape(p.pipeline_file) + "</code>; ";
  out += fmt::format("seed {}; report stage <code>{}</code>; medpipe {}.", p.seed, Escape(p.report_stage),
                     Escape(p.version));
  if (p.times) {
    double total = 0;
    for (const auto& s : p.stages) total += std::max(0.0, s.seconds);
    out += fmt::format(" Run time of the stages above: {:.1f} s.", total);
  }
  out += "</p>\n";
  std::vector<std::string> cols = {"kind", "items", "failed"};
  if (p.times) cols.insert(cols.end(), {"resumed", "seconds", "finished"});
  cols.push_back("params");
  Table t("provenance", "stage", cols);
  for (const auto& s : p.stages) {
    t.Row(s.id, s.id).Cell(s.kind).Cell(s.items).Cell(s.items_failed);
    if (p.times) {
      t.Cell(s.items_resumed).Cell(fmt::format("{:.2f}", s.seconds)).Cell(s.finished_at);
    }
    std::string params = "<details><summary>" + std::to_string(s.params.size()) + " params</summary><code>";
    for (const auto& [k, v] : s.params) params += Escape(k) + "=" + Escape(v) + "<br>";
    t.CellHtml(params + "</code></details>");
  }
  return out + t.Render();
}

}  // namespace medpipe::report
