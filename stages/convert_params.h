// The conversion params, one vocabulary for every stage that turns DICOM into
// images (`convert`, `download`): their specs, their parsing into
// ConvertOptions plus the pseudonymisation salt and the attribute filters,
// and the filter decision. Names, types, defaults and messages follow the
// convert stage (stages/convert.cc), so a user learns them once; only the
// default of filter_slice_thickness differs per stage (download keeps the
// hemorrhage workflow's 5.0/5.5 mm).
#pragma once

#include <png.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "dicom/convert.h"
#include "graph/params.h"
#include "util/hash.h"

namespace medpipe {

struct ConvertParams {
  ConvertOptions convert;
  std::string salt;                     // pseudonymize_salt; "" keeps patient ids
  std::vector<double> thickness;        // mm, matched within 0.01; empty: all
  std::vector<std::string> modalities;  // upper case; empty: all
};

// `thickness_default` is the YAML default of filter_slice_thickness: "" (no
// filter) or e.g. "[\"5.0\", \"5.5\"]".
inline std::vector<ParamSpec> ConvertParamSpecs(const std::string& thickness_default) {
  return {
      {"window", ParamType::kString, "file", false,
       "preset (brain, subdural, bone, stroke, lung, soft_tissue, ...), 'C/W', "
       "file (its VOI LUT, else its window, else min-max), minmax or none", {}},
      {"rgb_windows", ParamType::kStringList, "", false, "3 windows: monochrome images become RGB, one per channel", {}},
      {"voi_function", ParamType::kString, "linear", false, "DICOM VOI LUT function",
       {"linear", "linear_exact", "sigmoid"}},
      {"bit_depth", ParamType::kInt, "8", false, "8 or 16 bits per sample (16: png only)", {}},
      {"format", ParamType::kString, "png", false, "output format", {"png", "jpeg"}},
      {"png_level", ParamType::kInt, "1", false, "zlib level 0..9 (Pillow's default is 6)", {}},
      {"png_filter", ParamType::kString, "none", false,
       "libpng filters, comma-separated: none, sub, up, avg, paeth, all (Pillow: 'none,sub,up,paeth')", {}},
      {"png_strategy", ParamType::kString, "rle", false, "zlib strategy (Pillow: default)",
       {"default", "filtered", "huffman", "rle"}},
      {"jpeg_quality", ParamType::kInt, "95", false, "1..100", {}},
      {"resize_width", ParamType::kInt, "0", false, "output width (0: keep, or keep the aspect ratio)", {}},
      {"resize_height", ParamType::kInt, "0", false, "output height (0: keep, or keep the aspect ratio)", {}},
      {"frames", ParamType::kStringList, "", false, "0-based frame indices to convert; empty: all", {}},
      {"pseudonymize_salt", ParamType::kString, "", false,
       "replace patient ids by a salted SHA-256 pseudonym in every output", {}},
      {"filter_slice_thickness", ParamType::kStringList, thickness_default, false,
       "keep only these slice thicknesses in mm (±0.01), e.g. [\"5.0\", \"5.5\"]; [] or empty: all", {}},
      {"filter_modality", ParamType::kStringList, "", false, "keep only these modalities, e.g. [CT]; empty: all", {}},
  };
}

// "none", "sub,up", "all": the libpng filter mask.
inline Result<int> ParsePngFilterList(const std::string& text) {
  static const std::map<std::string, int> kMasks = {{"none", PNG_FILTER_NONE}, {"sub", PNG_FILTER_SUB},
                                                     {"up", PNG_FILTER_UP},     {"avg", PNG_FILTER_AVG},
                                                     {"paeth", PNG_FILTER_PAETH}, {"all", PNG_ALL_FILTERS}};
  int mask = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = std::min(text.find(',', start), text.size());
    std::string name = text.substr(start, comma - start);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    auto it = kMasks.find(name);
    if (it == kMasks.end()) return Status::Invalid("'" + name + "' is not none, sub, up, avg, paeth or all");
    mask |= it->second;
    start = comma + 1;
  }
  if (mask == 0) return Status::Invalid("name at least one filter");
  return mask;
}

// Parses the conversion params of a stage declared with ConvertParamSpecs.
// A bad value is a config error located at its param.
inline Result<ConvertParams> ParseConvertParams(const Params& p) {
  ConvertParams o;
  ConvertOptions& c = o.convert;
  c.window = p.GetString("window");
  c.rgb_windows = p.GetStringList("rgb_windows");
  c.voi_function = p.GetString("voi_function");
  c.bit_depth = static_cast<int>(p.GetInt("bit_depth"));
  c.format = p.GetString("format");
  c.png_level = static_cast<int>(p.GetInt("png_level"));
  Result<int> filter = ParsePngFilterList(p.GetString("png_filter"));
  if (!filter.ok()) return p.Error("png_filter", filter.status().message());
  c.png_filter = *filter;
  const std::string strategy = p.GetString("png_strategy");
  c.png_strategy = strategy == "filtered" ? 1 : strategy == "huffman" ? 2 : strategy == "rle" ? 3 : 0;
  c.jpeg_quality = static_cast<int>(p.GetInt("jpeg_quality"));
  c.resize_width = static_cast<int>(p.GetInt("resize_width"));
  c.resize_height = static_cast<int>(p.GetInt("resize_height"));
  for (const auto& f : p.GetStringList("frames")) {
    char* end = nullptr;
    long v = std::strtol(f.c_str(), &end, 10);
    if (f.empty() || *end != 0 || v < 0) return p.Error("frames", "'" + f + "' is not a 0-based frame index");
    c.frames.push_back(static_cast<int>(v));
  }
  if (Status s = ValidateConvertOptions(c); !s.ok()) {
    // Name the param the message is about.
    const std::pair<const char*, const char*> kParams[] = {
        {"rgb_windows", "rgb_windows"}, {"window", "window"},         {"voi_function", "voi_function"},
        {"bit_depth", "bit_depth"},     {"format", "format"},         {"png_level", "png_level"},
        {"jpeg_quality", "jpeg_quality"}, {"resize", "resize_width"}, {"frame", "frames"}};
    for (const auto& [word, name] : kParams) {
      if (s.message().find(word) != std::string::npos) return p.Error(name, s.message());
    }
    return p.Error("window", s.message());
  }
  o.salt = p.GetString("pseudonymize_salt");
  for (const auto& t : p.GetStringList("filter_slice_thickness")) {
    char* end = nullptr;
    double v = std::strtod(t.c_str(), &end);
    if (t.empty() || *end != 0 || !std::isfinite(v) || v <= 0) {
      return p.Error("filter_slice_thickness", "'" + t + "' is not a thickness in mm, e.g. \"5.0\"");
    }
    o.thickness.push_back(v);
  }
  for (auto m : p.GetStringList("filter_modality")) {
    std::transform(m.begin(), m.end(), m.begin(), [](unsigned char ch) { return std::toupper(ch); });
    o.modalities.push_back(m);
  }
  return o;
}

// A hash of the conversion params' canonical values: part of each item's
// fingerprint, so changing any of them redoes the items.
inline std::string ConvertParamsHash(const Params& p) {
  Hasher h;
  const auto canonical = p.Canonical();
  for (const auto& spec : ConvertParamSpecs("")) {
    auto it = canonical.find(spec.name);
    h.Field(spec.name).Field(it == canonical.end() ? "" : it->second);
  }
  return h.HexDigest();
}

// Writes the identifying metadata both stages keep in their item payloads
// (keys patient_id, study_uid, series_uid, sop_uid, modality, manufacturer,
// model, and slice_thickness when known) into the open JSON object.
inline void WriteDicomMeta(rapidjson::Writer<rapidjson::StringBuffer>& w, const DicomMeta& m,
                           const std::string& patient_id) {
  w.Key("patient_id");
  w.String(patient_id);
  const std::pair<const char*, const std::string*> strings[] = {
      {"study_uid", &m.study_uid}, {"series_uid", &m.series_uid},     {"sop_uid", &m.sop_uid},
      {"modality", &m.modality},   {"manufacturer", &m.manufacturer}, {"model", &m.model}};
  for (const auto& [key, value] : strings) {
    w.Key(key);
    w.String(*value);
  }
  if (std::isfinite(m.slice_thickness)) {
    w.Key("slice_thickness");
    w.Double(m.slice_thickness);
  }
}

inline bool HasAttributeFilters(const ConvertParams& o) { return !o.thickness.empty() || !o.modalities.empty(); }

// "" when `m` passes the attribute filters, else the counter naming why not:
// "filtered.modality" or "filtered.slice_thickness" (a missing thickness
// matches nothing).
inline std::string FilterReason(const ConvertParams& o, const DicomMeta& m) {
  if (!o.modalities.empty()) {
    std::string mod = m.modality;
    std::transform(mod.begin(), mod.end(), mod.begin(), [](unsigned char ch) { return std::toupper(ch); });
    if (std::find(o.modalities.begin(), o.modalities.end(), mod) == o.modalities.end()) return "filtered.modality";
  }
  if (!o.thickness.empty() && std::none_of(o.thickness.begin(), o.thickness.end(), [&](double t) {
        return std::fabs(t - m.slice_thickness) <= 0.01;
      })) {
    return "filtered.slice_thickness";
  }
  return "";
}

}  // namespace medpipe
