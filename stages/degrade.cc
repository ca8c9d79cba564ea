// degrade: `count` synthetic low-quality clips, each a degraded copy of a
// source clip (cine/degrade.h), written as a new DICOM instance derived from
// its source (cine/cine_io.h).
//
// Sources are the input images satisfying `sources` (predicates, see
// dataset/select.h). Sample i takes its source round-robin over the values of
// `group_by` (machine type), groups and each group's clips in a seeded order,
// so the samples spread evenly over machines and a clip is reused only once
// every clip of its group has been. Its degradation is drawn from the seed
// and i; the same draw degrades every frame.
//
// Output: `synthetic/synthetic_<group>_<NNNN>.dcm` (NNNN = i), one item of
// ctx.RunItems each, with the source's patient and attributes (so its `clip`
// group follows the source into the same split) except score, status and
// assessment (which becomes "Synthetic degradation - <description>");
// then synthetic=true, source_sample (the source's file_id),
// source_file, degradation (the description), file_id and `set`. With
// `keep_inputs`, the input images are passed through (links) ahead of the
// samples. A source DCMTK cannot decode is a listed problem; its sample is
// missing from the output and the run goes on.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "cine/cine_io.h"
#include "cine/degrade.h"
#include "dataset/select.h"
#include "stages/link_images.h"
#include "stages/registry.h"
#include "util/file_names.h"
#include "util/hash.h"

namespace medpipe {
namespace {

struct DegradeOptions {
  int count = 300;
  std::vector<Predicate> sources;
  std::string group_by;
  DegradeRanges ranges;
  bool keep_inputs = true;
  std::vector<std::pair<std::string, std::string>> set;
  std::string item_params;  // what each sample's bytes depend on besides its source
};

struct Sample {
  size_t source;  // index into the input images
  std::string group;
  std::string rel;  // output file
  Degradation degradation;
};

uint64_t SeedOf(uint64_t seed, const std::string& key) {
  return std::strtoull(SeededOrderKey(seed, key).substr(0, 16).c_str(), nullptr, 16);
}

class DegradeStage : public Stage {
 public:
  explicit DegradeStage(DegradeOptions o) : o_(std::move(o)) {}

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset in, ctx.ReadInputDataset(0));
    const fs::path in_dir = ctx.inputs()[0].dir;

    std::map<std::string, std::vector<size_t>> groups;
    for (size_t i = 0; i < in.images.size(); ++i) {
      if (!IsContainedRelativePath(in.images[i].file_name) || !MatchesAll(o_.sources, in.images[i])) continue;
      std::string g = o_.group_by.empty() ? std::string() : ImageField(in.images[i], o_.group_by).value_or("");
      groups[g].push_back(i);
    }
    std::vector<std::pair<std::string, std::vector<size_t>>> order(groups.begin(), groups.end());
    for (auto& [name, members] : order) {
      std::sort(members.begin(), members.end(), [&](size_t a, size_t b) {
        return SeededOrderKey(ctx.seed(), in.images[a].file_name) < SeededOrderKey(ctx.seed(), in.images[b].file_name);
      });
    }
    std::sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
      return SeededOrderKey(ctx.seed(), "group\x1f" + a.first) < SeededOrderKey(ctx.seed(), "group\x1f" + b.first);
    });
    if (order.empty() && o_.count > 0) {
      return Status::Failed(fmt::format("no input image satisfies the source predicates of {}", ctx.id()));
    }

    std::vector<Sample> samples;
    for (int i = 0; i < o_.count; ++i) {
      const auto& [group, members] = order[static_cast<size_t>(i) % order.size()];
      const size_t round = static_cast<size_t>(i) / order.size();
      Sample s{members[round % members.size()], group, fmt::format("synthetic/synthetic_{}_{:04d}.dcm", FileSafeName(group), i),
               DrawDegradation(o_.ranges, SeedOf(ctx.seed(), fmt::format("degrade\x1f{}", i)))};
      samples.push_back(std::move(s));
    }

    // Inputs first, through LinkImages (its own journal pass).
    Dataset out;
    out.categories = in.categories;
    if (o_.keep_inputs) {
      std::vector<LinkSpec> links;
      std::vector<size_t> linkable;
      for (size_t i = 0; i < in.images.size(); ++i) {
        if (!IsContainedRelativePath(in.images[i].file_name)) {
          ctx.Problem(in.images[i].file_name, "file_name leaves the dataset folder; image skipped");
          continue;
        }
        links.push_back(LinkSpec{in.images[i].file_name, in_dir / in.images[i].file_name});
        linkable.push_back(i);
      }
      MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links));
      for (size_t k = 0; k < linkable.size(); ++k) {
        if (!linked[k]) continue;
        Image img = in.images[linkable[k]];
        img.id = static_cast<int64_t>(out.images.size()) + 1;
        out.images.push_back(std::move(img));
      }
      if (!in.annotations.empty()) ctx.Count("annotations_dropped", static_cast<int64_t>(in.annotations.size()));
    }

    std::vector<ItemTask> tasks;
    for (const Sample& s : samples) {
      const fs::path src = in_dir / in.images[s.source].file_name;
      struct stat st;
      std::string state = ::stat(src.c_str(), &st) == 0 ? fmt::format("{}:{}.{}", st.st_size, st.st_mtim.tv_sec,
                                                                      st.st_mtim.tv_nsec)
                                                        : "missing";
      Hasher h;
      h.Field("degrade/1").Field(src.string()).Field(state).Field(std::to_string(ctx.seed())).Field(o_.item_params);
      h.Field(DescribeDegradation(s.degradation)).Field(std::to_string(s.degradation.noise_seed));
      tasks.push_back(ItemTask{s.rel, h.HexDigest()});
    }
    MEDPIPE_ASSIGN_OR_RETURN(
        std::vector<ItemResult> results, ctx.RunItems(tasks, [&](size_t i, ItemOutput& out) -> Result<std::string> {
          const Sample& s = samples[i];
          MEDPIPE_ASSIGN_OR_RETURN(Cine cine, ReadCine(in_dir / in.images[s.source].file_name));
          std::vector<cv::Mat> frames;
          frames.reserve(cine.frames.size());
          for (size_t f = 0; f < cine.frames.size(); ++f) frames.push_back(DegradeFrame(s.degradation, cine.frames[f], f));
          DerivedInfo info;
          const std::string key = fmt::format("{}\x1f{}\x1f{}", ctx.seed(), s.rel, cine.sop_instance_uid);
          info.sop_instance_uid = DerivedUid(key + "\x1fsop");
          info.series_instance_uid = DerivedUid(key + "\x1fseries");
          info.derivation_description = "medpipe degrade " + DescribeDegradation(s.degradation);
          MEDPIPE_ASSIGN_OR_RETURN(std::string bytes, WriteDerivedCine(cine, frames, info));
          MEDPIPE_RETURN_IF_ERROR(out.WriteFile(s.rel, bytes));
          return fmt::format("{} {}", frames[0].cols, frames[0].rows);
        }));

    int64_t synthetic = 0;
    for (size_t i = 0; i < samples.size(); ++i) {
      if (!results[i].ok) {
        ctx.Count("failed");
        continue;
      }
      const Sample& s = samples[i];
      const Image& src = in.images[s.source];
      Image img;
      img.id = static_cast<int64_t>(out.images.size()) + 1;
      img.file_name = s.rel;
      std::sscanf(results[i].payload.c_str(), "%d %d", &img.width, &img.height);
      img.patient_id = src.patient_id;
      img.source = src.source;
      img.attributes = src.attributes;
      for (const char* drop : {"score", "status", "assessment"}) img.attributes.erase(drop);
      img.attributes["synthetic"] = true;
      img.attributes["source_sample"] = ImageField(src, "file_id").value_or(src.file_name);
      img.attributes["source_file"] = src.file_name;
      img.attributes["degradation"] = DescribeDegradation(s.degradation);
      img.attributes["assessment"] = "Synthetic degradation - " + DescribeDegradation(s.degradation);
      img.attributes["file_id"] = fs::path(s.rel).stem().string();
      for (const auto& [name, value] : o_.set) img.attributes[name] = ParseAttrValue(value);
      img.origin.image = src.file_name;
      img.origin.transform = DescribeDegradation(s.degradation);
      ctx.Count("synthetic." + s.degradation.kind);
      if (!o_.group_by.empty()) ctx.Count("synthetic." + o_.group_by + "." + s.group);
      out.images.push_back(std::move(img));
      ++synthetic;
    }
    ctx.Count("synthetic", synthetic);
    ctx.Count("images", static_cast<int64_t>(out.images.size()));
    return ctx.WriteDataset(out);
  }

 private:
  DegradeOptions o_;
};

Result<std::pair<double, double>> ParseRange(const Params& p, const std::string& name) {
  std::vector<std::string> v = p.GetStringList(name);
  if (v.size() != 2) return p.Error(name, "a range [min, max]");
  char *e0 = nullptr, *e1 = nullptr;
  double a = std::strtod(v[0].c_str(), &e0), b = std::strtod(v[1].c_str(), &e1);
  if (v[0].empty() || v[1].empty() || *e0 || *e1) return p.Error(name, "a range [min, max] of numbers");
  return std::make_pair(a, b);
}

Result<std::unique_ptr<Stage>> MakeDegrade(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  DegradeOptions o;
  if (p.GetInt("count") < 0 || p.GetInt("count") > 10000000) return p.Error("count", "0 to 10,000,000 samples");
  o.count = static_cast<int>(p.GetInt("count"));
  for (const std::string& t : p.GetStringList("sources")) {
    Result<Predicate> pr = ParsePredicate(t);
    if (!pr.ok()) return p.Error("sources", pr.status().message());
    o.sources.push_back(std::move(pr).value());
  }
  o.group_by = p.GetString("group_by");
  MEDPIPE_ASSIGN_OR_RETURN(auto noise, ParseRange(p, "noise_sigma"));
  MEDPIPE_ASSIGN_OR_RETURN(auto blur, ParseRange(p, "blur_kernel"));
  MEDPIPE_ASSIGN_OR_RETURN(auto contrast, ParseRange(p, "contrast_reduction"));
  if (blur.first != std::floor(blur.first) || blur.second != std::floor(blur.second)) {
    return p.Error("blur_kernel", "kernel lengths are whole pixels");
  }
  o.ranges.noise_min = noise.first, o.ranges.noise_max = noise.second;
  o.ranges.blur_min = static_cast<int>(blur.first), o.ranges.blur_max = static_cast<int>(blur.second);
  o.ranges.contrast_min = contrast.first, o.ranges.contrast_max = contrast.second;
  o.ranges.kinds = p.GetStringList("kinds");
  if (Status s = ValidateDegradeRanges(o.ranges); !s.ok()) {
    const std::string& m = s.message();
    const char* param = m.find("noise") == 0      ? "noise_sigma"
                        : m.find("contrast") == 0 ? "contrast_reduction"
                        : m.find("blur") == 0     ? "blur_kernel"
                                                  : "kinds";
    return p.Error(param, m);
  }
  o.keep_inputs = p.GetBool("keep_inputs");
  o.set = p.GetStringMap("set");
  o.item_params = fmt::format("{}|{}|{}|{}|{}|{}|{}", o.ranges.noise_min, o.ranges.noise_max, o.ranges.blur_min,
                              o.ranges.blur_max, o.ranges.contrast_min, o.ranges.contrast_max,
                              fmt::join(o.ranges.kinds, ","));
  return std::unique_ptr<Stage>(new DegradeStage(std::move(o)));
}

}  // namespace

void RegisterDegrade(Registry* registry) {
  KindSpec spec;
  spec.name = "degrade";
  spec.cluster_items = true;  // a cluster run sends its items to array tasks
  spec.version = 1;
  spec.help =
      "synthetic low-quality DICOM cines: noise, motion blur, contrast reduction or a combination, drawn per clip "
      "and applied to every frame, from sources chosen evenly across a grouping attribute";
  spec.min_inputs = 1;
  spec.max_inputs = 1;
  spec.params = {
      {"count", ParamType::kInt, "300", false, "number of synthetic samples", {}},
      {"sources", ParamType::kStringList, "[]", false,
       "predicates a source image satisfies, e.g. 'class == high_quality' (empty: every image)", {}},
      {"group_by", ParamType::kString, "machine_type", false, "attribute the sources are spread evenly over", {}},
      {"noise_sigma", ParamType::kStringList, "[0.2, 0.4]", false, "Gaussian sigma range, fraction of the range", {}},
      {"blur_kernel", ParamType::kStringList, "[5, 9]", false, "motion-blur line length range in px (odd lengths)",
       {}},
      {"contrast_reduction", ParamType::kStringList, "[0.3, 0.7]", false, "reduction toward the mean, range", {}},
      {"kinds", ParamType::kStringList, "[noise, blur, contrast, combined]", false,
       "degradations drawn with equal chances; combined = two or three of the others", {}},
      {"keep_inputs", ParamType::kBool, "true", false, "pass the input images through ahead of the samples", {}},
      {"set", ParamType::kStringMap, "{}", false, "attributes set on every sample, e.g. {quality_score: 0}", {}},
  };
  registry->Add(StageKind{std::move(spec), MakeDegrade});
}

}  // namespace medpipe
