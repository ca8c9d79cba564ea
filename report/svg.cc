#include "report/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "report/html.h"

namespace medpipe::report {

Rgb ClassColour(size_t index) {
  static constexpr Rgb kTableau[10] = {{78, 121, 167}, {242, 142, 43}, {225, 87, 89},  {118, 183, 178},
                                       {89, 161, 79},  {237, 201, 72}, {176, 122, 161}, {255, 157, 167},
                                       {156, 117, 95}, {186, 176, 172}};
  Rgb c = kTableau[index % 10];
  for (size_t round = index / 10; round > 0; --round) {
    c = Rgb{static_cast<uint8_t>(c.r * 3 / 4), static_cast<uint8_t>(c.g * 3 / 4), static_cast<uint8_t>(c.b * 3 / 4)};
  }
  return c;
}

std::string Hex(Rgb c) { return fmt::format("#{:02x}{:02x}{:02x}", c.r, c.g, c.b); }

std::string Swatch(Rgb c) { return fmt::format("<span class=\"sw\" style=\"background:{}\"></span>", Hex(c)); }

std::string StackedBars(const std::vector<std::string>& bars, const std::vector<std::string>& segments,
                        const std::vector<Rgb>& colours, const std::vector<std::vector<int64_t>>& values) {
  constexpr int kLabel = 90, kBar = 22, kGap = 8, kWidth = 560, kRight = 70;
  int64_t max_total = 1;
  for (const auto& v : values) {
    int64_t t = 0;
    for (int64_t x : v) t += x;
    max_total = std::max(max_total, t);
  }
  const int height = static_cast<int>(bars.size()) * (kBar + kGap) + kGap;
  std::string out = fmt::format(
      "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "role=\"img\">\n",
      kLabel + kWidth + kRight, height);
  for (size_t b = 0; b < bars.size(); ++b) {
    const int y = kGap + static_cast<int>(b) * (kBar + kGap);
    out += fmt::format("<g class=\"bar\" data-bar=\"{}\"><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                       Escape(bars[b]), kLabel - 6, y + kBar / 2 + 4, Escape(bars[b]));
    double x = kLabel;
    int64_t total = 0;
    for (size_t s = 0; s < segments.size(); ++s) {
      const int64_t v = values[b][s];
      total += v;
      if (v == 0) continue;
      const double w = static_cast<double>(v) * kWidth / static_cast<double>(max_total);
      out += fmt::format(
          "<rect x=\"{:.2f}\" y=\"{}\" width=\"{:.2f}\" height=\"{}\" fill=\"{}\"><title>{}: {} {}</title></rect>", x,
          y, w, kBar, Hex(colours[s]), Escape(bars[b]), Escape(segments[s]), v);
      x += w;
    }
    out += fmt::format("<text x=\"{:.2f}\" y=\"{}\">{}</text></g>\n", x + 4, y + kBar / 2 + 4, total);
  }
  out += "</svg>\n";
  return out;
}

std::string Histogram(const std::vector<std::string>& labels, const std::vector<int64_t>& counts, Rgb colour,
                      int width, int height) {
  const int64_t max = std::max<int64_t>(1, counts.empty() ? 1 : *std::max_element(counts.begin(), counts.end()));
  const double bin = counts.empty() ? 0 : static_cast<double>(width) / static_cast<double>(counts.size());
  std::string out = fmt::format(
      "<svg class=\"hist\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "role=\"img\"><rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"#f7f7f9\"/>",
      width, height);
  for (size_t k = 0; k < counts.size(); ++k) {
    const double h = counts[k] == 0 ? 0 : std::max(1.0, static_cast<double>(counts[k]) * (height - 2) / max);
    out += fmt::format(
        "<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\"><title>{}: {}</title></rect>",
        bin * static_cast<double>(k) + 0.5, height - h, std::max(0.5, bin - 1), h, Hex(colour), Escape(labels[k]),
        counts[k]);
  }
  out += "</svg>";
  return out;
}

std::string HeatMap(const std::vector<std::string>& rows, const std::vector<std::string>& cols,
                    const std::vector<std::vector<int64_t>>& values, Rgb colour) {
  constexpr int kRowLabel = 110, kColLabel = 90, kCell = 44;
  int64_t max = 1;
  for (const auto& r : values) {
    for (int64_t v : r) max = std::max(max, v);
  }
  const int width = kRowLabel + static_cast<int>(cols.size()) * kCell + 4;
  const int height = kColLabel + static_cast<int>(rows.size()) * kCell + 4;
  std::string out = fmt::format(
      "<svg class=\"heat\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "role=\"img\">\n",
      width, height);
  for (size_t c = 0; c < cols.size(); ++c) {
    const int x = kRowLabel + static_cast<int>(c) * kCell + kCell / 2;
    out += fmt::format("<text transform=\"translate({},{}) rotate(-60)\">{}</text>", x, kColLabel - 4,
                       Escape(cols[c]));
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    const int y = kColLabel + static_cast<int>(r) * kCell;
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", kRowLabel - 6, y + kCell / 2 + 4,
                       Escape(rows[r]));
    for (size_t c = 0; c < cols.size(); ++c) {
      const int64_t v = values[r][c];
      const double t = static_cast<double>(v) / static_cast<double>(max);
      auto mix = [t](uint8_t to) { return static_cast<int>(std::lround(255 - (255 - to) * t)); };
      const int x = kRowLabel + static_cast<int>(c) * kCell;
      out += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#{:02x}{:02x}{:02x}\" stroke=\"#fff\">"
          "<title>{} / {}: {}</title></rect><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{}\">{}</text>",
          x, y, kCell, kCell, mix(colour.r), mix(colour.g), mix(colour.b), Escape(rows[r]), Escape(cols[c]), v,
          x + kCell / 2, y + kCell / 2 + 4, t > 0.6 ? "#fff" : "#222", v);
    }
    out += "\n";
  }
  out += "</svg>\n";
  return out;
}

}  // namespace medpipe::report
