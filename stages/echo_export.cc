// echo_export: the EchoQuality training layout of the seed
// (build_training_dataset.py), from a split dataset of clips.
//
//   high_quality/hq_<machine>_<NNNN>_<file_id>.dcm
//   low_quality/natural_failures/lq_<machine>_<NNNN>_<file_id>.dcm
//   low_quality/synthetic_degraded/synthetic_<machine>_<NNNN>.dcm
//   echo_annotations_enhanced.csv   the seed's 11 columns, then `split`
//   echo_annotations_<split>.csv    per split, the seed's 11 columns
//
// A clip's class: synthetic when its `synthetic` attribute is true, else
// high quality when `quality_score` is 1 and a natural failure when it is 0
// (the select stage sets it); a clip with neither is a listed problem. NNNN
// counts within the class in dataset order. The folder is what users hand
// to training, so its clips are materialised (`materialize`, as export):
// hard links to the files the input's links reach (copies where the
// filesystem refuses), or copies; it then survives `cp -r`, tar and a clean
// of the upstream stages. `symlink` keeps relative links into the workdir,
// on request only.
//
// CSV values: video_path relative to this folder; quality_score 1/0;
// synthetic True/False (as pandas writes the seed's booleans); source_sample
// the source's file_id for synthetic clips, else empty; score, status and
// assessment as the inference run gave them (a synthetic clip has no score,
// its status and assessment are what degrade set). Fields are quoted per
// RFC 4180 when they hold a comma, quote or newline.
#include <fmt/format.h>

#include <map>
#include <set>

#include "dataset/select.h"
#include "stages/link_images.h"
#include "stages/registry.h"
#include "util/file_names.h"
#include "util/strings.h"

namespace medpipe {
namespace {

const char* const kColumns[] = {"video_path", "quality_score", "filename", "machine_type", "score",    "status",
                                "assessment", "folder",        "file_id",  "synthetic",    "source_sample"};

enum Class { kHigh, kNatural, kSynthetic };
const char* const kClassNames[] = {"high_quality", "natural_failures", "synthetic_degraded"};

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

class EchoExportStage : public Stage {
 public:
  EchoExportStage(bool per_split, LinkMode materialize) : per_split_(per_split), materialize_(materialize) {}

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(Dataset in, ctx.ReadInputDataset(0));
    auto field = [](const Image& img, const char* name) { return ImageField(img, name).value_or(std::string()); };

    std::vector<size_t> kept;
    std::vector<Class> cls;
    std::vector<LinkSpec> links;
    int counters[3] = {0, 0, 0};
    for (size_t i = 0; i < in.images.size(); ++i) {
      const Image& img = in.images[i];
      if (!IsContainedRelativePath(img.file_name)) {
        ctx.Problem(img.file_name, "file_name leaves the dataset folder; image skipped");
        continue;
      }
      Class c;
      const std::string q = field(img, "quality_score");
      if (field(img, "synthetic") == "true") c = kSynthetic;
      else if (q == "1") c = kHigh;
      else if (q == "0") c = kNatural;
      else {
        ctx.Problem(img.file_name, "neither synthetic nor a quality_score of 1 or 0; not exported");
        ctx.Count("unclassified");
        continue;
      }
      const std::string machine = FileSafeName(field(img, "machine_type"));
      const int n = counters[c]++;
      std::string rel;
      if (c == kHigh) rel = fmt::format("high_quality/hq_{}_{:04d}_{}.dcm", machine, n, FileSafeName(field(img, "file_id")));
      if (c == kNatural) {
        rel = fmt::format("low_quality/natural_failures/lq_{}_{:04d}_{}.dcm", machine, n, FileSafeName(field(img, "file_id")));
      }
      if (c == kSynthetic) rel = fmt::format("low_quality/synthetic_degraded/synthetic_{}_{:04d}.dcm", machine, n);
      kept.push_back(i);
      cls.push_back(c);
      links.push_back(LinkSpec{rel, ctx.inputs()[0].dir / img.file_name});
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links, materialize_));

    std::string header;
    for (const char* c : kColumns) header += std::string(header.empty() ? "" : ",") + c;
    std::string all = header + ",split\n";
    std::map<std::string, std::string> per_split;
    std::map<std::string, std::map<std::string, int64_t>> table;  // split -> class -> clips
    std::set<std::string> classes_seen;
    Dataset out;
    for (size_t k = 0; k < kept.size(); ++k) {
      if (!linked[k]) continue;
      Image img = in.images[kept[k]];
      const Class c = cls[k];
      const std::string& rel = links[k].out_rel;
      std::vector<std::string> row = {
          rel,
          c == kHigh ? "1" : "0",
          fs::path(rel).filename().string(),
          field(img, "machine_type"),
          field(img, "score"),
          field(img, "status"),
          field(img, "assessment"),
          field(img, "folder"),
          field(img, "file_id"),
          c == kSynthetic ? "True" : "False",
          c == kSynthetic ? field(img, "source_sample") : std::string(),
      };
      std::string line;
      for (const std::string& v : row) line += (line.empty() ? "" : ",") + CsvField(v);
      const std::string split = img.split.empty() ? "unsplit" : img.split;
      all += line + "," + CsvField(img.split) + "\n";
      std::string& part = per_split[split];
      if (part.empty()) part = header + "\n";
      part += line + "\n";

      ctx.Count(std::string("class.") + kClassNames[c]);
      ctx.Count("machine." + field(img, "machine_type"));
      ctx.Count("split." + split);
      ctx.Count("split." + split + "." + kClassNames[c]);
      ++table[split][kClassNames[c]];
      img.file_name = rel;
      img.id = static_cast<int64_t>(out.images.size()) + 1;
      out.images.push_back(std::move(img));
    }
    MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("echo_annotations_enhanced.csv", all));
    if (per_split_) {
      for (const auto& [split, text] : per_split) {
        MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput(fmt::format("echo_annotations_{}.csv", FileSafeName(split)), text));
      }
    }
    std::string log = fmt::format("{:<10} {:>12} {:>16} {:>18}\n", "split", kClassNames[0], kClassNames[1],
                                  kClassNames[2]);
    for (auto& [split, row] : table) {
      log += fmt::format("{:<10} {:>12} {:>16} {:>18}\n", split, row[kClassNames[0]], row[kClassNames[1]],
                         row[kClassNames[2]]);
    }
    ctx.Log(log);
    ctx.Count("clips", static_cast<int64_t>(out.images.size()));
    return ctx.WriteDataset(out);
  }

 private:
  bool per_split_;
  LinkMode materialize_;
};

Result<std::unique_ptr<Stage>> MakeEchoExport(const StageDecl& d, uint64_t) {
  return std::unique_ptr<Stage>(
      new EchoExportStage(d.params.GetBool("per_split_csv"), MaterializeMode(d.params.GetString("materialize"))));
}

}  // namespace

void RegisterEchoExport(Registry* registry) {
  KindSpec spec;
  spec.name = "echo_export";
  spec.version = 2;  // 2: clips materialised (hard links) by default
  spec.help =
      "the EchoQuality training layout: high_quality/, low_quality/{natural_failures,synthetic_degraded}/ (hard "
      "links or copies) "
      "and echo_annotations_enhanced.csv (the seed's 11 columns, then split)";
  spec.min_inputs = 1;
  spec.max_inputs = 1;
  spec.params = {
      {"per_split_csv", ParamType::kBool, "true", false,
       "also write echo_annotations_<split>.csv per split (the 11 columns)", {}},
      MaterializeParam(),
  };
  registry->Add(StageKind{std::move(spec), MakeEchoExport});
}

}  // namespace medpipe
