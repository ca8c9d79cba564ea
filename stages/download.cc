// download: fetch the DICOM objects a CSV lists and convert them to images.
//
// The order of requests is fixed before any transfer: rows whose
// label is not in `labels` are left out, rows whose key (skip_key column)
// is already in an input dataset are counted as already present, duplicate
// URLs are taken once, labels are ordered by `priority` (every row of the
// first label before any of the next, CSV order within a label, unlisted
// labels last). Objects are requested in that order, in rounds, until
// `max_images` images are produced (filtered and failed objects do not count)
// or the list is exhausted (then the shortfall is a problem of the run).
//
// Each requested URL is one item of ctx.RunItems (key: the URL without its
// query, see UrlItemKey; fingerprint: URL, output name and conversion
// params), so a killed download redoes only the items in flight and a rerun
// with a bigger max_images fetches only the new ones. Transfers run on the
// fetcher's libcurl multi loop, ahead of the TBB threads that convert
// (net/prefetch.h); items the journal already holds are never fetched.
//
// Outputs: images/<name>.png per object (images/<name>/p<part>_f<frame>.png
// when a WADO-RS study or series, or a multi-frame file, gives several),
// where <name> comes from id_columns (or the URL's file name), sanitised so
// nothing from the CSV can leave the stage folder; dataset.json; the
// per-item problems and counters in report.json.
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "dicom/convert.h"
#include "net/aws_config.h"
#include "net/credentials.h"
#include "net/fetcher.h"
#include "net/prefetch.h"
#include "net/source.h"
#include "stages/convert_params.h"
#include "stages/registry.h"
#include "util/csv.h"
#include "util/hash.h"
#include "util/strings.h"

namespace medpipe {
namespace {

struct DownloadOptions {
  fs::path csv;
  std::string url_column, label_column, patient_column, skip_key;
  std::vector<std::string> id_columns, attribute_columns, priority, labels;
  int64_t max_images = 0;
  FetchOptions fetch;  // without temp_dir and credentials: those are per run
  fs::path env_file;
  bool anonymous = false;
  std::string auth;
  bool fetch_only = false;
  std::string source;
  ConvertParams conv;
  std::string options_hash;
};

// One requested object.
struct Candidate {
  std::string url;
  std::string key;  // UrlItemKey(url)
  const CsvRow* row = nullptr;
  std::string label;
  std::string name;  // output base name, unique in the run
};

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// Makes a CSV-derived name safe as one path component: only [A-Za-z0-9._-],
// no "..", no leading dot, at most 120 bytes.
std::string SafeName(const std::string& raw) {
  std::string out;
  for (unsigned char c : raw) out.push_back(std::isalnum(c) || c == '.' || c == '_' || c == '-' ? c : '_');
  for (size_t i = 1; i < out.size(); ++i) {
    if (out[i] == '.' && out[i - 1] == '.') out[i - 1] = out[i] = '_';  // no "..", even inside a name
  }
  while (!out.empty() && out[0] == '.') out[0] = '_';
  if (out.size() > 120) out = out.substr(0, 120);
  if (out.empty()) out = "item";
  return out;
}

std::string UrlStem(const std::string& url) {
  std::string base = StripQuery(url);
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string last = base.substr(base.find_last_of('/') == std::string::npos ? 0 : base.find_last_of('/') + 1);
  for (const char* ext : {".dcm", ".DCM", ".dicom"}) {
    size_t n = std::string(ext).size();
    if (last.size() > n && last.compare(last.size() - n, n, ext) == 0) last.resize(last.size() - n);
  }
  return last;
}

// The images a finished item gave (its payload's frames outside skipped
// parts): what counts toward max_images. 0 for a failed item.
int64_t ImagesIn(const ItemResult& r) {
  if (!r.ok) return 0;
  rapidjson::Document doc;
  doc.Parse(r.payload.c_str(), r.payload.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("parts") || !doc["parts"].IsArray()) return 0;
  int64_t n = 0;
  for (const auto& part : doc["parts"].GetArray()) {
    if (part.IsObject() && !part.HasMember("skipped") && part.HasMember("frames") && part["frames"].IsArray()) {
      n += static_cast<int64_t>(part["frames"].Size());
    }
  }
  return n;
}

class DownloadStage : public Stage {
 public:
  explicit DownloadStage(DownloadOptions o) : o_(std::move(o)) {}

  Result<std::string> ExternalFingerprint() const override {
    FileStat st = StatPath(o_.csv);
    if (!st.exists) return Status::NotFound(o_.csv.string() + ": the download CSV does not exist");
    // The CSV's state, not its absolute path (the params say which file,
    // relative to the pipeline), so a moved project stays done.
    return Hasher().Field(fmt::format("{}:{}", st.size, st.mtime_ns)).HexDigest();
  }

  Status Run(StageContext& ctx) const override {
    MEDPIPE_ASSIGN_OR_RETURN(CsvTable table, ReadCsv(o_.csv.string()));
    MEDPIPE_ASSIGN_OR_RETURN(std::vector<Candidate> cands, Select(ctx, table));

    // Credentials are read here, once, and never leave the fetcher: not in
    // params, fingerprints, messages or outputs.
    MEDPIPE_ASSIGN_OR_RETURN(EnvSource env, EnvSource::Load(o_.env_file));
    FetchOptions fo = o_.fetch;
    // The AWS chain (env, profile, config files: net/aws_config.h) only when
    // S3 is used, so that a broken AWS_PROFILE never stops an http download.
    auto is_s3 = [](const Candidate& c) {
      Result<Source> src = ParseSource(c.url);
      return src.ok() && src->kind == SourceKind::kS3;
    };
    if (std::any_of(cands.begin(), cands.end(), is_s3)) {
      MEDPIPE_ASSIGN_OR_RETURN(AwsSettings aws,
                               ResolveAws(env, AwsOverrides{o_.fetch.s3.region, o_.fetch.s3.endpoint, o_.anonymous}));
      ctx.Log(aws.Describe());
      fo.aws = std::move(aws.credentials);
      fo.s3 = aws.s3;
    }
    MEDPIPE_ASSIGN_OR_RETURN(fo.dicomweb_auth, HttpAuthFrom(o_.auth, env));
    // Bodies of a killed run are partial or unclaimed: never counted, dropped.
    fo.temp_dir = ctx.TempDir() / "download";
    std::error_code ec;
    fs::remove_all(fo.temp_dir, ec);

    std::vector<ItemTask> tasks;
    for (const auto& c : cands) {
      tasks.push_back(ItemTask{c.key, Hasher().Field(c.url).Field(c.name).Field(o_.options_hash).HexDigest()});
    }
    const size_t threads = static_cast<size_t>(std::max(1, tbb::this_task_arena::max_concurrency()));
    const size_t window = std::max<size_t>(8, 2 * static_cast<size_t>(fo.concurrency) / threads);

    // max_images counts images produced, not objects requested: rounds of
    // requests in priority order, each asking for as many objects as images
    // are still missing, until the quota is met or the CSV is exhausted. A
    // round depends only on the results of the rounds before it, so the
    // objects requested are the same for any thread count, and a rerun with a
    // bigger quota resumes the earlier rounds from the journal and fetches only
    // what is new. An object that gives several images (a multi-frame file, a
    // WADO-RS series) is kept whole, so it may take the count past the quota.
    std::vector<ItemResult> results;
    int64_t produced = 0, throttled = 0;
    int lowest_concurrency = fo.concurrency;
    size_t next = 0;
    Status status;
    while (next < cands.size() && (o_.max_images == 0 || produced < o_.max_images)) {
      const size_t n = o_.max_images == 0
                           ? cands.size() - next
                           : std::min(cands.size() - next, static_cast<size_t>(o_.max_images - produced));
      std::vector<ItemTask> round_tasks(tasks.begin() + next, tasks.begin() + next + n);
      // Items resumed from the journal, or left to other processes of a
      // cluster run, are never fetched ahead.
      std::vector<bool> round_wanted = ctx.WillRun(round_tasks);
      std::vector<std::string> urls;
      for (size_t i = next; i < next + n; ++i) urls.push_back(cands[i].url);
      Result<std::vector<ItemResult>> round = [&]() -> Result<std::vector<ItemResult>> {
        // A fetcher per round: a queue's end cancels everything on its
        // fetcher (PrefetchQueue::~PrefetchQueue), which must not reach the
        // next round's requests.
        MEDPIPE_ASSIGN_OR_RETURN(std::unique_ptr<Fetcher> fetcher, Fetcher::Create(fo));
        PrefetchQueue queue(fetcher.get(), urls, round_wanted, window);
        Result<std::vector<ItemResult>> items = ctx.RunItems(round_tasks, [&](size_t i, ItemOutput& out) -> Result<std::string> {
          FetchResult r = queue.Take(i, [&] { return ctx.cancelled(); });
          struct Releaser {
            FetchResult* r;
            ~Releaser() { r->Release(); }
          } release{&r};
          if (!r.status.ok()) {
            if (r.status.code() == Status::Code::kIOError || r.status.code() == Status::Code::kCancelled) return r.status;
            // "reason: message", the reason counted as failed.<reason>.
            return Status::Invalid(r.reason + ": " + r.status.message());
          }
          return ProcessItem(cands[next + i], r, out);
        });
        FetchStats st = fetcher->stats();
        throttled += st.throttled;
        if (st.throttled > 0) lowest_concurrency = std::min(lowest_concurrency, st.lowest_concurrency);
        return items;
      }();
      if (!round.ok()) {
        status = round.status();
        break;
      }
      for (auto& res : *round) {
        produced += ImagesIn(res);
        results.push_back(std::move(res));
      }
      next += n;
    }
    if (throttled > 0) {
      ctx.Count("throttled", throttled);
      ctx.Log(fmt::format("the server throttled {} requests (429/503); concurrency went down to {}", throttled,
                          lowest_concurrency));
    }
    fs::remove_all(fo.temp_dir, ec);
    MEDPIPE_RETURN_IF_ERROR(status);
    cands.resize(results.size());  // the objects requested
    ctx.Count("requested", static_cast<int64_t>(cands.size()));
    if (o_.max_images > 0 && produced < o_.max_images) {
      ctx.Count("shortfall", o_.max_images - produced);
      ctx.Problem(o_.csv.filename().string(),
                  fmt::format("shortfall: {} of max_images {} produced, {} short: the CSV has no more rows to request "
                              "({} requested)",
                              produced, o_.max_images, o_.max_images - produced, cands.size()),
                  "shortfall");
    }
    return WriteDataset(ctx, table, cands, results);
  }

 private:
  Result<std::vector<Candidate>> Select(StageContext& ctx, const CsvTable& table) const {
    auto column = [&](const std::string& name) -> Result<int> {
      int c = table.Column(name);
      if (c < 0) {
        return Status::Invalid(fmt::format("{}: no column '{}' (has: {})", o_.csv.string(), name, Join(table.header, ", ")));
      }
      return c;
    };
    MEDPIPE_ASSIGN_OR_RETURN(int url_col, column(o_.url_column));
    int label_col = -1;
    if (!o_.label_column.empty()) {
      MEDPIPE_ASSIGN_OR_RETURN(label_col, column(o_.label_column));
    }
    for (const auto& c : o_.id_columns) MEDPIPE_RETURN_IF_ERROR(column(c).status());
    for (const auto& c : o_.attribute_columns) MEDPIPE_RETURN_IF_ERROR(column(c).status());
    const int key_col = table.Column(o_.skip_key);
    for (const auto& e : table.errors) {
      ctx.Problem(fmt::format("{}:{}", o_.csv.filename().string(), e.line), e.reason + "; row skipped");
      ctx.Count("csv_rows_malformed");
    }

    std::unordered_set<std::string> present;
    for (size_t i = 0; i < ctx.inputs().size(); ++i) {
      MEDPIPE_ASSIGN_OR_RETURN(Dataset ds, ctx.ReadInputDataset(i));
      for (const auto& img : ds.images) {
        if (auto it = img.attributes.find(o_.skip_key); it != img.attributes.end()) present.insert(AttrToString(it->second));
        present.insert(fs::path(img.file_name).stem().string());
      }
    }
    if (!ctx.inputs().empty() && key_col < 0) {
      return Status::Invalid(fmt::format("{}: skip_key '{}' is not a column, so rows cannot be matched to the input "
                                         "datasets (has: {})",
                                         o_.csv.string(), o_.skip_key, Join(table.header, ", ")));
    }

    std::vector<Candidate> cands;
    std::unordered_set<std::string> seen;
    int64_t already = 0, duplicates = 0, other_labels = 0;
    for (const auto& row : table.rows) {
      Candidate c;
      c.url = row.fields[url_col];
      c.row = &row;
      c.label = label_col >= 0 ? row.fields[label_col] : "";
      if (c.url.empty()) {
        ctx.Problem(fmt::format("{}:{}", o_.csv.filename().string(), row.line), "empty " + o_.url_column);
        ctx.Count("csv_rows_without_url");
        continue;
      }
      if (!o_.labels.empty() && std::find(o_.labels.begin(), o_.labels.end(), c.label) == o_.labels.end()) {
        ++other_labels;
        continue;
      }
      if (key_col >= 0 && !row.fields[key_col].empty() && present.count(row.fields[key_col])) {
        ++already;
        continue;
      }
      c.key = UrlItemKey(c.url);
      if (!seen.insert(c.key).second) {
        ++duplicates;
        continue;
      }
      cands.push_back(std::move(c));
    }
    auto rank = [&](const std::string& label) {
      auto it = std::find(o_.priority.begin(), o_.priority.end(), label);
      return static_cast<size_t>(it - o_.priority.begin());
    };
    std::stable_sort(cands.begin(), cands.end(),
                     [&](const Candidate& a, const Candidate& b) { return rank(a.label) < rank(b.label); });
    // Output names: from the id columns (patient column pseudonymised when a
    // salt is set, since names are outputs too), else the URL's file name.
    std::unordered_set<std::string> used;
    for (auto& c : cands) {
      std::vector<std::string> parts;
      for (const auto& col : o_.id_columns) parts.push_back(CellValue(table, *c.row, col));
      std::string name = SafeName(parts.empty() ? UrlStem(c.url) : Join(parts, "_"));
      if (!used.insert(name).second) {
        name += "_" + HashBytes(c.key).substr(0, 8);
        used.insert(name);
      }
      c.name = std::move(name);
    }
    ctx.Count("already_present", already);
    if (duplicates) ctx.Count("duplicate_rows", duplicates);
    if (other_labels) ctx.Count("not_selected_label", other_labels);
    return cands;
  }

  // A CSV cell as written into outputs: the patient column pseudonymised.
  std::string CellValue(const CsvTable& table, const CsvRow& row, const std::string& col) const {
    int c = table.Column(col);
    if (c < 0) return "";
    const std::string& v = row.fields[c];
    return col == o_.patient_column && !o_.conv.salt.empty() ? Pseudonymize(v, o_.conv.salt) : v;
  }

  // Converts (or, fetch_only, keeps) every part of one fetched object.
  Result<std::string> ProcessItem(const Candidate& c, const FetchResult& r, ItemOutput& out) const {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("parts");
    w.StartArray();
    const bool many_parts = r.files.size() > 1;
    if (o_.fetch_only) {
      for (size_t k = 0; k < r.files.size(); ++k) {
        MEDPIPE_ASSIGN_OR_RETURN(std::string bytes, ReadFile(r.files[k].path));
        std::string name = many_parts ? fmt::format("dicom/{}/p{}.dcm", c.name, k) : "dicom/" + c.name + ".dcm";
        MEDPIPE_RETURN_IF_ERROR(out.WriteFile(name, bytes));
        w.StartObject();
        w.Key("patient_id"), w.String("");
        w.Key("frames"), w.StartArray();
        w.StartObject();
        w.Key("file"), w.String(name);
        w.Key("frame"), w.Int(0);
        w.Key("width"), w.Int(0);
        w.Key("height"), w.Int(0);
        w.Key("window"), w.String("");
        w.EndObject();
        w.EndArray();
        w.EndObject();
      }
      w.EndArray();
      w.EndObject();
      return std::string(buf.GetString());
    }

    struct Converted {
      DicomMeta meta;
      std::vector<EncodedFrame> frames;
      std::string skipped;
      std::string why;  // the skip in words, when known
    };
    std::vector<Converted> conv(r.files.size());
    size_t outputs = 0;
    for (size_t k = 0; k < r.files.size(); ++k) {
      const fs::path& file = r.files[k].path;
      if (HasAttributeFilters(o_.conv)) {
        Result<DicomMeta> m = ReadDicomMeta(file);
        if (!m.ok()) return Status::Invalid("not_dicom: " + m.status().message());
        if (std::string why = FilterReason(o_.conv, *m); !why.empty()) {
          conv[k].skipped = why;
          conv[k].why = FilterDetail(o_.conv, *m, why);
          continue;
        }
      }
      Result<std::vector<EncodedFrame>> frames = ConvertDicomFile(file, o_.conv.convert, &conv[k].meta);
      if (!frames.ok()) {
        if (frames.status().code() == Status::Code::kInvalid && conv[k].meta.frames > 0 &&
            !conv[k].meta.has_pixel_data) {
          conv[k].skipped = "skipped.no_pixel_data";
          continue;
        }
        return Status::Invalid("convert: " + frames.status().message());
      }
      conv[k].frames = std::move(frames).value();
      outputs += conv[k].frames.size();
    }
    const std::string ext = o_.conv.convert.format == "jpeg" ? ".jpg" : ".png";
    for (size_t k = 0; k < conv.size(); ++k) {
      w.StartObject();
      if (!conv[k].skipped.empty()) {
        w.Key("skipped"), w.String(conv[k].skipped);
        if (!conv[k].why.empty()) w.Key("why"), w.String(conv[k].why);
        w.EndObject();
        continue;
      }
      WriteDicomMeta(w, conv[k].meta, Pseudonymize(conv[k].meta.patient_id, o_.conv.salt));
      w.Key("frames");
      w.StartArray();
      for (const auto& fr : conv[k].frames) {
        std::string name = outputs == 1 ? "images/" + c.name + ext
                                        : fmt::format("images/{}/p{}_f{}{}", c.name, k, fr.frame, ext);
        MEDPIPE_RETURN_IF_ERROR(out.WriteFile(name, fr.bytes));
        w.StartObject();
        w.Key("file"), w.String(name);
        w.Key("frame"), w.Int(fr.frame);
        w.Key("width"), w.Int(fr.width);
        w.Key("height"), w.Int(fr.height);
        w.Key("window"), w.String(fr.window);
        w.EndObject();
      }
      w.EndArray();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return std::string(buf.GetString());
  }

  Status WriteDataset(StageContext& ctx, const CsvTable& table, const std::vector<Candidate>& cands,
                      const std::vector<ItemResult>& results) const {
    Dataset ds;
    int64_t downloaded = 0;
    std::map<std::string, int64_t> counts;
    for (size_t i = 0; i < cands.size(); ++i) {
      const Candidate& c = cands[i];
      if (!results[i].ok) {
        const std::string& e = results[i].error;
        size_t colon = e.find(':');
        counts["failed." + (colon == std::string::npos ? std::string("other") : e.substr(0, colon))]++;
        continue;
      }
      rapidjson::Document doc;
      doc.Parse(results[i].payload.c_str(), results[i].payload.size());
      if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("parts")) {
        return Status::Corruption(fmt::format("item {}: unreadable payload in the journal", c.key));
      }
      std::string first_skip, first_why;
      bool any_image = false;
      for (const auto& part : doc["parts"].GetArray()) {
        if (part.HasMember("skipped")) {
          if (first_skip.empty()) {
            first_skip = part["skipped"].GetString();
            if (part.HasMember("why")) first_why = part["why"].GetString();
          }
          continue;
        }
        for (const auto& fr : part["frames"].GetArray()) {
          any_image = true;
          Image img;
          img.id = static_cast<int64_t>(ds.images.size()) + 1;
          img.file_name = fr["file"].GetString();
          img.width = fr["width"].GetInt();
          img.height = fr["height"].GetInt();
          std::string csv_patient = CellValue(table, *c.row, o_.patient_column);
          img.patient_id = !csv_patient.empty() ? csv_patient : std::string(part["patient_id"].GetString());
          img.source = o_.source.empty() ? ctx.id() : o_.source;
          if (!c.label.empty()) img.labels.push_back(c.label);
          for (const char* key : {"study_uid", "series_uid", "sop_uid", "modality", "manufacturer", "model"}) {
            if (part.HasMember(key) && part[key].GetStringLength() > 0) img.attributes[key] = std::string(part[key].GetString());
          }
          if (part.HasMember("slice_thickness")) img.attributes["slice_thickness"] = part["slice_thickness"].GetDouble();
          if (fr["window"].GetStringLength() > 0) img.attributes["window"] = std::string(fr["window"].GetString());
          if (!c.label.empty()) img.attributes["feedback_label"] = c.label;
          img.attributes["url"] = StripQuery(c.url);
          for (const auto& col : o_.attribute_columns) img.attributes[col] = CellValue(table, *c.row, col);
          if (std::string key = CellValue(table, *c.row, o_.skip_key); !key.empty() && !img.attributes.count(o_.skip_key)) {
            img.attributes[o_.skip_key] = key;
          }
          ds.images.push_back(std::move(img));
        }
      }
      if (any_image) {
        ++downloaded;
      } else {
        const std::string counter = first_skip.empty() ? "skipped.empty" : first_skip;
        counts[counter]++;
        ctx.Problem(c.key, SkipMessage(counter, first_why));
      }
    }
    for (const auto& [name, n] : counts) ctx.Count(name, n);
    ctx.Count("downloaded", downloaded);
    ctx.Count("images", static_cast<int64_t>(ds.images.size()));
    ctx.Count("produced", static_cast<int64_t>(ds.images.size()));  // what max_images counts
    return ctx.WriteDataset(ds);
  }

  DownloadOptions o_;
};

Result<std::unique_ptr<Stage>> MakeDownload(const StageDecl& d, uint64_t) {
  const Params& p = d.params;
  DownloadOptions o;
  o.csv = p.GetString("csv");
  o.url_column = p.GetString("url_column");
  o.label_column = p.GetString("label_column");
  o.patient_column = p.GetString("patient_column");
  o.id_columns = p.GetStringList("id_columns");
  o.attribute_columns = p.GetStringList("attribute_columns");
  o.priority = p.GetStringList("priority");
  o.labels = p.GetStringList("labels");
  o.max_images = p.GetInt("max_images");
  if (o.max_images < 0) return p.Error("max_images", "must be 0 (no limit) or more");
  o.skip_key = p.GetString("skip_key");
  o.fetch.concurrency = static_cast<int>(p.GetInt("concurrency"));
  if (o.fetch.concurrency < 1 || o.fetch.concurrency > 1024) return p.Error("concurrency", "must be 1..1024");
  o.fetch.timeout_seconds = p.GetFloat("timeout_seconds");
  if (!(o.fetch.timeout_seconds > 0)) return p.Error("timeout_seconds", "must be positive");
  o.fetch.retries = static_cast<int>(p.GetInt("retries"));
  if (o.fetch.retries < 0 || o.fetch.retries > 20) return p.Error("retries", "must be 0..20");
  o.fetch.backoff_initial_seconds = p.GetFloat("retry_backoff_seconds");
  if (!(o.fetch.backoff_initial_seconds >= 0)) return p.Error("retry_backoff_seconds", "must not be negative");
  o.fetch.s3.region = p.GetString("s3_region");
  o.fetch.s3.endpoint = p.GetString("s3_endpoint");
  o.env_file = p.GetString("env_file");
  o.anonymous = p.GetBool("anonymous");
  o.auth = p.GetString("auth");
  o.fetch_only = p.GetBool("fetch_only");
  o.source = p.GetString("source");
  MEDPIPE_ASSIGN_OR_RETURN(o.conv, ParseConvertParams(p));
  o.options_hash = Hasher()
                       .Field(ConvertParamsHash(p))
                       .Field(o.fetch_only ? "fetch_only" : "convert")
                       .Field(o.patient_column)
                       .HexDigest();
  return std::unique_ptr<Stage>(new DownloadStage(std::move(o)));
}

}  // namespace

void RegisterDownload(Registry* registry) {
  KindSpec spec;
  spec.name = "download";
  spec.cluster_items = true;  // a cluster run sends its items to array tasks
  spec.version = 1;
  spec.help = "fetch the DICOM objects a CSV lists (S3, http(s), DICOMweb WADO-RS, file) and convert them";
  spec.min_inputs = 0;
  spec.max_inputs = -1;
  spec.params = {
      {"csv", ParamType::kPath, "", true, "CSV with a URL column, labels and ids (relative to the pipeline file)", {}},
      {"url_column", ParamType::kString, "image_url", false, "column with s3://, http(s)://, file:// URLs or paths", {}},
      {"label_column", ParamType::kString, "label", false, "column with the image-level label (\"\": none)", {}},
      {"patient_column", ParamType::kString, "patient_id", false,
       "column with the patient id (else the DICOM PatientID); pseudonymised with the salt", {}},
      {"id_columns", ParamType::kStringList, "", false,
       "columns joined by '_' into the output file name, e.g. [patient_id, sop_uid]; empty: the URL's file name", {}},
      {"attribute_columns", ParamType::kStringList, "", false, "columns copied into each image's attributes", {}},
      {"priority", ParamType::kStringList, "", false,
       "labels in priority order, e.g. [FP, TN]: every missing row of one before any of the next", {}},
      {"labels", ParamType::kStringList, "", false, "take only rows with these labels; empty: all", {}},
      {"max_images", ParamType::kInt, "0", false, "images to produce: objects are requested in priority order until this many images are converted "
       "(filtered or failed objects do not count) or the CSV is exhausted (0: no limit)", {}},
      {"skip_key", ParamType::kString, "sop_uid", false,
       "column matched to the input datasets' attribute of that name (or file stem): a match is already present", {}},
      {"concurrency", ParamType::kInt, "64", false, "transfers at once", {}},
      {"timeout_seconds", ParamType::kFloat, "120", false, "per attempt", {}},
      {"retries", ParamType::kInt, "4", false, "retries after the first attempt, on 5xx, 429, timeouts and resets", {}},
      {"retry_backoff_seconds", ParamType::kFloat, "0.5", false, "first backoff; doubles per retry, with jitter", {}},
      {"s3_region", ParamType::kString, "", false,
       "region for S3 URLs and their signatures (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1)", {}},
      {"s3_endpoint", ParamType::kString, "", false,
       "S3-compatible store base URL (path-style), e.g. http://minio:9000 (default: AWS_ENDPOINT_URL[_S3], the profile's)", {}},
      {"env_file", ParamType::kPath, "", false,
       ".env with AWS_* variables (keys, AWS_PROFILE, region, endpoint: see the S3 credential chain), "
       "DICOMWEB_USERNAME/DICOMWEB_PASSWORD or DICOMWEB_TOKEN (the environment wins)", {}},
      {"anonymous", ParamType::kBool, "false", false, "never sign S3 requests (else: signed when credentials exist)", {}},
      {"auth", ParamType::kString, "none", false, "DICOMweb auth from the environment/env_file",
       {"none", "basic", "bearer"}},
      {"fetch_only", ParamType::kBool, "false", false, "keep the DICOM files (dicom/<name>.dcm), convert nothing", {}},
      {"source", ParamType::kString, "", false, "source tag for every image (default: the stage id)", {}},
  };
  for (auto& s : ConvertParamSpecs("")) spec.params.push_back(std::move(s));
  registry->Add(StageKind{std::move(spec), MakeDownload});
}

}  // namespace medpipe
