// The conversion params, one vocabulary for every stage that turns DICOM into
// images (`convert`, `download`): their specs, their parsing into
// ConvertOptions plus the pseudonymisation salt and the attribute filters,
// and the filter decision. Names, types, defaults and messages follow the
// convert stage (stages/convert.cc), so a user learns them once. Every
// default is neutral (no thickness or modality filter): a project's own
// choices, such as the hemorrhage workflow's 5.0/5.5 mm, are written in its
// pipeline file.
#pragma once

#include <fmt/format.h>
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
#include "image/png.h"
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
      {"png_compression", ParamType::kString, "small", false,
       "PNG deflate back end: small (libdeflate, Pillow's size or less), zlib (as libpng), fast (ISA-L: "
       "about 3x small's speed, but its bytes can differ from run to run)",
       {"fast", "small", "zlib"}},
      {"png_level", ParamType::kInt, "1", false, "png_compression zlib only: level 0..9 (Pillow's is 6)", {}},
      {"png_filter", ParamType::kString, "none", false,
       "PNG filters, comma-separated: none, sub, up, avg, paeth, all (Pillow: 'none,sub,up,paeth')", {}},
      {"png_strategy", ParamType::kString, "rle", false, "png_compression zlib only: zlib strategy (Pillow: default)",
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
  c.png_compression = *ParsePngCompressor(p.GetString("png_compression"));  // the spec's choices
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

// Why `m` was filtered out, in words, for the problem that names the file:
// "slice thickness 4 mm is not in filter_slice_thickness [5, 5.5]".
inline std::string FilterDetail(const ConvertParams& o, const DicomMeta& m, const std::string& reason) {
  auto list = [](const auto& values) {
    std::string out;
    for (const auto& v : values) out += (out.empty() ? "" : ", ") + fmt::format("{}", v);
    return "[" + out + "]";
  };
  if (reason == "filtered.modality") {
    return fmt::format("modality '{}' is not in filter_modality {}", m.modality, list(o.modalities));
  }
  if (reason == "filtered.slice_thickness") {
    if (!std::isfinite(m.slice_thickness)) {
      return "no slice thickness in the header; filter_slice_thickness is " + list(o.thickness);
    }
    return fmt::format("slice thickness {} mm is not in filter_slice_thickness {}", m.slice_thickness,
                       list(o.thickness));
  }
  return "";
}

// The problem text of an input skipped for `counter` (skipped.*, filtered.*),
// with `detail` from FilterDetail when known.
inline std::string SkipMessage(const std::string& counter, const std::string& detail) {
  std::string why = detail;
  if (why.empty()) {
    if (counter == "skipped.no_pixel_data") {
      why = "no pixel data (a DICOMDIR, structured report, RT object or waveform): nothing to convert";
    } else if (counter == "skipped.not_dicom") {
      why = "not a DICOM file";
    } else if (counter == "skipped.empty") {
      why = "nothing to convert";
    }
  }
  return "not converted (" + counter + ")" + (why.empty() ? "" : ": " + why);
}

}  // namespace medpipe
