// validate: the checks users run after every build of a dataset, as a stage
// that fails (and so blocks everything downstream) when a fatal check fails.
//
// Input 0 is the dataset checked; further inputs are other datasets whose
// images must not reappear in it (e.g. a held-out test set). Checks:
//   leakage     no patient id in two splits; no derived image (origin) in
//               another split than the image it was derived from; no
//               Roboflow upload (the `<stem>_<ext>.rf.<hash>` copies of one
//               source image) in two splits, whatever patient ids or groups
//               an upstream split was told to use
//   boxes       every box finite, with positive width and height, inside its
//               image up to `box_tolerance` pixels
//   files       every file name safe, the file present and decodable (header
//               probe, or `decode: full`), its size the one the dataset says
//   duplicates  no file content (bytes) in two splits, nor in input 0 and
//               another input
//   categories  every annotation's category defined; category ids and names
//               unique
//   ids         image and annotation ids unique; every annotation's image_id
//               an image
// Every check is written to validation.json (pass/fail, the failure count and
// the first `max_listed` failures); every failure is also a problem in
// report.json. `fail_on` names the checks that fail the stage.
//
// A warning, not a check: image files that the dataset does not list, lying
// in a folder whose listed images are all of one split, with the bytes of an
// image of another split (the wrist export's train/ holds byte copies of its
// valid and test images): a trainer that reads the folder sees them. Each is
// a problem and counted in unlisted_copies_of_other_splits.
//
// File contents are probed and hashed through ctx.RunItems, one item per file,
// so a killed or failed validation resumes without re-reading unchanged
// files. dataset.json passes input 0 through, its files linked (LinkImages),
// so the stage can sit in the middle of a pipeline.
#include <fmt/format.h>
#include <jpeglib.h>
#include <png.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <cmath>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "dataset/coco_io.h"
#include "dataset/image_io.h"
#include "stages/link_images.h"
#include "stages/patient_groups.h"
#include "stages/registry.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {
namespace {

enum Check { kLeakage, kBoxes, kFiles, kDuplicates, kCategories, kIds, kNumChecks };
constexpr const char* kCheckNames[kNumChecks] = {"leakage", "boxes", "files", "duplicates", "categories", "ids"};

struct ValidateOptions {
  double box_tolerance = 0.5;
  bool full_decode = false;
  std::array<bool, kNumChecks> fatal{};
  int64_t max_listed = 20;
  std::optional<std::regex> patient_regex;  // patient_pattern: leakage by the patient the file name carries
};

// ---- Full decoding (decode: full) ------------------------------------------

std::string DecodePngFully(const std::string& bytes) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size())) {
    return std::string("corrupt PNG: ") + img.message;
  }
  std::vector<png_byte> pixels(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, pixels.data(), 0, nullptr)) {
    std::string message = img.message;
    png_image_free(&img);
    return "corrupt PNG: " + message;
  }
  return "";
}

// libjpeg reports errors by longjmp and recoverable damage (a truncated file,
// a bad Huffman code) as warnings while it fills in gray; both count as
// undecodable here. DecodeJpegInto holds only trivially destructible locals,
// so the jump skips no destructor.
struct JpegDecode {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char error[JMSG_LENGTH_MAX] = {0};
  bool damaged = false;
};

void JpegErrorExit(j_common_ptr cinfo) {
  auto* d = reinterpret_cast<JpegDecode*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, d->error);
  longjmp(d->jump, 1);
}

void JpegEmit(j_common_ptr cinfo, int level) {
  auto* d = reinterpret_cast<JpegDecode*>(cinfo->err);
  if (level < 0 && !d->damaged) {
    d->damaged = true;
    (*cinfo->err->format_message)(cinfo, d->error);
  }
}

bool DecodeJpegInto(const std::string& bytes, JpegDecode* d, jpeg_decompress_struct* cinfo) {
  cinfo->err = jpeg_std_error(&d->mgr);
  d->mgr.error_exit = JpegErrorExit;
  d->mgr.emit_message = JpegEmit;
  if (setjmp(d->jump)) {
    jpeg_destroy_decompress(cinfo);
    return false;
  }
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  jpeg_read_header(cinfo, TRUE);
  jpeg_start_decompress(cinfo);
  JSAMPARRAY row = (*cinfo->mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(cinfo), JPOOL_IMAGE,
                                                cinfo->output_width * cinfo->output_components, 1);
  while (cinfo->output_scanline < cinfo->output_height) jpeg_read_scanlines(cinfo, row, 1);
  jpeg_finish_decompress(cinfo);
  jpeg_destroy_decompress(cinfo);
  return !d->damaged;
}

std::string DecodeFully(const std::string& format, const std::string& bytes) {
  if (format == "png") return DecodePngFully(bytes);
  JpegDecode d;
  jpeg_decompress_struct cinfo;
  return DecodeJpegInto(bytes, &d, &cinfo) ? "" : std::string("corrupt JPEG: ") + d.error;
}

// ---- Per-file item ---------------------------------------------------------

// Payload of a file item: "ok\t<content hash>\t<width>\t<height>" or
// "bad\t<reason>". A bad file is a finding of the files check, not an item
// failure: only the checks decide what is reported.
std::string ProbeFile(const fs::path& path, bool full_decode) {
  Result<ImageHeader> h = ProbeImage(path);
  if (!h.ok()) {
    std::string m = h.status().message();
    // ProbeImage prefixes the path; the item already names the file.
    if (m.rfind(path.string() + ": ", 0) == 0) m = m.substr(path.string().size() + 2);
    return "bad\t" + m;
  }
  Result<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return "bad\tcannot read: " + bytes.status().message();
  if (full_decode) {
    if (std::string e = DecodeFully(h->format, *bytes); !e.empty()) return "bad\t" + e;
  }
  return fmt::format("ok\t{}\t{}\t{}", HashBytes(*bytes), h->width, h->height);
}

// What a file item's result depends on: the file reached (symlinks followed),
// its size and mtime, and the decode mode.
std::string FileFingerprint(const fs::path& path, bool full_decode) {
  struct stat st;
  std::string state = ::stat(path.c_str(), &st) == 0
                          ? fmt::format("{}:{}.{}", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec)
                          : "missing";
  return Hasher().Field(path.string()).Field(state).Field(full_decode ? "full" : "header").HexDigest();
}

struct FileInfo {
  bool ok = false;
  std::string reason;  // when !ok
  std::string hash;
  int width = 0, height = 0;
};

FileInfo ParsePayload(const std::string& payload) {
  FileInfo f;
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t tab; (tab = payload.find('\t', start)) != std::string::npos; start = tab + 1) {
    parts.push_back(payload.substr(start, tab - start));
  }
  parts.push_back(payload.substr(start));
  if (parts.size() == 4 && parts[0] == "ok") {
    f.ok = true;
    f.hash = parts[1];
    f.width = std::atoi(parts[2].c_str());
    f.height = std::atoi(parts[3].c_str());
  } else {
    f.reason = parts.size() >= 2 ? payload.substr(payload.find('\t') + 1) : payload;
  }
  return f;
}

// ---- The checks -------------------------------------------------------------

struct Findings {
  struct One {
    int64_t failures = 0;
    std::vector<std::string> items;  // "<item>: <reason>", in discovery order
  };
  std::array<One, kNumChecks> checks;
  StageContext* ctx = nullptr;

  void Fail(Check c, const std::string& item, const std::string& reason) {
    checks[c].failures++;
    checks[c].items.push_back(item + ": " + reason);
    ctx->Problem(item, std::string(kCheckNames[c]) + ": " + reason);
  }
};

std::string Num(double v) { return fmt::format("{:g}", v); }

// Roboflow copies of one upload in two splits. A group whose images all
// carry one patient id is left to the patient check, which reports it.
void CheckRoboflowLeakage(const Dataset& ds, Findings& f) {
  struct Group {
    std::map<std::string, int64_t> splits;
    std::set<std::string> patients;
    std::string first;
  };
  std::map<std::string, Group> groups;  // stem (with any merge prefix) -> group
  for (const auto& img : ds.images) {
    if (img.split.empty()) continue;
    std::string stem = RoboflowStem(fs::path(img.file_name).filename().string());
    if (stem.empty()) continue;
    Group& g = groups[fs::path(img.file_name).parent_path().string() + "/" + stem];
    if (g.first.empty()) g.first = img.file_name;
    g.splits[img.split]++;
    g.patients.insert(img.patient_id);
  }
  for (const auto& [stem, g] : groups) {
    if (g.splits.size() < 2) continue;
    if (g.patients.size() == 1 && !g.patients.begin()->empty()) continue;
    std::vector<std::string> parts;
    for (const auto& [split, n] : g.splits) parts.push_back(fmt::format("{} ({} image{})", split, n, n == 1 ? "" : "s"));
    f.Fail(kLeakage, "Roboflow upload " + stem,
           fmt::format("copies of one source image (like {}) in {}", g.first, Join(parts, ", ")));
  }
}

// Patient ids in several splits; with a pattern, also the patients the file
// names carry, which a patient id set from a Roboflow group can hide.
void CheckLeakage(const Dataset& ds, const std::optional<std::regex>& pattern, Findings& f,
                  std::map<std::string, int64_t>& notes) {
  if (pattern) {
    std::map<std::string, std::map<std::string, int64_t>> by_name;
    for (const auto& img : ds.images) {
      if (img.split.empty()) continue;
      std::string id = PatientFromName(img.file_name, *pattern);
      if (id.empty()) {
        notes["images_not_matching_patient_pattern"]++;
        continue;
      }
      by_name[id][img.split]++;
    }
    for (const auto& [patient, splits] : by_name) {
      if (splits.size() < 2) continue;
      std::vector<std::string> parts;
      for (const auto& [split, n] : splits) parts.push_back(fmt::format("{} ({} image{})", split, n, n == 1 ? "" : "s"));
      f.Fail(kLeakage, "patient " + patient + " (from file names)", "in " + Join(parts, ", "));
    }
  }
  std::map<std::string, std::map<std::string, int64_t>> splits_of;  // patient -> split -> images
  std::unordered_map<std::string, const Image*> by_name;
  for (const auto& img : ds.images) {
    by_name.emplace(img.file_name, &img);
    if (img.split.empty()) {
      notes["images_without_split"]++;
      continue;
    }
    if (img.patient_id.empty()) {
      notes["images_without_patient"]++;
      continue;
    }
    splits_of[img.patient_id][img.split]++;
  }
  for (const auto& [patient, splits] : splits_of) {
    if (splits.size() < 2) continue;
    std::vector<std::string> parts;
    for (const auto& [split, n] : splits) parts.push_back(fmt::format("{} ({} image{})", split, n, n == 1 ? "" : "s"));
    f.Fail(kLeakage, "patient " + patient, "in " + Join(parts, ", "));
  }
  // An augmented copy in another split than its source leaks the source.
  for (const auto& img : ds.images) {
    if (img.origin.image.empty() || img.split.empty()) continue;
    auto it = by_name.find(img.origin.image);
    if (it == by_name.end() || it->second->split.empty() || it->second->split == img.split) continue;
    f.Fail(kLeakage, img.file_name,
           fmt::format("in {} but derived from {} in {}", img.split, img.origin.image, it->second->split));
  }
  CheckRoboflowLeakage(ds, f);
}

std::string real_path_of(const fs::path& p) {
  char buf[PATH_MAX];
  return ::realpath(p.c_str(), buf) == nullptr ? p.string() : std::string(buf);
}

// Image files not in the dataset that lie beside its images, per folder (the
// folder the image's links finally reach) whose listed images are all of one
// split. Returns (file, that split) pairs in path order.
std::vector<std::pair<fs::path, std::string>> UnlistedBeside(const Dataset& ds, const fs::path& dir) {
  struct Folder {
    std::set<std::string> splits;
    std::set<std::string> listed;  // real paths
  };
  std::map<std::string, Folder> folders;
  std::unordered_set<std::string> all_listed;  // real paths of every image
  auto real_path = [](const fs::path& p) -> std::string {
    char buf[PATH_MAX];
    return ::realpath(p.c_str(), buf) == nullptr ? std::string() : std::string(buf);
  };
  for (const auto& img : ds.images) {
    if (!IsContainedRelativePath(img.file_name)) continue;
    const std::string real = real_path(dir / img.file_name);
    if (real.empty()) continue;
    Folder& f = folders[fs::path(real).parent_path().string()];
    f.splits.insert(img.split);
    f.listed.insert(real);
    all_listed.insert(real);
  }
  std::vector<std::pair<fs::path, std::string>> out;
  for (const auto& [folder, f] : folders) {
    if (f.splits.size() != 1 || f.splits.begin()->empty()) continue;
    Result<std::vector<ListedFile>> files = ListFiles(folder, /*recursive=*/false);
    if (!files.ok()) continue;
    for (const auto& file : *files) {
      fs::path path = fs::path(folder) / file.rel;
      std::string ext = path.extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (ext != ".png" && ext != ".jpg" && ext != ".jpeg") continue;
      // A link to a listed image (a stage's pass-through link) is listed.
      if (f.listed.count(path.string()) || all_listed.count(real_path(path))) continue;
      out.emplace_back(path, *f.splits.begin());
    }
  }
  return out;
}

void CheckBoxes(const Dataset& ds, double tol, Findings& f) {
  std::unordered_map<int64_t, const Image*> images;
  for (const auto& img : ds.images) images.emplace(img.id, &img);
  for (const auto& a : ds.annotations) {
    auto it = images.find(a.image_id);
    if (it == images.end()) continue;  // the ids check reports it
    const Image& img = *it->second;
    const double x = a.bbox[0], y = a.bbox[1], w = a.bbox[2], h = a.bbox[3];
    std::string item = fmt::format("annotation {} ({})", a.id, img.file_name);
    std::string box = fmt::format("box [{}, {}, {}, {}]", Num(x), Num(y), Num(w), Num(h));
    if (!std::isfinite(x) || !std::isfinite(y) || !std::isfinite(w) || !std::isfinite(h)) {
      f.Fail(kBoxes, item, box + " is not finite");
    } else if (w <= 0 || h <= 0) {
      f.Fail(kBoxes, item, box + " has no positive area");
    } else if (img.width <= 0 || img.height <= 0) {
      f.Fail(kBoxes, item, box + " is on an image with no size");
    } else if (x < -tol || y < -tol || x + w > img.width + tol || y + h > img.height + tol) {
      f.Fail(kBoxes, item, fmt::format("{} extends past the {}x{} image", box, img.width, img.height));
    }
  }
}

void CheckCategoriesAndIds(const Dataset& ds, Findings& f) {
  std::set<int64_t> category_ids;
  std::set<std::string> category_names;
  for (const auto& c : ds.categories) {
    if (!category_ids.insert(c.id).second) f.Fail(kCategories, fmt::format("category {}", c.id), "id defined twice");
    if (!category_names.insert(c.name).second) f.Fail(kCategories, "category " + c.name, "name defined twice");
  }
  std::unordered_set<int64_t> image_ids, annotation_ids;
  for (const auto& img : ds.images) {
    if (!image_ids.insert(img.id).second) f.Fail(kIds, img.file_name, fmt::format("image id {} used twice", img.id));
  }
  for (const auto& a : ds.annotations) {
    std::string item = fmt::format("annotation {}", a.id);
    if (!annotation_ids.insert(a.id).second) f.Fail(kIds, item, "annotation id used twice");
    if (!image_ids.count(a.image_id)) f.Fail(kIds, item, fmt::format("image_id {} is not an image", a.image_id));
    if (!category_ids.count(a.category_id)) {
      f.Fail(kCategories, item, fmt::format("category_id {} is not defined", a.category_id));
    }
  }
}

// ---- The stage -------------------------------------------------------------

std::string RenderValidation(const Dataset& ds, const Findings& f, const ValidateOptions& o,
                             const std::map<std::string, int64_t>& notes) {
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.SetIndent(' ', 2);
  bool passed = true;
  std::vector<std::string> failed;
  for (int c = 0; c < kNumChecks; ++c) {
    if (f.checks[c].failures > 0 && o.fatal[c]) passed = false, failed.push_back(kCheckNames[c]);
  }
  w.StartObject();
  w.Key("passed"), w.Bool(passed);
  w.Key("failed_checks"), w.StartArray();
  for (const auto& c : failed) w.String(c.c_str());
  w.EndArray();
  w.Key("images"), w.Int64(static_cast<int64_t>(ds.images.size()));
  w.Key("annotations"), w.Int64(static_cast<int64_t>(ds.annotations.size()));
  w.Key("checks"), w.StartObject();
  for (int c = 0; c < kNumChecks; ++c) {
    const auto& one = f.checks[c];
    const int64_t listed = std::min<int64_t>(o.max_listed, static_cast<int64_t>(one.items.size()));
    w.Key(kCheckNames[c]), w.StartObject();
    w.Key("passed"), w.Bool(one.failures == 0);
    w.Key("fatal"), w.Bool(o.fatal[c]);
    w.Key("failures"), w.Int64(one.failures);
    w.Key("items"), w.StartArray();
    for (int64_t k = 0; k < listed; ++k) w.String(one.items[k].c_str());
    w.EndArray();
    w.Key("items_not_listed"), w.Int64(one.failures - listed);
    w.EndObject();
  }
  w.EndObject();
  w.Key("notes"), w.StartObject();
  for (const auto& [k, v] : notes) w.Key(k.c_str()), w.Int64(v);
  w.EndObject();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

class ValidateStage : public Stage {
 public:
  explicit ValidateStage(ValidateOptions o) : o_(std::move(o)) {}

  Status Run(StageContext& ctx) const override {
    std::vector<Dataset> inputs;
    for (size_t k = 0; k < ctx.inputs().size(); ++k) {
      MEDPIPE_ASSIGN_OR_RETURN(Dataset ds, ctx.ReadInputDataset(k));
      inputs.push_back(std::move(ds));
    }
    const Dataset& ds = inputs[0];
    Findings f;
    f.ctx = &ctx;
    std::map<std::string, int64_t> notes;

    // Pass-through links first, then the file items: RunItems keeps the
    // journal of its latest call only, so the costly one goes last.
    std::vector<LinkSpec> links;
    std::vector<size_t> linked_image;
    for (size_t i = 0; i < ds.images.size(); ++i) {
      if (!IsContainedRelativePath(ds.images[i].file_name)) continue;
      links.push_back(LinkSpec{ds.images[i].file_name, ctx.inputs()[0].dir / ds.images[i].file_name});
      linked_image.push_back(i);
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links));

    // One item per file of every input; keys name the input, so the same
    // file name in two inputs is two items.
    struct FileRef {
      size_t input, image;  // input kUnlisted: image indexes `unlisted`
    };
    constexpr size_t kUnlisted = static_cast<size_t>(-1);
    std::vector<FileRef> refs;
    std::vector<ItemTask> tasks;
    for (size_t k = 0; k < inputs.size(); ++k) {
      for (size_t i = 0; i < inputs[k].images.size(); ++i) {
        const std::string& name = inputs[k].images[i].file_name;
        if (!IsContainedRelativePath(name)) {
          if (k == 0) f.Fail(kFiles, name, "file name leaves the dataset folder");
          continue;
        }
        fs::path path = ctx.inputs()[k].dir / name;
        refs.push_back(FileRef{k, i});
        tasks.push_back(ItemTask{"file:" + ctx.inputs()[k].id + "/" + name, FileFingerprint(path, o_.full_decode)});
      }
    }
    const std::vector<std::pair<fs::path, std::string>> unlisted = UnlistedBeside(ds, ctx.inputs()[0].dir);
    for (size_t u = 0; u < unlisted.size(); ++u) {
      refs.push_back(FileRef{kUnlisted, u});
      tasks.push_back(ItemTask{"unlisted:" + unlisted[u].first.string(), FileFingerprint(unlisted[u].first, false)});
    }
    const bool full = o_.full_decode;
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ItemResult> results,
                             ctx.RunItems(tasks, [&](size_t t, ItemOutput&) -> Result<std::string> {
                               const FileRef& r = refs[t];
                               if (r.input == kUnlisted) return ProbeFile(unlisted[r.image].first, false);
                               return ProbeFile(ctx.inputs()[r.input].dir / inputs[r.input].images[r.image].file_name,
                                                full);
                             }));

    // files and duplicates, from the items in task order (so the listing is
    // the same whatever the thread count).
    std::unordered_map<std::string, std::vector<size_t>> by_hash;  // hash -> images of input 0
    std::vector<std::string> hash_order;
    std::vector<std::pair<size_t, FileInfo>> others;  // (input, info) per file of inputs 1..
    std::vector<std::string> other_names;
    std::vector<std::pair<size_t, std::string>> unlisted_hashes;  // (index in unlisted, hash)
    for (size_t t = 0; t < tasks.size(); ++t) {
      const FileRef& r = refs[t];
      FileInfo info = results[t].ok ? ParsePayload(results[t].payload) : FileInfo{false, results[t].error, "", 0, 0};
      if (r.input == kUnlisted) {
        if (info.ok) unlisted_hashes.emplace_back(r.image, info.hash);
        continue;
      }
      const Image& img = inputs[r.input].images[r.image];
      if (r.input > 0) {
        if (info.ok) others.emplace_back(r.input, info), other_names.push_back(img.file_name);
        continue;
      }
      if (!info.ok) {
        f.Fail(kFiles, img.file_name, info.reason);
        continue;
      }
      if (img.width > 0 && img.height > 0 && (img.width != info.width || img.height != info.height)) {
        f.Fail(kFiles, img.file_name,
               fmt::format("the dataset says {}x{}, the file is {}x{}", img.width, img.height, info.width, info.height));
      }
      auto [it, fresh] = by_hash.try_emplace(info.hash);
      if (fresh) hash_order.push_back(info.hash);
      it->second.push_back(r.image);
    }
    for (const auto& h : hash_order) {
      const auto& group = by_hash[h];
      if (group.size() < 2) continue;
      std::set<std::string> splits;
      std::vector<std::string> names;
      for (size_t i : group) {
        splits.insert(ds.images[i].split);
        names.push_back((ds.images[i].split.empty() ? "" : ds.images[i].split + ":") + ds.images[i].file_name);
      }
      if (splits.size() < 2) {
        notes["duplicates_within_a_split"] += static_cast<int64_t>(group.size() - 1);
        continue;
      }
      f.Fail(kDuplicates, ds.images[group[0]].file_name,
             "same bytes as " + Join(std::vector<std::string>(names.begin() + 1, names.end()), ", "));
    }
    for (size_t k = 0; k < others.size(); ++k) {
      auto it = by_hash.find(others[k].second.hash);
      if (it == by_hash.end()) continue;
      f.Fail(kDuplicates, ds.images[it->second[0]].file_name,
             fmt::format("same bytes as {} in input {}", other_names[k], ctx.inputs()[others[k].first].id));
    }

    // Files in the workdir are named relative to it, so the report does not
    // depend on where the workdir is; others by their absolute path.
    const std::string workdir = real_path_of(ctx.dir().parent_path()) + "/";
    auto shown = [&](const fs::path& p) {
      const std::string s = p.string();
      return s.rfind(workdir, 0) == 0 ? s.substr(workdir.size()) : s;
    };
    int64_t unlisted_copies = 0;
    for (const auto& [u, hash] : unlisted_hashes) {
      auto it = by_hash.find(hash);
      if (it == by_hash.end()) continue;
      const std::string& folder_split = unlisted[u].second;
      for (size_t i : it->second) {
        if (ds.images[i].split == folder_split) continue;
        ++unlisted_copies;
        ctx.Problem(shown(unlisted[u].first),
                    fmt::format("warning: not in the dataset, but beside its {} images with the bytes of {} image {}; "
                                "a trainer reading the folder would see a {} image in {}",
                                folder_split, ds.images[i].split, ds.images[i].file_name, ds.images[i].split,
                                folder_split));
        break;
      }
    }
    notes["unlisted_copies_of_other_splits"] = unlisted_copies;
    ctx.Count("unlisted_copies_of_other_splits", unlisted_copies);

    CheckLeakage(ds, o_.patient_regex, f, notes);
    CheckBoxes(ds, o_.box_tolerance, f);
    CheckCategoriesAndIds(ds, f);

    // dataset.json: input 0 as is, minus the images that could not be linked.
    Dataset out;
    out.categories = ds.categories;
    std::unordered_set<int64_t> kept_ids;
    std::vector<bool> keep(ds.images.size(), false);
    for (size_t l = 0; l < linked_image.size(); ++l) keep[linked_image[l]] = linked[l];
    for (size_t i = 0; i < ds.images.size(); ++i) {
      if (!keep[i]) continue;
      out.images.push_back(ds.images[i]);
      kept_ids.insert(ds.images[i].id);
    }
    for (const auto& a : ds.annotations) {
      if (kept_ids.count(a.image_id)) out.annotations.push_back(a);
    }
    MEDPIPE_RETURN_IF_ERROR(ctx.WriteDataset(out));
    MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("validation.json", RenderValidation(ds, f, o_, notes)));

    ctx.Count("images", static_cast<int64_t>(ds.images.size()));
    ctx.Count("annotations", static_cast<int64_t>(ds.annotations.size()));
    std::vector<std::string> failed;
    for (int c = 0; c < kNumChecks; ++c) {
      ctx.Count(std::string(kCheckNames[c]) + "_failures", f.checks[c].failures);
      if (f.checks[c].failures > 0 && o_.fatal[c]) {
        failed.push_back(fmt::format("{} ({})", kCheckNames[c], f.checks[c].failures));
      }
    }
    if (failed.empty()) return Status::OK();
    // The runner writes report.json only on success; a failed validation
    // needs its per-item problems most.
    MEDPIPE_RETURN_IF_ERROR(ctx.WriteReport());
    return Status::Failed("validation failed: " + Join(failed, ", ") + "; see " + ctx.id() + "/validation.json");
  }

 private:
  ValidateOptions o_;
};

Result<std::unique_ptr<Stage>> MakeValidate(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  ValidateOptions o;
  o.box_tolerance = p.GetFloat("box_tolerance");
  if (!(o.box_tolerance >= 0)) return p.Error("box_tolerance", "must be 0 or more pixels");
  o.full_decode = p.GetString("decode") == "full";
  o.max_listed = p.GetInt("max_listed");
  if (o.max_listed < 0) return p.Error("max_listed", "must be 0 or more");
  if (const std::string& pattern = p.GetString("patient_pattern"); !pattern.empty()) {
    try {
      o.patient_regex = std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return p.Error("patient_pattern", std::string("not a valid regular expression: ") + e.what());
    }
    if (o.patient_regex->mark_count() < 1) return p.Error("patient_pattern", "needs a capture group for the patient id");
  }
  for (const auto& name : p.GetStringList("fail_on")) {
    auto* it = std::find(std::begin(kCheckNames), std::end(kCheckNames), name);
    if (it == std::end(kCheckNames)) {
      std::vector<std::string> all(std::begin(kCheckNames), std::end(kCheckNames));
      std::string close = ClosestName(name, all);
      return p.Error("fail_on", fmt::format("unknown check '{}'{} (checks: {})", name,
                                            close.empty() ? "" : " (did you mean '" + close + "'?)", Join(all, ", ")));
    }
    bool& fatal = o.fatal[static_cast<size_t>(it - std::begin(kCheckNames))];
    if (fatal) return p.Error("fail_on", "check '" + name + "' is listed twice");
    fatal = true;
  }
  return std::unique_ptr<Stage>(new ValidateStage(std::move(o)));
}

}  // namespace

void RegisterValidate(Registry* registry) {
  KindSpec spec;
  spec.name = "validate";
  spec.version = 2;  // 2: Roboflow-upload leakage, unlisted copies of other splits
  spec.help =
      "check a dataset (patient leakage, boxes, files, duplicates across splits, categories, ids); fails the stage "
      "when a check in fail_on fails; passes the dataset through as links";
  spec.min_inputs = 1;
  spec.max_inputs = -1;
  spec.params = {
      {"fail_on", ParamType::kStringList, "[leakage, boxes, files, duplicates, categories, ids]", false,
       "checks whose failure fails the stage (the others are reported only)", {}},
      {"box_tolerance", ParamType::kFloat, "0.5", false,
       "pixels a box may extend past its image's edges (rounding in exported coordinates)", {}},
      {"decode", ParamType::kString, "header", false, "how files are checked: read the header, or decode every pixel",
       {"header", "full"}},
      {"max_listed", ParamType::kInt, "20", false, "failures listed per check in validation.json (all are counted)",
       {}},
      {"patient_pattern", ParamType::kString, "", false,
       "regex on the file's base name (else its path) whose group 1 is a patient id: leakage is checked on it too",
       {}},
  };
  registry->Add(StageKind{std::move(spec), MakeValidate});
}

}  // namespace medpipe
