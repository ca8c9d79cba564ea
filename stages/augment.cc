// augment: `copies` extra versions of every image whose split is listed
// (train by default), with random geometric and intensity transforms
// (stages/augment_transform.h); boxes follow the image, are clipped, and are
// dropped below `min_visibility`. Images of other splits (valid, test) are
// passed through untouched.
//
// Every image is one item of ctx.RunItems: the original becomes a relative
// symlink to the input's file, and an augmented image is decoded once
// (OpenCV), transformed `copies` times and each copy written beside it as
// `<stem>_aug<k>.<ext>` in the input's format (a JPEG stays JPEG at
// jpeg_quality, a PNG goes through the one PNG writer, image/png.h). A copy
// whose draw leaves its pixels unchanged is drawn again (counted as
// `redraws`). The item's payload is only the decoded size and the redraws;
// boxes and the dataset are rebuilt from the same deterministic plans after
// all items are through, so a resumed item and a redone one give the same
// dataset, and changing min_visibility redoes no pixels.
#include <fmt/format.h>
#include <sys/stat.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <unordered_set>

#include "dicom/encode.h"
#include "image/png.h"
#include "stages/augment_transform.h"
#include "stages/convert_params.h"
#include "stages/registry.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {
namespace {

// "unsplit" in `splits` selects images that have no split.
constexpr const char* kUnsplit = "unsplit";

struct AugmentOptions {
  int copies = 3;
  std::set<std::string> splits;
  double min_visibility = 0.3;
  AugmentTransforms transforms;
  PngOptions png;
  int jpeg_quality = 95;
  std::string item_params;  // what an augmented item's files depend on, for its fingerprint
};

// "images/a.png", 2 -> "images/a_aug2.png"
std::string AugName(const std::string& file_name, int k) {
  fs::path p(file_name);
  std::string name = p.stem().string() + "_aug" + std::to_string(k) + p.extension().string();
  return p.has_parent_path() ? (p.parent_path() / name).generic_string() : name;
}

std::string LowerExt(const std::string& file_name) {
  std::string ext = fs::path(file_name).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

// Encodes `image` (OpenCV's BGR order) in the format named by `ext`: PNG
// through the one PNG writer (image/png.h) with the stage's settings, JPEG through libjpeg-turbo as
// convert does, anything else through OpenCV's encoder for that extension.
Result<std::string> Encode(const cv::Mat& image, const std::string& ext, const AugmentOptions& o,
                           cv::Mat* scratch) {
  cv::Mat rgb = image;
  if (ext == ".png" || ext == ".jpg" || ext == ".jpeg") {
    if (image.channels() == 3) {
      cv::cvtColor(image, *scratch, cv::COLOR_BGR2RGB);
      rgb = *scratch;
    }
    if (!rgb.isContinuous()) rgb = rgb.clone();
  }
  if (ext == ".png") {
    return EncodePng(rgb.data, rgb.cols, rgb.rows, rgb.channels(), rgb.depth() == CV_16U ? 16 : 8, o.png);
  }
  if (ext == ".jpg" || ext == ".jpeg") {
    if (rgb.depth() != CV_8U) return Status::Invalid("a 16-bit image cannot be written as JPEG");
    PixelBuffer buf;
    buf.width = rgb.cols, buf.height = rgb.rows, buf.channels = rgb.channels(), buf.bit_depth = 8;
    buf.bytes.assign(rgb.data, rgb.data + rgb.total() * rgb.elemSize());
    return EncodeJpeg(buf, o.jpeg_quality);
  }
  std::vector<uint8_t> bytes;
  if (!cv::imencode(ext, image, bytes)) return Status::Invalid("OpenCV cannot encode '" + ext + "'");
  return std::string(bytes.begin(), bytes.end());
}

// At most this many redraws per copy (see AugmentStage::Work).
constexpr int kMaxRedraws = 32;

bool SamePixels(const cv::Mat& a, const cv::Mat& b) {
  if (a.data == b.data) return true;
  if (a.size() != b.size() || a.type() != b.type()) return false;
  const size_t row = a.cols * a.elemSize();
  for (int y = 0; y < a.rows; ++y) {
    if (std::memcmp(a.ptr(y), b.ptr(y), row) != 0) return false;
  }
  return true;
}

// "640 480 0 2=" -> {"640", "480", "0", "2="}
std::vector<std::string> SplitFields(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(' ', i);
    if (j == std::string::npos) j = s.size();
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// Reads a whole file into `out`, reusing its capacity.
Status ReadInto(const fs::path& path, std::string* out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Status::Invalid(fmt::format("cannot open: {}", std::strerror(errno)));
  out->clear();
  char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) out->append(chunk, n);
  const bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) return Status::Invalid("read error");
  if (out->empty()) return Status::Invalid("empty file");
  return Status::OK();
}

struct Item {
  const Image* image;
  bool augment;
  fs::path target;  // the input's file
};

class AugmentStage : public Stage {
 public:
  explicit AugmentStage(AugmentOptions o) : o_(std::move(o)) {}

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset in, ctx.ReadInputDataset(0));
    const fs::path in_dir = ctx.inputs()[0].dir;

    std::vector<Item> items;
    std::unordered_set<std::string> names;
    for (const auto& img : in.images) names.insert(img.file_name);
    for (const auto& img : in.images) {
      if (!IsContainedRelativePath(img.file_name)) {
        ctx.Problem(img.file_name, "file_name leaves the dataset folder; image skipped");
        ctx.Count("unsafe_file_names");
        continue;
      }
      const bool augment = o_.splits.count(img.split.empty() ? kUnsplit : img.split) > 0;
      if (augment) {
        for (int k = 1; k <= o_.copies; ++k) {
          if (!names.insert(AugName(img.file_name, k)).second) {
            return Status::Failed(fmt::format("augmented name '{}' is taken by another image of input {}",
                                              AugName(img.file_name, k), ctx.inputs()[0].id));
          }
        }
      }
      items.push_back(Item{&img, augment, in_dir / img.file_name});
    }

    // An item's fingerprint: the source (path, and size and mtime of the
    // file finally reached, so pixels replaced in place are redone), the seed
    // and, for augmented items, every param their files depend on.
    std::vector<ItemTask> tasks;
    tasks.reserve(items.size());
    for (const Item& it : items) {
      struct stat st {};
      std::string state = ::stat(it.target.c_str(), &st) == 0
                              ? fmt::format("{}:{}.{}", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec)
                              : "missing";
      Hasher h;
      h.Field("augment/2").Field(it.target.string()).Field(state);
      if (it.augment) h.Field(std::to_string(ctx.seed())).Field(o_.item_params);
      tasks.push_back(ItemTask{it.image->file_name, h.HexDigest()});
    }

    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ItemResult> results,
                             ctx.RunItems(tasks, [&](size_t i, ItemOutput& out) -> Result<std::string> {
                               return Work(ctx, items[i], out);
                             }));
    return WriteDataset(ctx, in, items, results);
  }

 private:
  // Links the original and writes the copies. Payload: "" for a link only,
  // "W H R1 .. Rk" for an augmented image (the decoded size, then each
  // copy's redraw count, with "=" appended when the copy still equals its
  // source after kMaxRedraws), "E<reason>" when its pixels could not be
  // decoded (the original is kept, without copies).
  Result<std::string> Work(const StageContext& ctx, const Item& it, ItemOutput& out) const {
    const std::string& name = it.image->file_name;
    const fs::path link = ctx.dir() / name;
    MEDPIPE_RETURN_IF_ERROR(out.Symlink(name, it.target.lexically_relative(link.parent_path())));
    if (!it.augment) return std::string();

    // Per-thread buffers, reused from item to item (see Workspace).
    thread_local std::string file;
    thread_local cv::Mat decoded, rgb;
    thread_local Workspace ws;
    Status read = ReadInto(it.target, &file);
    if (!read.ok()) return "E" + read.message();
    cv::Mat bytes(1, static_cast<int>(file.size()), CV_8U, file.data());
    cv::imdecode(bytes, cv::IMREAD_UNCHANGED, &decoded);
    if (decoded.empty()) return std::string("Ecannot decode the image");
    cv::Mat image = decoded;
    if (image.depth() != CV_8U && image.depth() != CV_16U) {
      return std::string("Eonly 8- and 16-bit images can be augmented");
    }
    if (image.channels() == 4) cv::cvtColor(image, image, cv::COLOR_BGRA2BGR);  // alpha is not kept
    if (image.channels() != 1 && image.channels() != 3) {
      return fmt::format("E{} channels; only grey and colour images can be augmented", image.channels());
    }
    const std::string ext = LowerExt(name);
    std::string payload = fmt::format("{} {}", image.cols, image.rows);
    for (int k = 1; k <= o_.copies; ++k) {
      // A draw can come out as the identity (no transform drawn, or one too
      // small to move a pixel): draw again until the copy differs from its
      // source, at most kMaxRedraws times (a blank image stays blank under
      // most transforms).
      int redraw = 0;
      bool same = true;
      const cv::Mat* copy = &image;
      for (; redraw <= kMaxRedraws; ++redraw) {
        copy = &ApplyPlan(SamplePlan(o_.transforms, ctx.seed(), name, k, redraw), image, &ws);
        same = SamePixels(*copy, image);
        if (!same || redraw == kMaxRedraws) break;
      }
      MEDPIPE_ASSIGN_OR_RETURN(std::string encoded, Encode(*copy, ext, o_, &rgb));
      MEDPIPE_RETURN_IF_ERROR(out.WriteFile(AugName(name, k), encoded));
      payload += fmt::format(" {}{}", redraw, same ? "=" : "");
    }
    return payload;
  }

  Status WriteDataset(StageContext& ctx, const Dataset& in, const std::vector<Item>& items,
                      const std::vector<ItemResult>& results) const {
    auto by_image = in.AnnotationsByImage();
    Dataset out;
    out.categories = in.categories;
    auto add_image = [&](Image img) {
      img.id = static_cast<int64_t>(out.images.size()) + 1;
      out.images.push_back(std::move(img));
      return out.images.back().id;
    };
    static const std::vector<size_t> kNone;

    for (size_t i = 0; i < items.size(); ++i) {
      if (!results[i].ok) continue;  // recorded as a problem by RunItems
      const Image& src = *items[i].image;
      auto found = by_image.find(src.id);
      const std::vector<size_t>& anns = found == by_image.end() ? kNone : found->second;
      const int64_t id = add_image(src);
      for (size_t k : anns) out.AddAnnotation(in.annotations[k], id);
      if (!items[i].augment) continue;

      const std::string& payload = results[i].payload;
      int width = 0, height = 0;
      if (!payload.empty() && payload[0] == 'E') {
        ctx.Problem(src.file_name, payload.substr(1) + "; kept without augmented copies");
        ctx.Count("not_augmented");
        continue;
      }
      std::vector<std::string> fields = SplitFields(payload);
      if (fields.size() != static_cast<size_t>(o_.copies) + 2 || std::sscanf(fields[0].c_str(), "%d", &width) != 1 ||
          std::sscanf(fields[1].c_str(), "%d", &height) != 1) {
        return Status::Failed("item " + src.file_name + ": unreadable journal payload '" + payload + "'");
      }
      for (int k = 1; k <= o_.copies; ++k) {
        const std::string& r = fields[static_cast<size_t>(k) + 1];
        const int redraw = std::atoi(r.c_str());
        ctx.Count("redraws", redraw);
        if (r.back() == '=') {
          ctx.Problem(AugName(src.file_name, k), fmt::format("equals its source after {} redraws", redraw));
          ctx.Count("copies_equal_to_source");
        }
        const CopyPlan plan = SamplePlan(o_.transforms, ctx.seed(), src.file_name, k, redraw);
        const cv::Matx23d m = BoxAffine(plan, width, height);
        Image copy = src;
        copy.file_name = AugName(src.file_name, k);
        copy.width = width, copy.height = height;
        copy.origin = Origin{src.file_name, plan.Describe()};
        const int64_t copy_id = add_image(std::move(copy));
        ctx.Count("augmented");
        for (size_t a : anns) {
          const Annotation& old = in.annotations[a];
          BoxResult r = TransformBox(m, old.bbox, width, height, o_.min_visibility);
          if (!r.kept) {
            ctx.Count("boxes_dropped");
            continue;
          }
          Annotation na = old;
          std::memcpy(na.bbox, r.bbox, sizeof na.bbox);
          na.area = r.bbox[2] * r.bbox[3];
          // Polygons go through the same map as the box, clipped to the
          // image; an RLE mask (or anything not a polygon list) cannot, so
          // a geometric copy leaves it out and counts it.
          if (!na.segmentation.empty() && plan.geometric()) {
            SegmentationResult seg = TransformSegmentation(m, na.segmentation, width, height);
            if (seg.polygons) ctx.Count("segmentations_transformed");
            if (seg.json.empty()) ctx.Count("segmentations_dropped");
            na.segmentation = std::move(seg.json);
          }
          out.AddAnnotation(std::move(na), copy_id);
        }
      }
    }
    ctx.Count("images", static_cast<int64_t>(out.images.size()));
    ctx.Count("annotations", static_cast<int64_t>(out.annotations.size()));
    return ctx.WriteDataset(out);
  }

  AugmentOptions o_;
};

// Reads one transform's object, e.g. {p: 0.5, degrees: 10}: keys left out
// keep their defaults. `key` is the range key; when `symmetric`, its value
// is one number x meaning [-x, x], else a list [lo, hi].
Status ParseRange(const Params& params, const std::string& name, const std::string& key, bool symmetric,
                  RandomRange* r) {
  const YAML::Node node = params.GetObject(name);
  if (!node.IsMap()) {
    return params.Error(name, fmt::format("expected a mapping such as {{p: 0.5, {}: {}}}", key,
                                          symmetric ? "10" : "[0.9, 1.1]"));
  }
  try {
    for (const auto& kv : node) {
      const std::string k = kv.first.as<std::string>();
      if (k == "p") {
        r->p = kv.second.as<double>();
      } else if (k == key && symmetric) {
        double x = kv.second.as<double>();
        if (x < 0) return params.Error(name, key + " must not be negative");
        r->lo = -x, r->hi = x;
      } else if (k == key) {
        if (!kv.second.IsSequence() || kv.second.size() != 2) {
          return params.Error(name, key + " must be a list [low, high]");
        }
        r->lo = kv.second[0].as<double>(), r->hi = kv.second[1].as<double>();
      } else {
        return params.Error(name, fmt::format("unknown key '{}' (expected p and {})", k, key));
      }
    }
  } catch (const YAML::Exception&) {
    return params.Error(name, "values must be numbers");
  }
  if (!(r->p >= 0 && r->p <= 1)) return params.Error(name, "p must be within [0, 1]");
  if (!(r->lo <= r->hi)) return params.Error(name, key + ": low must not exceed high");
  return Status::OK();
}

Result<std::unique_ptr<Stage>> MakeAugment(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  AugmentOptions o;
  o.copies = static_cast<int>(p.GetInt("copies"));
  if (o.copies < 1 || o.copies > 100) return p.Error("copies", "must be within 1..100");
  for (const auto& s : p.GetStringList("splits")) o.splits.insert(s);
  if (o.splits.empty()) return p.Error("splits", "name at least one split to augment");
  o.min_visibility = p.GetFloat("min_visibility");
  if (!(o.min_visibility >= 0 && o.min_visibility <= 1)) return p.Error("min_visibility", "must be within [0, 1]");

  AugmentTransforms& t = o.transforms;
  t.hflip = p.GetFloat("hflip");
  if (!(t.hflip >= 0 && t.hflip <= 1)) return p.Error("hflip", "is a probability, within [0, 1]");
  MEDPIPE_RETURN_IF_ERROR(ParseRange(p, "rotate", "degrees", true, &t.rotate));
  if (t.rotate.hi > 180) return p.Error("rotate", "degrees must be within [0, 180]");
  MEDPIPE_RETURN_IF_ERROR(ParseRange(p, "scale", "range", false, &t.scale));
  if (!(t.scale.lo > 0 && t.scale.hi <= 10)) return p.Error("scale", "range must be within (0, 10]");
  MEDPIPE_RETURN_IF_ERROR(ParseRange(p, "translate", "fraction", true, &t.translate));
  if (!(t.translate.hi < 1)) return p.Error("translate", "fraction must be below 1");
  MEDPIPE_RETURN_IF_ERROR(ParseRange(p, "brightness", "limit", true, &t.brightness));
  if (!(t.brightness.hi <= 1)) return p.Error("brightness", "limit must be within [0, 1]");
  MEDPIPE_RETURN_IF_ERROR(ParseRange(p, "contrast", "range", false, &t.contrast));
  if (!(t.contrast.lo >= 0 && t.contrast.hi <= 10)) return p.Error("contrast", "range must be within [0, 10]");
  MEDPIPE_RETURN_IF_ERROR(ParseRange(p, "gamma", "range", false, &t.gamma));
  if (!(t.gamma.lo > 0 && t.gamma.hi <= 10)) return p.Error("gamma", "range must be within (0, 10]");
  MEDPIPE_RETURN_IF_ERROR(ParseRange(p, "noise", "sigma", false, &t.noise));
  if (!(t.noise.lo >= 0 && t.noise.hi <= 1)) return p.Error("noise", "sigma must be within [0, 1]");
  MEDPIPE_RETURN_IF_ERROR(ParseRange(p, "blur", "sigma", false, &t.blur));
  if (!(t.blur.lo >= 0 && t.blur.hi <= 50)) return p.Error("blur", "sigma must be within [0, 50] pixels");
  if (!CanTransform(t)) {
    return p.Error("hflip", "no transform can apply (every probability is 0 or every range neutral): "
                            "copies would equal their sources");
  }

  o.png.compressor = *ParsePngCompressor(p.GetString("png_compression"));  // the spec's choices
  o.png.zlib_level = static_cast<int>(p.GetInt("png_level"));
  if (o.png.zlib_level < 0 || o.png.zlib_level > 9) return p.Error("png_level", "must be within 0..9");
  o.png.zlib_strategy = 0;  // the zlib back end writes what augment wrote before (libpng, default strategy)
  Result<int> filter = ParsePngFilterList(p.GetString("png_filter"));
  if (!filter.ok()) return p.Error("png_filter", filter.status().message());
  o.png.filters = *filter;
  o.jpeg_quality = static_cast<int>(p.GetInt("jpeg_quality"));
  if (o.jpeg_quality < 1 || o.jpeg_quality > 100) return p.Error("jpeg_quality", "must be within 1..100");

  // Files depend on every param but these two (which only choose items and
  // boxes), so changing them redoes no pixels.
  std::map<std::string, std::string> canonical = p.Canonical();
  canonical.erase("min_visibility");
  canonical.erase("splits");
  for (const auto& [k, v] : canonical) o.item_params += k + "=" + v + "\n";
  return std::unique_ptr<Stage>(new AugmentStage(std::move(o)));
}

}  // namespace

void RegisterAugment(Registry* registry) {
  KindSpec spec;
  spec.name = "augment";
  spec.cluster_items = true;  // a cluster run sends its items to array tasks
  spec.version = 1;
  spec.help =
      "extra randomly transformed copies of the images of chosen splits (train), boxes and polygon segmentations "
      "transformed with them; other splits pass through as links";
  spec.min_inputs = 1;
  spec.max_inputs = 1;
  spec.params = {
      {"copies", ParamType::kInt, "3", false, "augmented copies per image, named <stem>_aug<k>.<ext>", {}},
      {"splits", ParamType::kStringList, "[train]", false,
       "splits to augment ('unsplit': images without one); others are passed through", {}},
      {"min_visibility", ParamType::kFloat, "0.3", false,
       "drop a box whose part inside the image is below this fraction of its transformed area", {}},
      {"hflip", ParamType::kFloat, "0.5", false, "probability of a horizontal flip", {}},
      {"rotate", ParamType::kObject, "{p: 0.5, degrees: 10}", false,
       "rotation about the centre, uniform in [-degrees, degrees], counterclockwise positive", {}},
      {"scale", ParamType::kObject, "{p: 0.5, range: [0.9, 1.1]}", false, "zoom about the centre", {}},
      {"translate", ParamType::kObject, "{p: 0.5, fraction: 0.05}", false,
       "shift per axis, uniform in [-fraction, fraction] of the width / height", {}},
      {"brightness", ParamType::kObject, "{p: 0.5, limit: 0.1}", false,
       "add uniform in [-limit, limit] of the full range", {}},
      {"contrast", ParamType::kObject, "{p: 0.5, range: [0.9, 1.1]}", false, "factor about mid-grey", {}},
      {"gamma", ParamType::kObject, "{p: 0.3, range: [0.8, 1.2]}", false, "out = in^gamma on [0, 1]", {}},
      {"noise", ParamType::kObject, "{p: 0.2, sigma: [0.005, 0.02]}", false,
       "additive Gaussian noise, sigma a fraction of the full range", {}},
      {"blur", ParamType::kObject, "{p: 0.2, sigma: [0.5, 1.0]}", false, "Gaussian blur, sigma in pixels", {}},
      {"png_compression", ParamType::kString, "small", false,
       "PNG deflate back end for PNG copies: small (libdeflate), zlib (as libpng), fast (ISA-L: "
       "about 3x small's speed, but its bytes can differ from run to run)",
       {"fast", "small", "zlib"}},
      {"png_level", ParamType::kInt, "1", false, "png_compression zlib only: level 0..9 for PNG copies", {}},
      {"png_filter", ParamType::kString, "none", false,
       "PNG filters for PNG copies, comma-separated: none, sub, up, avg, paeth, all", {}},
      {"jpeg_quality", ParamType::kInt, "95", false, "1..100 for JPEG copies", {}},
  };
  registry->Add(StageKind{std::move(spec), MakeAugment});
}

}  // namespace medpipe
