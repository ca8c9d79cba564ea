// The dataset model: what stages hand each other.
//
// It is COCO (images, annotations, categories) with the per-image fields the
// imaging workflows need: patient id, source, split, image-level labels, free
// attributes (score, status, feedback label, slice thickness ...) and, for
// derived images, their origin. On disk it is plain COCO JSON; the extra
// fields are ignored by tools that do not know them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace medpipe {

struct Category {
  int64_t id = 0;
  std::string name;
  std::string supercategory;
};

struct Annotation {
  int64_t id = 0;
  int64_t image_id = 0;
  int64_t category_id = 0;
  double bbox[4] = {0, 0, 0, 0};  // x, y, width, height in pixels
  double area = 0;
  int iscrowd = 0;
  std::string segmentation;       // raw JSON text, empty when absent
};

// An attribute whose value is a JSON array, object or null, kept as its
// compact JSON text so it survives a read and a write unchanged (a Roboflow
// or CVAT export's per-image lists, a tool's nested metadata).
struct JsonText {
  std::string json;
  auto operator<=>(const JsonText&) const = default;
};

using AttrValue = std::variant<std::string, int64_t, double, bool, JsonText>;

// What an image was derived from, and how. Empty for original images.
struct Origin {
  std::string image;      // file_name of the source image
  std::string transform;  // e.g. "hflip,rotate=7.5"
  bool empty() const { return image.empty() && transform.empty(); }
};

struct Image {
  int64_t id = 0;
  std::string file_name;  // relative to the dataset's directory
  int width = 0;
  int height = 0;
  std::string patient_id;
  std::string source;
  std::string split;      // "train", "valid", "test" or empty
  std::vector<std::string> labels;
  std::map<std::string, AttrValue> attributes;  // ordered: stable output
  Origin origin;
};

struct Dataset {
  std::vector<Category> categories;
  std::vector<Image> images;
  std::vector<Annotation> annotations;

  const Category* FindCategory(const std::string& name) const;
  // Annotation indices per image id.
  std::unordered_map<int64_t, std::vector<size_t>> AnnotationsByImage() const;
  // Appends `a` as an annotation of image `image_id`, numbered next (ids
  // count from 1 in output order, as every stage writes them).
  void AddAnnotation(Annotation a, int64_t image_id);
};

// Renders an attribute for CSV cells and messages (JSON text as written).
std::string AttrToString(const AttrValue& v);

}  // namespace medpipe
