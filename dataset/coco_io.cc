#include "dataset/coco_io.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>

namespace medpipe {

namespace {

using rapidjson::Value;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

size_t LineOfOffset(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
}

std::string Str(const Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd()) return {};
  if (it->value.IsString()) return {it->value.GetString(), it->value.GetStringLength()};
  if (it->value.IsInt64()) return std::to_string(it->value.GetInt64());
  return {};
}

bool Int(const Value& obj, const char* key, int64_t* out) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd()) return false;
  if (it->value.IsInt64()) {
    *out = it->value.GetInt64();
    return true;
  }
  if (it->value.IsDouble()) {
    *out = static_cast<int64_t>(it->value.GetDouble());
    return true;
  }
  return false;
}

double Num(const Value& v) { return v.IsNumber() ? v.GetDouble() : 0.0; }

std::string RawJson(const Value& v) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  v.Accept(w);
  return {buf.GetString(), buf.GetSize()};
}

Status ParseImage(const Value& v, size_t index, Image* img) {
  if (!v.IsObject()) return Status::Invalid("images[" + std::to_string(index) + "] is not an object");
  if (!Int(v, "id", &img->id)) return Status::Invalid("images[" + std::to_string(index) + "] has no numeric id");
  img->file_name = Str(v, "file_name");
  if (img->file_name.empty()) {
    return Status::Invalid("images[" + std::to_string(index) + "] (id " + std::to_string(img->id) +
                           ") has no file_name");
  }
  int64_t n = 0;
  if (Int(v, "width", &n)) img->width = static_cast<int>(n);
  if (Int(v, "height", &n)) img->height = static_cast<int>(n);
  img->patient_id = Str(v, "patient_id");
  img->source = Str(v, "source");
  img->split = CanonicalSplit(Str(v, "split"));
  if (auto it = v.FindMember("labels"); it != v.MemberEnd() && it->value.IsArray()) {
    for (const auto& l : it->value.GetArray()) {
      if (l.IsString()) img->labels.emplace_back(l.GetString(), l.GetStringLength());
    }
  }
  if (auto it = v.FindMember("attributes"); it != v.MemberEnd() && it->value.IsObject()) {
    for (const auto& m : it->value.GetObject()) {
      std::string key(m.name.GetString(), m.name.GetStringLength());
      const Value& a = m.value;
      if (a.IsString()) img->attributes[key] = std::string(a.GetString(), a.GetStringLength());
      else if (a.IsBool()) img->attributes[key] = a.GetBool();
      else if (a.IsInt64()) img->attributes[key] = a.GetInt64();
      else if (a.IsNumber()) img->attributes[key] = a.GetDouble();
      else img->attributes[key] = JsonText{RawJson(a)};  // array, object or null: kept as written
    }
  }
  if (auto it = v.FindMember("origin"); it != v.MemberEnd() && it->value.IsObject()) {
    img->origin.image = Str(it->value, "image");
    img->origin.transform = Str(it->value, "transform");
  }
  return Status::OK();
}

Status ParseAnnotation(const Value& v, size_t index, Annotation* a) {
  std::string where = "annotations[" + std::to_string(index) + "]";
  if (!v.IsObject()) return Status::Invalid(where + " is not an object");
  if (!Int(v, "id", &a->id)) return Status::Invalid(where + " has no numeric id");
  if (!Int(v, "image_id", &a->image_id)) return Status::Invalid(where + " has no image_id");
  if (!Int(v, "category_id", &a->category_id)) return Status::Invalid(where + " has no category_id");
  if (auto it = v.FindMember("bbox"); it != v.MemberEnd()) {
    if (!it->value.IsArray() || it->value.Size() != 4) {
      return Status::Invalid(where + " (id " + std::to_string(a->id) + ") has a bbox that is not [x, y, w, h]");
    }
    for (unsigned i = 0; i < 4; ++i) a->bbox[i] = Num(it->value[i]);
  }
  if (auto it = v.FindMember("area"); it != v.MemberEnd()) a->area = Num(it->value);
  int64_t crowd = 0;
  if (Int(v, "iscrowd", &crowd)) a->iscrowd = static_cast<int>(crowd);
  if (auto it = v.FindMember("segmentation"); it != v.MemberEnd() && !it->value.IsNull()) {
    a->segmentation = RawJson(it->value);
  }
  return Status::OK();
}

void WriteAttr(Writer& w, const AttrValue& v) {
  struct Visitor {
    Writer& w;
    void operator()(const std::string& s) const { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }
    void operator()(int64_t i) const { w.Int64(i); }
    void operator()(double d) const { w.Double(d); }
    void operator()(bool b) const { w.Bool(b); }
    void operator()(const JsonText& j) const {
      const rapidjson::Type type = j.json.empty() || j.json == "null" ? rapidjson::kNullType
                                   : j.json[0] == '['                 ? rapidjson::kArrayType
                                                                      : rapidjson::kObjectType;
      if (j.json.empty()) w.Null();
      else w.RawValue(j.json.data(), j.json.size(), type);
    }
  };
  std::visit(Visitor{w}, v);
}

void Key(Writer& w, const char* k) { w.Key(k); }
void S(Writer& w, const std::string& s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }

}  // namespace

Result<Dataset> ParseCoco(std::string_view text, const std::string& origin) {
  // In-situ parsing of a copy keeps a million-image file to one allocation
  // pass; the original stays intact because in-situ parsing rewrites escapes
  // (a "\n" becomes a newline byte), which would skew error line numbers.
  std::string buffer(text);
  rapidjson::Document doc;
  doc.ParseInsitu<rapidjson::kParseStopWhenDoneFlag>(buffer.data());
  if (doc.HasParseError()) {
    return Status::Invalid(origin + ": line " + std::to_string(LineOfOffset(text, doc.GetErrorOffset())) +
                           ": " + rapidjson::GetParseError_En(doc.GetParseError()));
  }
  if (!doc.IsObject()) return Status::Invalid(origin + ": not a COCO object");
  Dataset ds;
  if (auto it = doc.FindMember("categories"); it != doc.MemberEnd() && it->value.IsArray()) {
    for (const auto& c : it->value.GetArray()) {
      Category cat;
      if (!c.IsObject() || !Int(c, "id", &cat.id)) {
        return Status::Invalid(origin + ": a category has no numeric id");
      }
      cat.name = Str(c, "name");
      cat.supercategory = Str(c, "supercategory");
      ds.categories.push_back(std::move(cat));
    }
  }
  if (auto it = doc.FindMember("images"); it != doc.MemberEnd() && it->value.IsArray()) {
    ds.images.resize(it->value.Size());
    size_t i = 0;
    for (const auto& v : it->value.GetArray()) {
      MEDPIPE_RETURN_IF_ERROR(ParseImage(v, i, &ds.images[i]).WithContext(origin));
      ++i;
    }
  } else {
    return Status::Invalid(origin + ": no \"images\" array");
  }
  if (auto it = doc.FindMember("annotations"); it != doc.MemberEnd() && it->value.IsArray()) {
    ds.annotations.resize(it->value.Size());
    size_t i = 0;
    for (const auto& v : it->value.GetArray()) {
      MEDPIPE_RETURN_IF_ERROR(ParseAnnotation(v, i, &ds.annotations[i]).WithContext(origin));
      ++i;
    }
  }
  return ds;
}

Result<Dataset> ReadCoco(const fs::path& path) {
  MEDPIPE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseCoco(text, path.string());
}

std::string SerializeCoco(const Dataset& ds) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  Key(w, "images");
  w.StartArray();
  for (const auto& img : ds.images) {
    w.StartObject();
    Key(w, "id"), w.Int64(img.id);
    Key(w, "file_name"), S(w, img.file_name);
    Key(w, "width"), w.Int(img.width);
    Key(w, "height"), w.Int(img.height);
    if (!img.patient_id.empty()) Key(w, "patient_id"), S(w, img.patient_id);
    if (!img.source.empty()) Key(w, "source"), S(w, img.source);
    if (!img.split.empty()) Key(w, "split"), S(w, img.split);
    if (!img.labels.empty()) {
      Key(w, "labels");
      w.StartArray();
      for (const auto& l : img.labels) S(w, l);
      w.EndArray();
    }
    if (!img.attributes.empty()) {
      Key(w, "attributes");
      w.StartObject();
      for (const auto& [k, v] : img.attributes) {
        S(w, k);
        WriteAttr(w, v);
      }
      w.EndObject();
    }
    if (!img.origin.empty()) {
      Key(w, "origin");
      w.StartObject();
      Key(w, "image"), S(w, img.origin.image);
      Key(w, "transform"), S(w, img.origin.transform);
      w.EndObject();
    }
    w.EndObject();
  }
  w.EndArray();
  Key(w, "annotations");
  w.StartArray();
  for (const auto& a : ds.annotations) {
    w.StartObject();
    Key(w, "id"), w.Int64(a.id);
    Key(w, "image_id"), w.Int64(a.image_id);
    Key(w, "category_id"), w.Int64(a.category_id);
    Key(w, "bbox");
    w.StartArray();
    for (double d : a.bbox) w.Double(d);
    w.EndArray();
    Key(w, "area"), w.Double(a.area);
    Key(w, "iscrowd"), w.Int(a.iscrowd);
    if (!a.segmentation.empty()) {
      Key(w, "segmentation");
      w.RawValue(a.segmentation.data(), a.segmentation.size(), rapidjson::kArrayType);
    }
    w.EndObject();
  }
  w.EndArray();
  Key(w, "categories");
  w.StartArray();
  for (const auto& c : ds.categories) {
    w.StartObject();
    Key(w, "id"), w.Int64(c.id);
    Key(w, "name"), S(w, c.name);
    Key(w, "supercategory"), S(w, c.supercategory);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  std::string out(buf.GetString(), buf.GetSize());
  out.push_back('\n');
  return out;
}

namespace {
bool IsAlnum(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); });
}
}  // namespace

std::string RoboflowStem(std::string_view name) {
  size_t rf = name.rfind(".rf.");
  if (rf == std::string_view::npos) return "";
  std::string_view before = name.substr(0, rf), after = name.substr(rf + 4);
  size_t us = before.rfind('_'), dot = after.find('.');
  if (us == std::string_view::npos || us == 0 || dot == std::string_view::npos) return "";
  if (!IsAlnum(before.substr(us + 1)) || !IsAlnum(after.substr(0, dot)) || !IsAlnum(after.substr(dot + 1))) return "";
  return std::string(before.substr(0, us));
}

std::string CanonicalSplit(std::string_view split) {
  if (split == "val" || split == "validation") return "valid";
  return std::string(split);
}

bool IsRoboflowSplit(std::string_view split) {
  return std::find(std::begin(kSplitNames), std::end(kSplitNames), split) != std::end(kSplitNames);
}

Result<Dataset> ReadRoboflow(const fs::path& dir) {
  Dataset out;
  bool any = false;
  int64_t next_image = 1, next_ann = 1;
  for (std::string_view folder : {"train", "valid", "val", "test"}) {
    fs::path json = dir / folder / "_annotations.coco.json";
    if (!StatPath(json).exists) continue;
    MEDPIPE_ASSIGN_OR_RETURN(Dataset part, ReadCoco(json));
    std::string split = CanonicalSplit(folder);
    if (!any) {
      out.categories = part.categories;
    } else if (part.categories.size() != out.categories.size()) {
      return Status::Invalid(json.string() + ": categories differ from the other splits'");
    }
    any = true;
    std::unordered_map<int64_t, int64_t> id_map;
    for (auto& img : part.images) {
      id_map[img.id] = next_image;
      img.id = next_image++;
      img.file_name = std::string(folder) + "/" + img.file_name;
      img.split = split;
      out.images.push_back(std::move(img));
    }
    for (auto& a : part.annotations) {
      auto it = id_map.find(a.image_id);
      if (it == id_map.end()) {
        return Status::Invalid(json.string() + ": annotation " + std::to_string(a.id) +
                               " refers to image " + std::to_string(a.image_id) + ", which is not listed");
      }
      a.image_id = it->second;
      a.id = next_ann++;
      out.annotations.push_back(std::move(a));
    }
  }
  if (!any) {
    return Status::NotFound(dir.string() + ": no train/, valid/, val/ or test/ folder with _annotations.coco.json");
  }
  return out;
}

}  // namespace medpipe
