// Inline SVG charts for reports: a stacked bar chart, a small histogram and a
// heat map. Each returns one <svg> element with every label escaped; sizes
// are in CSS pixels and the charts carry <title> tooltips, so they read
// without any script and print as vectors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace medpipe::report {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

// A colour per class index, distinct for the first ten (Tableau 10) and then
// repeating with a darker shade, so the page and the thumbnails agree.
Rgb ClassColour(size_t index);
std::string Hex(Rgb c);

// One horizontal bar per entry of `bars`, stacked from `values[bar][segment]`
// in the colours of `colours[segment]`. Each bar is a <g class="bar"
// data-bar="NAME"> so its count can be checked.
// REQUIRES: values.size() == bars.size(); each values[i].size() ==
// segments.size() == colours.size().
std::string StackedBars(const std::vector<std::string>& bars, const std::vector<std::string>& segments,
                        const std::vector<Rgb>& colours, const std::vector<std::vector<int64_t>>& values);

// A small column histogram, `labels[k]` under-titled bin k.
// REQUIRES: labels.size() == counts.size().
std::string Histogram(const std::vector<std::string>& labels, const std::vector<int64_t>& counts, Rgb colour,
                      int width = 180, int height = 60);

// A grid of cells shaded by value (white to `colour` at the maximum), each
// with its number.
// REQUIRES: values.size() == rows.size(); each values[i].size() == cols.size().
std::string HeatMap(const std::vector<std::string>& rows, const std::vector<std::string>& cols,
                    const std::vector<std::vector<int64_t>>& values, Rgb colour);

// A coloured square for legends.
std::string Swatch(Rgb c);

}  // namespace medpipe::report
