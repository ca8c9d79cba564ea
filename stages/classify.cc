// classify: runs a chest X-ray (or any image) classification network over a
// dataset and sorts the images into risk levels (the seed's batch triage,
// with its "future enhancements": configurable risk map, rules, thresholds,
// CSV export, DICOM input).
//
// Items of ctx.RunItems are batches of `batch` consecutive images (in
// dataset order, so a batch's composition, and with it every score, does
// not depend on the thread count). An item decodes and preprocesses its
// images on its TBB worker, then runs one forward pass; forward passes run
// one at a time with libtorch's OpenMP pool sized to the run's threads (see
// infer/model.h). The payload is the raw scores, so changing the decision
// params (risk_map, thresholds, rule) redoes no inference. A killed classify
// redoes only the batches in flight. Afterwards every image is linked as
// <Level>/<NNNNN>_<name> (NNNNN its index in the input dataset), and the
// dataset, results.csv, results.json and summary.json are written.
#include "stages/classify.h"

#include <fmt/format.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <set>

#include "stages/link_images.h"
#include "stages/registry.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {

Result<std::string> ModelFileHash(const fs::path& path) {
  struct Entry {
    uint64_t size;
    int64_t mtime_ns;
    std::string hash;
  };
  static std::mutex mu;
  static std::map<std::string, Entry> cache;
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (ec) return Status::NotFound("model file not found: " + path.string());
  const FileStat target = StatPath(real);
  if (!target.exists || target.is_dir) return Status::NotFound("model file not found: " + path.string());
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(real.string());
    if (it != cache.end() && it->second.size == target.size && it->second.mtime_ns == target.mtime_ns) {
      return it->second.hash;
    }
  }
  MEDPIPE_ASSIGN_OR_RETURN(std::string bytes, ReadFile(real));
  std::string hash = HashBytes(bytes);
  std::lock_guard<std::mutex> lock(mu);
  cache[real.string()] = Entry{target.size, target.mtime_ns, hash};
  return hash;
}

namespace {

// The labels and risk map as YAML defaults.
std::string YamlList(const std::vector<std::string>& items) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + JsonQuote(items[i]);
  return s + "]";
}

struct BatchItem {
  std::vector<size_t> images;  // indices into the input dataset
};

class ClassifyStage : public Stage {
 public:
  ClassifyStage(ClassifierOptions o, std::string params_hash, fs::path source)
      : o_(std::move(o)), params_hash_(std::move(params_hash)), source_(std::move(source)) {}

  Result<std::string> ExternalFingerprint() const override {
    MEDPIPE_ASSIGN_OR_RETURN(std::string model, ModelFileHash(o_.model));
    if (source_.empty()) return model;
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ListedFile> files, ListFiles(source_, true));
    Hasher h;
    h.Field(model);
    for (const auto& f : files) h.Field(f.rel).Field(fmt::format("{}:{}", f.stat.size, f.stat.mtime_ns));
    return h.HexDigest();
  }

  Status Run(StageContext& ctx) const override {
    Dataset in;
    fs::path in_dir;
    if (ctx.inputs().empty()) {
      MEDPIPE_ASSIGN_OR_RETURN(in, ListSource());
      in_dir = source_;
    } else {
      MEDPIPE_ASSIGN_OR_RETURN(in, ctx.ReadInputDataset(0));
      in_dir = ctx.inputs()[0].dir;
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::string model_hash, ModelFileHash(o_.model));

    // Images whose name leaves the input folder are skipped; the rest, in
    // dataset order, make the batches.
    std::vector<size_t> usable;
    for (size_t i = 0; i < in.images.size(); ++i) {
      if (IsContainedRelativePath(in.images[i].file_name)) {
        usable.push_back(i);
      } else {
        ctx.Problem(in.images[i].file_name, "file_name leaves the dataset folder; image skipped");
        ctx.Count("unsafe_file_names");
      }
    }
    std::vector<BatchItem> batches;
    std::vector<ItemTask> tasks;
    for (size_t start = 0; start < usable.size(); start += o_.batch) {
      BatchItem b;
      Hasher h;
      h.Field("classify/1").Field(model_hash).Field(params_hash_);
      for (size_t k = start; k < usable.size() && k < start + o_.batch; ++k) {
        const size_t i = usable[k];
        b.images.push_back(i);
        const fs::path target = in_dir / in.images[i].file_name;
        std::error_code ec;
        const fs::path real = fs::canonical(target, ec);
        const FileStat st = ec ? FileStat{} : StatPath(real);
        h.Field(in.images[i].file_name).Field(fmt::format("{}:{}", st.size, st.mtime_ns));
      }
      tasks.push_back(ItemTask{"batch:" + in.images[b.images[0]].file_name, h.HexDigest()});
      batches.push_back(std::move(b));
    }

    // What the results say of the model (name, SHA-256, the untrained
    // mark), read from the file without loading it.
    Result<ModelInfo> info = InspectModel(o_.model);
    if (!info.ok()) return Status::Failed(info.status().message());
    if (info->untrained) {
      ctx.Log(fmt::format("{}: {} ({})", kUntrainedWarning, info->name, info->file));
    }

    // The model is loaded before the items when any will run here, so a
    // model that does not load, or does not fit the labels, fails the stage
    // once instead of failing every batch; a resumed run whose batches are
    // all in the journal never loads it. A cluster run's controller loads
    // it too, once, as that check before its array tasks are submitted.
    ClassifierOptions options = o_;
    options.threads = tbb::this_task_arena::max_concurrency();
    std::once_flag load_once;
    Result<std::unique_ptr<Classifier>> classifier = Status::Failed("not loaded");
    auto get = [&]() -> Result<const Classifier*> {
      std::call_once(load_once, [&] { classifier = Classifier::Load(options); });
      if (!classifier.ok()) return Status::Failed(classifier.status().message());
      return classifier->get();
    };
    const std::vector<bool> will_run = ctx.WillRun(tasks, "infer");
    if (std::find(will_run.begin(), will_run.end(), true) != will_run.end()) {
      MEDPIPE_RETURN_IF_ERROR(get().status());
    }

    // A model-level failure inside an item (the model stops loading or
    // running) ends the stage after RunItems, like a failed load above.
    std::mutex fatal_mu;
    Status fatal;
    auto model_failure = [&](const Status& s) {
      std::lock_guard<std::mutex> lock(fatal_mu);
      if (fatal.ok()) fatal = s;
      return s;
    };
    std::atomic<int64_t> inferred{0};
    MEDPIPE_ASSIGN_OR_RETURN(
        std::vector<ItemResult> results,
        ctx.RunItems(tasks, [&](size_t b, ItemOutput&) -> Result<std::string> {
          Result<const Classifier*> c = get();
          if (!c.ok()) return model_failure(c.status());
          inferred.fetch_add(1);
          Result<std::string> payload = ClassifyBatch(**c, in, in_dir, batches[b]);
          if (!payload.ok()) return model_failure(payload.status());
          return payload;
        }, "infer"));
    {
      std::lock_guard<std::mutex> lock(fatal_mu);
      if (!fatal.ok()) return Status::Failed(fatal.message());
    }
    // In the log, not in report.json: a resumed run's outputs stay
    // byte-identical to an uninterrupted one's.
    ctx.Log(fmt::format("inferred {} of {} batches ({} from the journal)", inferred.load(), batches.size(),
                        batches.size() - inferred.load()));

    // Decisions, in dataset order.
    std::vector<TriageResult> triage;
    std::vector<size_t> triage_image;
    std::vector<std::pair<int, int>> sizes;  // decoded width and height, per triage entry
    int64_t failed = 0;
    for (size_t b = 0; b < batches.size(); ++b) {
      if (!results[b].ok) {  // the whole batch failed (a problem recorded by RunItems)
        failed += static_cast<int64_t>(batches[b].images.size());
        continue;
      }
      std::vector<std::string> lines;
      size_t pos = 0;
      const std::string& payload = results[b].payload;
      while (pos < payload.size()) {
        size_t end = payload.find('\n', pos);
        if (end == std::string::npos) end = payload.size();
        lines.push_back(payload.substr(pos, end - pos));
        pos = end + 1;
      }
      if (lines.size() != batches[b].images.size()) {
        return Status::Corruption(fmt::format("{}: unreadable journal payload", tasks[b].key));
      }
      for (size_t k = 0; k < lines.size(); ++k) {
        const size_t i = batches[b].images[k];
        const Image& img = in.images[i];
        if (!lines[k].empty() && lines[k][0] == 'E') {
          ctx.Problem(img.file_name, lines[k].substr(1));
          ctx.Count("unreadable_images");
          ++failed;
          continue;
        }
        std::vector<float> scores;
        int width = 0, height = 0;
        MEDPIPE_RETURN_IF_ERROR(ParseLine(lines[k], &width, &height, &scores));
        if (scores.size() != o_.decision.labels.size()) {
          return Status::Corruption(fmt::format("{}: {} scores in the journal", img.file_name, scores.size()));
        }
        TriageResult r;
        r.filename = img.file_name;
        r.index = static_cast<int64_t>(i);
        r.decision = Decide(scores, o_.decision);
        r.saved_path = fmt::format("{}/{}/{:05d}_{}", ctx.id(), r.decision.level, i,
                                   fs::path(img.file_name).filename().string());
        triage.push_back(std::move(r));
        triage_image.push_back(i);
        sizes.emplace_back(width, height);
      }
    }

    std::vector<LinkSpec> links;
    for (size_t t = 0; t < triage.size(); ++t) {
      const Image& img = in.images[triage_image[t]];
      links.push_back(LinkSpec{triage[t].saved_path.substr(ctx.id().size() + 1), in_dir / img.file_name});
    }
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<bool> linked, LinkImages(ctx, links));

    Dataset out;
    out.categories = in.categories;
    auto by_image = in.AnnotationsByImage();
    for (size_t t = 0; t < triage.size(); ++t) {
      if (!linked[t]) continue;
      const Image& src = in.images[triage_image[t]];
      const Decision& d = triage[t].decision;
      Image img = src;
      img.id = static_cast<int64_t>(out.images.size()) + 1;
      img.file_name = links[t].out_rel;
      img.width = sizes[t].first, img.height = sizes[t].second;
      img.attributes["risk_level"] = d.level;
      img.attributes["top_label"] = d.top_label;
      img.attributes["top_probability"] = d.top_prob;
      for (size_t l = 0; l < d.probs.size(); ++l) img.attributes["prob." + o_.decision.labels[l]] = d.probs[l];
      img.labels = d.findings;
      if (auto it = by_image.find(src.id); it != by_image.end()) {
        for (size_t a : it->second) out.AddAnnotation(in.annotations[a], img.id);
      }
      out.images.push_back(std::move(img));
      ctx.Count("level." + d.level);
    }
    ctx.Count("images", static_cast<int64_t>(out.images.size()));
    MEDPIPE_RETURN_IF_ERROR(ctx.WriteDataset(out));
    MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("results.csv", TriageCsv(triage, o_.decision, *info)));
    MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("results.json", TriageJson(triage, o_.decision, *info, ctx.id())));
    MEDPIPE_RETURN_IF_ERROR(ctx.WriteOutput("summary.json", SummaryJson(triage, o_.decision, *info, failed)));
    std::string line = "levels:";
    for (const auto& l : o_.decision.levels) line += fmt::format(" {} {}", l, CountOf(triage, l));
    line += fmt::format(", {} {}", o_.decision.no_finding, CountOf(triage, o_.decision.no_finding));
    if (failed) line += fmt::format(", {} unreadable", failed);
    line += fmt::format(" (model {}, sha256 {})", info->name, info->sha256.substr(0, 12));
    if (info->untrained) line += fmt::format("; {}", kUntrainedWarning);
    ctx.Log(line);
    return Status::OK();
  }

 private:
  // The images of `source` (PNG, JPEG, DICOM by extension or none), sorted
  // by path, as a dataset without sizes.
  Result<Dataset> ListSource() const {
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<ListedFile> files, ListFiles(source_, true));
    Dataset ds;
    for (const auto& f : files) {
      std::string ext = fs::path(f.rel).extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (ext != ".png" && ext != ".jpg" && ext != ".jpeg" && ext != ".dcm" && ext != ".dicom" && !ext.empty()) {
        continue;
      }
      Image img;
      img.id = static_cast<int64_t>(ds.images.size()) + 1;
      img.file_name = f.rel;
      ds.images.push_back(std::move(img));
    }
    return ds;
  }

  static int64_t CountOf(const std::vector<TriageResult>& r, const std::string& level) {
    return std::count_if(r.begin(), r.end(), [&](const TriageResult& t) { return t.decision.level == level; });
  }

  // One line per image: "W H score..." (scores with 9 significant digits,
  // which round-trip a float exactly) or "E<reason>".
  Result<std::string> ClassifyBatch(const Classifier& c, const Dataset& in, const fs::path& in_dir,
                                    const BatchItem& b) const {
    thread_local std::vector<float> tensor, batch;
    batch.clear();
    std::vector<std::string> lines(b.images.size());
    std::vector<std::pair<int, int>> sizes(b.images.size());
    std::vector<size_t> ok;
    for (size_t k = 0; k < b.images.size(); ++k) {
      Status s = c.PrepareFile(in_dir / in.images[b.images[k]].file_name, &tensor, &sizes[k].first, &sizes[k].second);
      if (!s.ok()) {
        std::string reason = s.message();
        for (char& ch : reason) {
          if (ch == '\n' || ch == '\r') ch = ' ';
        }
        lines[k] = "E" + reason;
        continue;
      }
      batch.insert(batch.end(), tensor.begin(), tensor.end());
      ok.push_back(k);
    }
    if (!ok.empty()) {
      MEDPIPE_ASSIGN_OR_RETURN(std::vector<float> scores, c.Scores(batch.data(), static_cast<int>(ok.size())));
      const size_t labels = o_.decision.labels.size();
      for (size_t j = 0; j < ok.size(); ++j) {
        std::string& line = lines[ok[j]];
        line = fmt::format("{} {}", sizes[ok[j]].first, sizes[ok[j]].second);
        for (size_t l = 0; l < labels; ++l) line += fmt::format(" {:.9g}", scores[j * labels + l]);
      }
    }
    std::string payload;
    for (size_t k = 0; k < lines.size(); ++k) payload += (k ? "\n" : "") + lines[k];
    return payload;
  }

  static Status ParseLine(const std::string& line, int* width, int* height, std::vector<float>* scores) {
    const char* p = line.c_str();
    char* end = nullptr;
    *width = static_cast<int>(std::strtol(p, &end, 10));
    p = end;
    *height = static_cast<int>(std::strtol(p, &end, 10));
    if (end == p) return Status::Corruption("unreadable journal payload '" + line.substr(0, 40) + "'");
    p = end;
    while (*p) {
      const float v = std::strtof(p, &end);
      if (end == p) return Status::Corruption("unreadable journal payload '" + line.substr(0, 40) + "'");
      scores->push_back(v);
      p = end;
    }
    return Status::OK();
  }

  ClassifierOptions o_;
  std::string params_hash_;  // of the params the scores depend on
  fs::path source_;          // a folder of images, when the stage has no input
};

Result<std::unique_ptr<Stage>> MakeClassify(const StageDecl& d, uint64_t) {
  MEDPIPE_ASSIGN_OR_RETURN(ClassifierOptions o, ParseClassifyParams(d.params));
  // Scores depend on the model (its bytes are in each item's fingerprint),
  // the labels count and the preprocessing; not on the decision params.
  std::string h;
  for (const char* k : {"labels", "preset", "size", "crop", "channels", "batch"}) {
    h += std::string(k) + "=" + d.params.Canonical()[k] + "\n";
  }
  const fs::path source = d.params.GetString("source");
  if (d.inputs.empty() == source.empty()) {
    return d.params.Error("source", "give either one input stage or a source folder, not both");
  }
  if (!source.empty() && !fs::is_directory(source)) return d.params.Error("source", "not a folder: " + source.string());
  return std::unique_ptr<Stage>(new ClassifyStage(std::move(o), HashBytes(h), source));
}

}  // namespace

Result<ClassifierOptions> ParseClassifyParams(const Params& p) {
  ClassifierOptions o;
  o.model = p.GetString("model");
  if (!IsModelFileName(o.model)) {
    return p.Error("model", "expected a TorchScript (.pt, .pth, .ts) or ONNX (.onnx) file");
  }
  std::error_code ec;
  if (!fs::is_regular_file(o.model, ec)) {
    return p.Error("model", "file not found: " + o.model.string() +
                                " (scripts/make_reference_model.py writes an untrained reference network)");
  }
  // What can be told without loading the network: the file is a model of
  // its format, and the outputs it declares fit the labels.
  Result<ModelInfo> info = InspectModel(o.model);
  if (!info.ok()) return p.Error("model", info.status().message());
  o.batch = static_cast<int>(p.GetInt("batch"));
  if (o.batch < 1 || o.batch > 256) return p.Error("batch", "must be within 1..256");

  Result<PreprocessOptions> pre = PreprocessPreset(p.GetString("preset"));
  if (!pre.ok()) return p.Error("preset", pre.status().message());
  o.preprocess = *pre;
  if (int size = static_cast<int>(p.GetInt("size")); size != 0) o.preprocess.size = size;
  if (o.preprocess.size < 8 || o.preprocess.size > 4096) return p.Error("size", "must be within 8..4096");
  o.preprocess.center_crop = p.GetString("crop") == "center";
  if (int ch = static_cast<int>(p.GetInt("channels")); ch != 0) {
    if (ch != 1 && ch != 3) return p.Error("channels", "must be 1 or 3");
    if (ch != o.preprocess.channels) {
      // Keep the preset's scaling; the mean and std of its first channel
      // apply to every channel.
      o.preprocess.mean.assign(ch, o.preprocess.mean[0]);
      o.preprocess.std.assign(ch, o.preprocess.std[0]);
      o.preprocess.channels = ch;
    }
  }

  DecisionOptions& dec = o.decision;
  dec.labels = p.GetStringList("labels");
  dec.output = p.GetString("output");
  dec.top_k = static_cast<int>(p.GetInt("top_k"));
  dec.levels = p.GetStringList("levels");
  dec.unmapped = p.GetString("unmapped");
  dec.no_finding = p.GetString("no_finding");
  dec.rule = p.GetString("rule");
  dec.threshold = p.GetFloat("threshold");
  if (p.Has("risk_map")) {
    for (const auto& [label, level] : p.GetStringMap("risk_map")) dec.risk_map[label] = level;
  } else {
    // The seed's map, for the labels this model has.
    const std::set<std::string> labels(dec.labels.begin(), dec.labels.end());
    for (const auto& [label, level] : DefaultRiskMap()) {
      if (labels.count(label)) dec.risk_map[label] = level;
    }
  }
  for (const auto& [label, value] : p.GetStringMap("thresholds")) {
    char* end = nullptr;
    const double t = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0') return p.Error("thresholds", fmt::format("'{}': '{}' is not a number", label, value));
    dec.thresholds[label] = t;
  }
  if (p.Has("op_threshs")) {
    const YAML::Node node = p.GetObject("op_threshs");
    if (!node.IsSequence()) return p.Error("op_threshs", "expected a list of numbers (null: no threshold)");
    for (const auto& v : node) {
      if (v.IsNull()) {
        dec.op_threshs.push_back(std::nan(""));
        continue;
      }
      try {
        dec.op_threshs.push_back(v.as<double>());
      } catch (const YAML::Exception&) {
        return p.Error("op_threshs", "expected a list of numbers (null: no threshold)");
      }
    }
  }
  std::vector<std::string> errors;
  if (Status s = CheckDeclaredOutputs(*info, dec.labels.size()); !s.ok()) {
    errors.push_back(p.Error(p.Has("labels") ? "labels" : "model", s.message()).message());
  }
  for (const DecisionError& e : ValidateDecision(dec)) {
    errors.push_back(p.Error(e.param, e.message).message());
  }
  if (!errors.empty()) return Status::Config(Join(errors, "\n"));
  return o;
}

void RegisterClassify(Registry* registry) {
  KindSpec spec;
  spec.name = "classify";
  spec.cluster_items = true;  // a cluster run sends its items to array tasks
  spec.version = 1;
  spec.help =
      "runs an image classification network (TorchScript via libtorch, or ONNX via OpenCV dnn) over a dataset "
      "and sorts the images into risk levels: <Level>/NNNNN_<name> links, results.csv/json, summary.json. "
      "scripts/make_reference_model.py writes an UNTRAINED reference DenseNet121 that stands in for your model";
  spec.min_inputs = 0;
  spec.max_inputs = 1;
  spec.params = {
      {"source", ParamType::kPath, "", false,
       "a folder of PNG/JPEG/DICOM images (recursive), when the stage has no input; DICOMs are rendered with "
       "their own window, MONOCHROME1 inverted", {}},
      {"model", ParamType::kPath, "", true, "TorchScript (.pt) or ONNX (.onnx) file; its bytes are in the fingerprint", {}},
      {"labels", ParamType::kStringList, YamlList(DefaultCxrLabels()), false,
       "the network's outputs in order (default: torchxrayvision's 18 'all' labels)", {}},
      {"output", ParamType::kString, "logits", false, "what the network gives: logits (sigmoid applied) or probabilities",
       {"logits", "probabilities"}},
      {"op_threshs", ParamType::kObject, "", false,
       "per-label operating thresholds mapped to 0.5 (torchxrayvision's op_norm); null for none", {}},
      {"batch", ParamType::kInt, "8", false, "images per forward pass", {}},
      {"preset", ParamType::kString, "xrv", false,
       "xrv: grey, [-1024, 1024], centre crop, 224 area resize; imagenet: RGB mean/std", {"xrv", "imagenet"}},
      {"size", ParamType::kInt, "0", false, "input width and height (0: the preset's, 224)", {}},
      {"crop", ParamType::kString, "center", false, "center: crop to a centred square first; none: stretch",
       {"center", "none"}},
      {"channels", ParamType::kInt, "0", false, "1 or 3 (0: the preset's)", {}},
      {"top_k", ParamType::kInt, "3", false, "how many top predictions to report", {}},
      {"levels", ParamType::kStringList, "[High, Medium, Low]", false, "risk levels, most severe first", {}},
      {"risk_map", ParamType::kStringMap, "", false,
       "label -> level (default the seed's: High = Consolidation, Pneumothorax, Edema, Pneumonia, Lung Lesion; "
       "Medium = Atelectasis, Effusion, Cardiomegaly, Enlarged Cardiomediastinum, Lung Opacity; Low = Fracture)",
       {}},
      {"unmapped", ParamType::kString, "Low", false, "the level of labels not in risk_map", {}},
      {"threshold", ParamType::kFloat, "0", false, "probability a label needs to count (default for every label)", {}},
      {"thresholds", ParamType::kStringMap, "", false, "label -> threshold, overriding `threshold`", {}},
      {"no_finding", ParamType::kString, "no_finding", false, "the level of an image with no label over threshold", {}},
      {"rule", ParamType::kString, "top1", false,
       "top1: the level of the most probable counting label; max_risk: the most severe level among counting labels",
       {"top1", "max_risk"}},
  };
  registry->Add(StageKind{std::move(spec), MakeClassify});
}

}  // namespace medpipe
