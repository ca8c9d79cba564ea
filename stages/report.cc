// report: one self-contained report.html a person opens in any browser, with
// no server and nothing fetched: per split counts against the negative
// target, classes as stacked bars, box statistics, patient overlap,
// duplicates and every validation check with thumbnails of the failing
// images, a seeded gallery with boxes drawn, attribute-driven sections
// (fold, risk_level, machine_type, prob_<label>) and where the data came
// from.
//
// Inputs: any dataset stages (each gets its sections), plus analyze and
// validate stages, whose records it reads (validation.json: the checks;
// analysis.json: the report's own counts are checked against it and the
// result shown). The page is built by the report/ library; this file only
// gathers data. Thumbnails are per-item work (ctx.RunItems, one item per
// image shown), written as report/thumbs/<hash>.<ext>: names are hashes, so
// no file name from the data reaches the file system, and a rerun redraws
// only thumbnails whose image, boxes or settings changed. With
// inline_thumbs they are also embedded as data: URIs, so the HTML file alone
// is the report.
#include <fmt/format.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "report/dataset_stats.h"
#include "report/html.h"
#include "report/sections.h"
#include "report/thumbnail.h"
#include "runner/checkpoint.h"
#include "stages/registry.h"
#include "stages/report_records.h"
#include "util/hash.h"

#ifndef MEDPIPE_VERSION
#define MEDPIPE_VERSION "unknown"
#endif

namespace medpipe {
namespace {

struct ReportOptions {
  std::string title;
  size_t gallery_per_class = 4;
  size_t gallery_copies = 3;
  report::ThumbOptions thumb;
  bool inline_thumbs = false;
  std::optional<double> negative_target;
  bool run_times = true;
  size_t max_listed = 50;
  std::string pipeline_file;
};

// One dataset input with what is shown of it.
struct DatasetInput {
  size_t input = 0;
  Dataset ds;
  report::DatasetStats stats;
  std::vector<report::GalleryGroup> gallery;
  std::unordered_map<std::string, size_t> by_name;  // file_name -> image index
};

std::string Base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

class ReportStage : public Stage {
 public:
  explicit ReportStage(ReportOptions o) : o_(std::move(o)) {}

  Status Run(StageContext& ctx) const override {
    std::vector<DatasetInput> datasets;
    std::vector<size_t> analyses, validations;
    for (size_t i = 0; i < ctx.inputs().size(); ++i) {
      const fs::path dir = ctx.inputs()[i].dir;
      if (StatPath(dir / "analysis.json").exists) analyses.push_back(i);
      if (StatPath(dir / "validation.json").exists) validations.push_back(i);
      if (!StatPath(dir / "dataset.json").exists) continue;
      DatasetInput d;
      d.input = i;
      MEDPIPE_ASSIGN_OR_RETURN(d.ds, ctx.ReadInputDataset(i));
      d.stats = report::ComputeStats(d.ds, o_.max_listed);
      d.gallery = report::ChooseGallery(d.ds, d.stats, ctx.seed(), o_.gallery_per_class, o_.gallery_copies);
      d.by_name.reserve(d.ds.images.size());
      for (size_t k = 0; k < d.ds.images.size(); ++k) d.by_name.emplace(d.ds.images[k].file_name, k);
      datasets.push_back(std::move(d));
    }
    if (datasets.empty()) {
      return Status::Failed("report needs at least one input with a dataset (analyze alone has none)");
    }

    // Validation records, their findings mapped to images of a dataset
    // input (the validate stage's own pass-through dataset when it is one).
    std::vector<report::ValidationResult> results;
    std::vector<std::vector<std::pair<size_t, size_t>>> finding_refs;  // per result: (dataset, image) or npos
    for (size_t i : validations) {
      size_t d = 0;
      for (size_t k = 0; k < datasets.size(); ++k) {
        if (datasets[k].input == i) d = k;
      }
      std::unordered_set<std::string> names;
      for (const auto& [name, k] : datasets[d].by_name) names.insert(name);
      std::vector<std::string> images;
      MEDPIPE_ASSIGN_OR_RETURN(report::ValidationResult v,
                               ReadValidation(ctx.inputs()[i].dir / "validation.json", ctx.inputs()[i].id, names,
                                              &images));
      std::vector<std::pair<size_t, size_t>> refs;
      for (const auto& name : images) {
        refs.emplace_back(d, name.empty() ? std::string::npos : datasets[d].by_name.at(name));
      }
      results.push_back(std::move(v));
      finding_refs.push_back(std::move(refs));
    }

    // Every image shown gets one thumbnail item, deduplicated.
    std::vector<std::pair<size_t, size_t>> thumbs;  // (dataset, image)
    std::map<std::pair<size_t, size_t>, size_t> thumb_index;
    auto want = [&](size_t d, size_t image) {
      auto [it, fresh] = thumb_index.emplace(std::make_pair(d, image), thumbs.size());
      if (fresh) thumbs.emplace_back(d, image);
      return it->second;
    };
    for (size_t d = 0; d < datasets.size(); ++d) {
      for (const auto& g : datasets[d].gallery) {
        for (size_t k = 0; k < g.images.size(); ++k) {
          want(d, g.images[k]);
          for (size_t c : g.copies[k]) want(d, c);
        }
      }
    }
    for (const auto& refs : finding_refs) {
      for (const auto& [d, image] : refs) {
        if (image != std::string::npos) want(d, image);
      }
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<report::Thumb> made, MakeThumbs(ctx, datasets, thumbs));

    // The page.
    report::Page page(o_.title.empty() ? "medpipe report: " + ctx.id() : o_.title);  // empty: no file name
    report::Provenance prov;
    std::vector<std::string> input_ids;
    for (const auto& in : ctx.inputs()) input_ids.push_back(in.id);
    std::optional<double> target;
    prov.stages = UpstreamRecords(ctx.dir().parent_path(), input_ids, o_.run_times, &target);
    if (o_.negative_target) target = o_.negative_target;

    for (size_t d = 0; d < datasets.size(); ++d) {
      DatasetInput& in = datasets[d];
      const std::string& id = ctx.inputs()[in.input].id;
      const bool several = datasets.size() > 1;
      auto sid = [&](const std::string& s) { return several ? s + "-" + id : s; };
      datasets[d].stats.id_suffix = several ? "-" + id : "";
      auto heading = [&](const std::string& s) { return several ? s + " (" + id + ")" : s; };
      std::string splits = report::SplitsSection(in.stats, target);
      for (size_t a : analyses) {
        // With several datasets, each is checked only against the analyze
        // stage that read it.
        if (several) {
          Result<CommitRecord> commit = ReadCommit(ctx.inputs()[a].dir);
          if (!commit.ok() || !commit->inputs.count(id)) continue;
        }
        MEDPIPE_ASSIGN_OR_RETURN(std::vector<std::string> diffs,
                                 CompareWithAnalysis(ctx.inputs()[a].dir / "analysis.json", in.stats));
        splits += diffs.empty()
                      ? "<p class=\"ok\">These counts agree with " + report::Escape(ctx.inputs()[a].id) +
                            "'s analysis.json.</p>\n"
                      : "<p class=\"warn\">" + report::Escape(ctx.inputs()[a].id) + "'s analysis.json differs (" +
                            report::Escape(diffs.front()) + fmt::format("; {} difference(s) in all).</p>\n", diffs.size());
      }
      page.Section(sid("splits"), heading("Splits"), splits);
      if (in.stats.image_level) {
        // Labels and risk levels (the latter in the attributes section),
        // not box tables of a dataset that has no boxes.
        page.Section(sid("labels"), heading("Labels"), report::LabelsSection(in.stats));
      } else {
        page.Section(sid("classes"), heading("Classes"), report::ClassesSection(in.stats));
        page.Section(sid("boxes"), heading("Boxes"), report::BoxesSection(in.stats));
      }
      page.Section(sid("patients"), heading("Patients across splits"), report::PatientsSection(in.stats));
      std::vector<report::GallerySet> sets;
      for (const auto& g : in.gallery) {
        report::GallerySet set{g.split, g.group, {}};
        for (size_t k = 0; k < g.images.size(); ++k) {
          report::GalleryFigure f{made[thumb_index.at({d, g.images[k]})], {}};
          for (size_t c : g.copies[k]) f.copies.push_back(made[thumb_index.at({d, c})]);
          set.figures.push_back(std::move(f));
        }
        sets.push_back(std::move(set));
      }
      page.Section(sid("gallery"), heading("Gallery"), report::GallerySection(in.stats, sets, o_.gallery_per_class));
      std::string attributes = report::AttributesSection(in.stats);
      if (!attributes.empty()) page.Section(sid("attributes"), heading("Attributes"), attributes);
    }
    for (size_t v = 0; v < results.size(); ++v) {
      size_t f = 0;
      for (auto& c : results[v].checks) {
        for (auto& finding : c.findings) {
          const auto [d, image] = finding_refs[v][f++];
          if (image != std::string::npos) finding.thumb = made[thumb_index.at({d, image})];
        }
      }
    }
    page.Section("duplicates", "Duplicates across splits", report::DuplicatesSection(results));
    if (!results.empty()) page.Section("validation", "Validation", report::ValidationSection(results));

    prov.pipeline_file = o_.pipeline_file;
    prov.report_stage = ctx.id();
    prov.version = MEDPIPE_VERSION;
    prov.seed = ctx.seed();
    prov.times = o_.run_times;
    page.Section("provenance", "Where the data came from", report::ProvenanceSection(prov));

    MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("report.html", page.Render()));
    int64_t images = 0;
    for (const auto& d : datasets) images += static_cast<int64_t>(d.ds.images.size());
    ctx.Count("images", images);
    ctx.Count("thumbnails", static_cast<int64_t>(thumbs.size()));
    // Log lines are prefixed with the stage id already ("report: ...").
    ctx.Log("wrote " + (ctx.dir() / "report.html").string());
    return Status::OK();
  }

 private:
  // Makes (or resumes) the thumbnail of every (dataset, image) in `thumbs`.
  Result<std::vector<report::Thumb>> MakeThumbs(StageContext& ctx, const std::vector<DatasetInput>& datasets,
                                                const std::vector<std::pair<size_t, size_t>>& thumbs) const {
    const std::string ext = o_.thumb.png ? ".png" : ".jpg";
    struct Job {
      fs::path source;
      std::string rel;
      std::vector<report::ThumbBox> boxes;
      std::string unsafe;  // why there is no thumbnail without trying
    };
    std::vector<Job> jobs(thumbs.size());
    std::vector<ItemTask> tasks(thumbs.size());
    std::vector<std::unordered_map<int64_t, std::vector<size_t>>> by_image(datasets.size());
    std::vector<std::unordered_map<int64_t, size_t>> category(datasets.size());
    for (size_t d = 0; d < datasets.size(); ++d) {
      if (std::none_of(thumbs.begin(), thumbs.end(), [d](const auto& t) { return t.first == d; })) continue;
      by_image[d] = datasets[d].ds.AnnotationsByImage();
      for (size_t c = 0; c < datasets[d].ds.categories.size(); ++c) category[d][datasets[d].ds.categories[c].id] = c;
    }
    for (size_t t = 0; t < thumbs.size(); ++t) {
      const auto [d, i] = thumbs[t];
      const Dataset& ds = datasets[d].ds;
      const Image& img = ds.images[i];
      const std::string& input_id = ctx.inputs()[datasets[d].input].id;
      Job& job = jobs[t];
      Hasher name;
      name.Field(input_id).Field(img.file_name);
      job.rel = "thumbs/" + name.HexDigest().substr(0, 20) + ext;
      Hasher fp;
      fp.Field("report-thumb/1").Field(job.rel).Field(std::to_string(o_.thumb.max_side)).Field(ext);
      fp.Field(std::to_string(o_.thumb.jpeg_quality));
      if (!IsContainedRelativePath(img.file_name)) {
        job.unsafe = "the file name leaves the dataset folder";
      } else {
        job.source = ctx.inputs()[datasets[d].input].dir / img.file_name;
        // stat() follows links: a changed source image redraws its thumbnail.
        std::error_code ec;
        const auto size = fs::file_size(job.source, ec);
        const auto mtime = ec ? fs::file_time_type{} : fs::last_write_time(job.source, ec);
        fp.Field(job.source.string()).Field(fmt::format("{}:{}", ec ? 0 : size, mtime.time_since_epoch().count()));
      }
      if (auto it = by_image[d].find(img.id); it != by_image[d].end()) {
        for (size_t k : it->second) {
          const Annotation& a = ds.annotations[k];
          auto c = category[d].find(a.category_id);
          report::ThumbBox b{a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3], {128, 128, 128}, "?"};
          if (c != category[d].end()) b.colour = report::ClassColour(c->second), b.label = ds.categories[c->second].name;
          fp.Field(fmt::format("{} {} {} {} {:02x}{:02x}{:02x}", b.x, b.y, b.w, b.h, b.colour.r, b.colour.g, b.colour.b))
              .Field(b.label);
          job.boxes.push_back(std::move(b));
        }
      }
      tasks[t] = ItemTask{"thumb:" + input_id + "/" + img.file_name, fp.HexDigest()};
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ItemResult> done,
                             ctx.RunItems(tasks, [&](size_t t, ItemOutput& out) -> Result<std::string> {
                               const Job& job = jobs[t];
                               if (!job.unsafe.empty()) return Status::Invalid(job.unsafe);
                               Result<std::string> bytes = ReadFile(job.source);
                               // A missing or unreadable image is this item's
                               // problem (often the very finding shown), never
                               // the stage's.
                               if (!bytes.ok()) return Status::Invalid(bytes.status().message());
                               MEDPIPE_ASSIGN_OR_RETURN(std::string thumb,
                                                        report::MakeThumbnail(*bytes, job.boxes, o_.thumb));
                               MEDPIPE_RETURN_IF_ERROR(out.WriteFile(job.rel, thumb));
                               return std::string();
                             }));
    std::vector<report::Thumb> out(thumbs.size());
    for (size_t t = 0; t < thumbs.size(); ++t) {
      out[t].caption = datasets[thumbs[t].first].ds.images[thumbs[t].second].file_name;
      if (!done[t].ok) {
        out[t].error = done[t].error;
        ctx.Count("thumbnail_failures");
        continue;
      }
      if (!o_.inline_thumbs) {
        out[t].url = jobs[t].rel;
        continue;
      }
      MEDPIPE_ASSIGN_OR_RETURN(std::string bytes, ReadFile(ctx.dir() / jobs[t].rel));
      out[t].url = std::string(o_.thumb.png ? "data:image/png;base64," : "data:image/jpeg;base64,") + Base64(bytes);
    }
    return out;
  }

  ReportOptions o_;
};

Result<std::unique_ptr<Stage>> MakeReport(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  ReportOptions o;
  o.title = p.GetString("title");
  if (o.title.empty()) o.title = d.pipeline_name.empty() ? fs::path(d.loc.file).stem().string() : d.pipeline_name;
  const int64_t per_class = p.GetInt("gallery_per_class");
  if (per_class < 0 || per_class > 1000) return p.Error("gallery_per_class", "must be within 0..1000");
  o.gallery_per_class = static_cast<size_t>(per_class);
  const int64_t copies = p.GetInt("gallery_copies");
  if (copies < 0 || copies > 100) return p.Error("gallery_copies", "must be within 0..100");
  o.gallery_copies = static_cast<size_t>(copies);
  const int64_t size = p.GetInt("thumb_size");
  if (size < 16 || size > 2048) return p.Error("thumb_size", "must be within 16..2048 pixels");
  o.thumb.max_side = static_cast<int>(size);
  o.thumb.png = p.GetString("thumb_format") == "png";
  const int64_t quality = p.GetInt("jpeg_quality");
  if (quality < 1 || quality > 100) return p.Error("jpeg_quality", "must be within 1..100");
  o.thumb.jpeg_quality = static_cast<int>(quality);
  o.inline_thumbs = p.GetBool("inline_thumbs");
  if (p.Has("negative_target")) {
    const double t = p.GetFloat("negative_target");
    if (!(t >= 0 && t <= 1)) return p.Error("negative_target", "is a share, within [0, 1]");
    o.negative_target = t;
  }
  o.run_times = p.GetBool("run_times");
  const int64_t listed = p.GetInt("max_listed");
  if (listed < 0) return p.Error("max_listed", "must be 0 or more");
  o.max_listed = static_cast<size_t>(listed);
  o.pipeline_file = fs::path(d.loc.file).filename().string();
  return std::unique_ptr<Stage>(new ReportStage(std::move(o)));
}

}  // namespace

void RegisterReport(Registry* registry) {
  KindSpec spec;
  spec.name = "report";
  spec.version = 1;
  spec.help =
      "one self-contained report.html (inline CSS and SVG, thumbnails in report/thumbs/ or inlined, no network): "
      "splits, classes, boxes, patient overlap, duplicates, validation with thumbnails, a seeded gallery, fold / "
      "risk_level / machine_type / prob_<label> sections, provenance; inputs: dataset stages plus analyze and "
      "validate stages";
  spec.min_inputs = 1;
  spec.max_inputs = -1;
  spec.items_are_extras = true;  // its thumbnails: a missing image is a problem, the report is still whole
  spec.params = {
      {"title", ParamType::kString, "", false, "the page title (default: the pipeline's name)", {}},
      {"gallery_per_class", ParamType::kInt, "4", false,
       "gallery images per split and class (and negatives), a seeded choice", {}},
      {"gallery_copies", ParamType::kInt, "3", false, "augmented copies shown beside each gallery image", {}},
      {"thumb_size", ParamType::kInt, "160", false, "the longer side of a thumbnail, in pixels", {}},
      {"thumb_format", ParamType::kString, "jpg", false, "thumbnail format", {"jpg", "png"}},
      {"jpeg_quality", ParamType::kInt, "85", false, "1..100 for JPEG thumbnails", {}},
      {"inline_thumbs", ParamType::kBool, "false", false,
       "also embed the thumbnails in report.html as data: URIs, so the file alone is the report", {}},
      {"negative_target", ParamType::kFloat, "", false,
       "the negative share each split should have (default: the upstream balance stage's target)", {}},
      {"run_times", ParamType::kBool, "true", false,
       "show run times and resumed counts in the provenance (false: the same bytes on every run)", {}},
      {"max_listed", ParamType::kInt, "50", false, "patients in several splits listed by name", {}},
  };
  registry->Add(StageKind{std::move(spec), MakeReport});
}

}  // namespace medpipe
