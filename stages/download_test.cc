// The download stage end to end: a real loopback HTTP server with injected
// faults, the real runner, the real DICOM conversion; and kill -9 of the real
// binary mid-download.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <signal.h>

#include <chrono>
#include <set>
#include <thread>

#include "dataset/coco_io.h"
#include "runner/item_journal.h"
#include "stages/registry.h"
#include "tests/servers/server_process.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::FetchStatsCounts;
using testing::ReadText;
using testing::RunYaml;
using testing::ServerProcess;
using testing::TempDir;
using testing::WriteText;

const fs::path kCtSmall = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm";  // 5.0 mm
const fs::path kGe = fs::path(MEDPIPE_PUBLIC_DATA) / "ct_head_ge_dcm_qa_ct";  // 4.0, 7.0 mm

struct Report {
  std::map<std::string, int64_t> counters;
  std::vector<std::pair<std::string, std::string>> problems;
  std::string text;
};

Report ReadReport(const fs::path& stage_dir) {
  Report r;
  r.text = ReadText(stage_dir / "report.json");
  rapidjson::Document d;
  d.Parse(r.text.c_str());
  if (d.HasParseError()) return r;
  for (auto it = d["counters"].MemberBegin(); it != d["counters"].MemberEnd(); ++it) {
    r.counters[it->name.GetString()] = it->value.GetInt64();
  }
  for (const auto& p : d["problems"].GetArray()) r.problems.emplace_back(p["item"].GetString(), p["reason"].GetString());
  return r;
}

class DownloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_ / "root";
    fs::create_directories(root_);
    fs::copy_file(kCtSmall, root_ / "ct.dcm");
    for (const char* n : {"01", "16"}) fs::copy_file(kGe / (std::string(n) + ".dcm"), root_ / (std::string("ge") + n + ".dcm"));
    // Many names for one 5.0 mm file: enough items for quotas and kills.
    for (int i = 0; i < 40; ++i) fs::copy_file(kCtSmall, root_ / ("s" + std::to_string(i) + ".dcm"));
  }

  void StartServer(const std::vector<std::string>& extra = {}) {
    auto s = testing::StartFaultServer(root_, extra);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }

  std::string Yaml(const std::string& csv_text, const std::string& params, const std::string& extra_stages = "") {
    WriteText(dir_ / "list.csv", csv_text);
    return "name: t\nworkdir: work\nseed: 1\nstages:\n  - id: dl\n    kind: download\n    params:\n      csv: list.csv\n"
           "      retry_backoff_seconds: 0.05\n      timeout_seconds: 2\n" +
           params + extra_stages;
  }

  std::map<std::string, int> Requests() { return FetchStatsCounts(base_); }

  TempDir dir_;
  fs::path root_;
  std::unique_ptr<ServerProcess> server_;
  std::string base_;
};

TEST_F(DownloadTest, DownloadConvertsCountsAndRecordsFailures) {
  StartServer();
  std::string csv = "image_url,label,patient_id,sop_uid,site\n";
  csv += base_ + "/files/ct.dcm,FP,P1,u1,\"Site, A\"\n";
  csv += base_ + "/fault/500/1/s1.dcm,TN,P2,u2,B\n";  // 500 once, then fine
  csv += base_ + "/fault/404/0/s2.dcm,TN,P3,u3,B\n";
  csv += base_ + "/fault/short/0/s3.dcm,TN,P4,u4,B\n";
  csv += base_ + "/files/ge01.dcm,TN,P5,u5,B\n";  // 4.0 mm: filtered by the 5.0/5.5 thickness filter
  csv += base_ + "/files/ct.dcm?X-Amz-Signature=abcdef123456,TN,P6,u6,B\n";
  csv += "bad,row\n";
  auto r = RunYaml(BuiltinRegistry(), dir_.path(),
                   Yaml(csv, "      id_columns: [patient_id, sop_uid]\n      attribute_columns: [site]\n      retries: 2\n"
                             "      window: brain\n      filter_slice_thickness: [\"5.0\", \"5.5\"]\n"));
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("dl").reason;
  const fs::path out = dir_ / "work/dl";
  Report rep = ReadReport(out);
  EXPECT_EQ(rep.counters["requested"], 6);
  EXPECT_EQ(rep.counters["downloaded"], 3);
  EXPECT_EQ(rep.counters["failed.http_404"], 1);
  EXPECT_EQ(rep.counters["failed.short_body"], 1);
  EXPECT_EQ(rep.counters["filtered.slice_thickness"], 1);
  EXPECT_EQ(rep.counters["csv_rows_malformed"], 1);
  EXPECT_EQ(rep.text.find("abcdef123456"), std::string::npos) << "a URL's query (a signature) must not be written";

  auto req = Requests();
  EXPECT_EQ(req["/fault/404/0/s2.dcm"], 1) << "never retry a 4xx";
  EXPECT_EQ(req["/fault/500/1/s1.dcm"], 2) << "retry a 5xx";
  EXPECT_EQ(req["/fault/short/0/s3.dcm"], 3) << "a short body is retried, then fails";

  bool saw_404 = false, saw_line = false, saw_filtered = false;
  for (const auto& [item, reason] : rep.problems) {
    if (item == base_ + "/fault/404/0/s2.dcm") saw_404 = reason.find("HTTP 404") != std::string::npos;
    if (item == "list.csv:8") saw_line = reason.find("expected 5 fields, found 2") != std::string::npos;
    if (item == base_ + "/files/ge01.dcm") {
      saw_filtered = reason.find("slice thickness 4 mm is not in filter_slice_thickness [5, 5.5]") != std::string::npos;
    }
  }
  EXPECT_TRUE(saw_404) << rep.text;
  EXPECT_TRUE(saw_line) << "a malformed row names its line: " << rep.text;
  EXPECT_TRUE(saw_filtered) << "a filtered object is named with its reason: " << rep.text;

  auto ds = ReadCoco(out / "dataset.json");
  ASSERT_TRUE(ds.ok());
  ASSERT_EQ(ds->images.size(), 3u);
  const Image& first = ds->images[0];
  EXPECT_EQ(first.file_name, "images/P1_u1.png");
  EXPECT_TRUE(fs::exists(out / first.file_name));
  EXPECT_EQ(first.width, 128);
  EXPECT_EQ(first.patient_id, "P1");
  EXPECT_EQ(first.labels, std::vector<std::string>{"FP"});
  EXPECT_EQ(AttrToString(first.attributes.at("feedback_label")), "FP");
  EXPECT_EQ(AttrToString(first.attributes.at("site")), "Site, A");
  EXPECT_EQ(AttrToString(first.attributes.at("url")), base_ + "/files/ct.dcm");
  EXPECT_EQ(std::get<double>(first.attributes.at("slice_thickness")), 5.0);
  EXPECT_EQ(AttrToString(ds->images[2].attributes.at("url")), base_ + "/files/ct.dcm") << "query stripped";
  EXPECT_FALSE(fs::exists(out / ".download-tmp")) << "temp bodies are cleaned up";
}

// The default filters nothing: real 4 mm slices are kept (the hemorrhage
// workflow's 5.0/5.5 mm is written in its own pipeline file).
TEST_F(DownloadTest, DefaultKeepsEverySliceThickness) {
  StartServer();
  std::string csv = "image_url,label,patient_id\n";
  csv += base_ + "/files/ge01.dcm,TN,P5\n";  // 4.0 mm
  auto r = RunYaml(BuiltinRegistry(), dir_.path(), Yaml(csv, ""));
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("dl").reason;
  Report rep = ReadReport(dir_ / "work/dl");
  EXPECT_EQ(rep.counters["downloaded"], 1);
  EXPECT_EQ(rep.counters["filtered.slice_thickness"], 0);
  EXPECT_EQ(rep.counters["images"], 1);
}

TEST_F(DownloadTest, DownloadPriorityQuotaAndGrowingQuotaFetchesOnlyNewItems) {
  StartServer();
  std::string csv = "image_url,label,patient_id\n";
  for (int i = 0; i < 12; ++i) {
    csv += base_ + "/files/s" + std::to_string(i) + ".dcm," + (i % 3 == 2 ? "FP" : "TN") + ",P" + std::to_string(i) + "\n";
  }
  auto params = [](int max) {
    return "      priority: [FP, TN]\n      max_images: " + std::to_string(max) + "\n      fetch_only: true\n";
  };
  auto r = RunYaml(BuiltinRegistry(), dir_.path(), Yaml(csv, params(6)));
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("dl").reason;
  auto ds = ReadCoco(dir_ / "work/dl/dataset.json");
  ASSERT_TRUE(ds.ok());
  std::vector<std::string> names;
  for (const auto& img : ds->images) names.push_back(img.file_name);
  // Every FP (rows 2, 5, 8, 11) first, then TNs in CSV order.
  EXPECT_EQ(names, (std::vector<std::string>{"dicom/s2.dcm", "dicom/s5.dcm", "dicom/s8.dcm", "dicom/s11.dcm",
                                             "dicom/s0.dcm", "dicom/s1.dcm"}));
  EXPECT_EQ(ReadText(dir_ / "work/dl/dicom/s2.dcm"), ReadText(kCtSmall));

  auto r2 = RunYaml(BuiltinRegistry(), dir_.path(), Yaml(csv, params(9)));
  ASSERT_EQ(r2.summary.exit_code, 0);
  EXPECT_EQ(r2.Of("dl").items.resumed, 6);
  auto req = Requests();
  for (const auto& [path, n] : req) EXPECT_EQ(n, 1) << path << " fetched twice";
  EXPECT_EQ(req.size(), 9u);

  // Only FPs.
  auto r3 = RunYaml(BuiltinRegistry(), dir_.path(), Yaml(csv, "      labels: [FP]\n      fetch_only: true\n"));
  ASSERT_EQ(r3.summary.exit_code, 0);
  EXPECT_EQ(ReadReport(dir_ / "work/dl").counters["requested"], 4);
}

// max_images counts images produced: filtered and failed objects do not use
// up the quota, more rows are requested in priority order instead.
TEST_F(DownloadTest, DownloadQuotaCountsImagesProducedNotObjectsRequested) {
  StartServer();
  std::string csv = "image_url,label,patient_id\n";
  csv += base_ + "/files/ge01.dcm,FP,G1\n";         // 4.0 mm: filtered by the thickness filter
  csv += base_ + "/files/ct.dcm,FP,C1\n";           // converted
  csv += base_ + "/fault/404/0/s39.dcm,FP,F1\n";    // failed
  for (int i = 0; i < 10; ++i) csv += base_ + "/files/s" + std::to_string(i) + ".dcm,TN,P" + std::to_string(i) + "\n";
  auto params = [](int max) {
    return "      priority: [FP, TN]\n      filter_slice_thickness: [\"5.0\", \"5.5\"]\n      max_images: " +
           std::to_string(max) + "\n";
  };
  auto r = RunYaml(BuiltinRegistry(), dir_.path(), Yaml(csv, params(5)));
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("dl").reason;
  auto ds = ReadCoco(dir_ / "work/dl/dataset.json");
  ASSERT_TRUE(ds.ok());
  std::vector<std::string> names;
  for (const auto& img : ds->images) names.push_back(img.file_name);
  EXPECT_EQ(names, (std::vector<std::string>{"images/ct.png", "images/s0.png", "images/s1.png", "images/s2.png",
                                             "images/s3.png"}));
  Report rep = ReadReport(dir_ / "work/dl");
  EXPECT_EQ(rep.counters["requested"], 7);
  EXPECT_EQ(rep.counters["produced"], 5);
  EXPECT_EQ(rep.counters["filtered.slice_thickness"], 1);
  EXPECT_EQ(rep.counters["failed.http_404"], 1);
  EXPECT_EQ(rep.counters.count("shortfall"), 0u);
  auto req = Requests();
  EXPECT_EQ(req.count("/files/s4.dcm"), 0u) << "nothing past the quota is requested";

  // A bigger quota resumes the first run's objects and fetches only the new.
  auto r2 = RunYaml(BuiltinRegistry(), dir_.path(), Yaml(csv, params(7)));
  ASSERT_EQ(r2.summary.exit_code, 0) << r2.Of("dl").reason;
  EXPECT_EQ(ReadReport(dir_ / "work/dl").counters["produced"], 7);
  auto req2 = Requests();
  EXPECT_EQ(req2["/files/ct.dcm"], 1);
  EXPECT_EQ(req2["/files/s3.dcm"], 1);
  EXPECT_EQ(req2["/files/s5.dcm"], 1);
  EXPECT_EQ(req2.count("/files/s6.dcm"), 0u);

  // A quota the CSV cannot meet: everything requested, the shortfall said.
  auto r3 = RunYaml(BuiltinRegistry(), dir_.path(), Yaml(csv, params(20)));
  ASSERT_EQ(r3.summary.exit_code, 0) << r3.Of("dl").reason;
  Report rep3 = ReadReport(dir_ / "work/dl");
  EXPECT_EQ(rep3.counters["requested"], 13);
  EXPECT_EQ(rep3.counters["produced"], 11);
  EXPECT_EQ(rep3.counters["shortfall"], 9);
  bool said = false;
  for (const auto& [item, reason] : rep3.problems) said = said || reason.find("9 short") != std::string::npos;
  EXPECT_TRUE(said) << rep3.text;
}

TEST_F(DownloadTest, DownloadSkipsWhatInputDatasetsHold) {
  StartServer();
  std::string csv = "image_url,label,sop_uid\n";
  for (int i = 0; i < 5; ++i) csv += base_ + "/files/s" + std::to_string(i) + ".dcm,TN,uid" + std::to_string(i) + "\n";
  WriteText(dir_ / "first.csv", "image_url,label,sop_uid\n" + base_ + "/files/s0.dcm,TN,uid0\n" + base_ +
                                    "/files/s3.dcm,TN,uid3\n");
  std::string stages =
      "  - id: more\n    kind: download\n    inputs: [dl]\n    params:\n      csv: list.csv\n      fetch_only: true\n";
  std::string yaml = Yaml(csv, "      fetch_only: true\n", stages);
  // The first stage reads first.csv; the second the full list.
  size_t pos = yaml.find("csv: list.csv");
  yaml.replace(pos, 13, "csv: first.csv");
  auto r = RunYaml(BuiltinRegistry(), dir_.path(), yaml);
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("more").reason;
  Report rep = ReadReport(dir_ / "work/more");
  EXPECT_EQ(rep.counters["already_present"], 2);
  EXPECT_EQ(rep.counters["requested"], 3);
  EXPECT_EQ(Requests()["/files/s0.dcm"], 1);
}

TEST_F(DownloadTest, DownloadNamesFromCsvNeverLeaveTheStageFolder) {
  std::string csv = "image_url,label,patient_id\n";
  csv += kCtSmall.string() + ",TN,../../../escape\n";
  csv += "file://" + kCtSmall.string() + ",TN,.hidden/..\n";
  csv += kCtSmall.string() + "?v=2,TN,../../../escape\n";  // same name again: made unique
  auto r = RunYaml(BuiltinRegistry(), dir_.path(), Yaml(csv, "      id_columns: [patient_id]\n      fetch_only: true\n"));
  ASSERT_EQ(r.summary.exit_code, 0) << r.Of("dl").reason;
  auto ds = ReadCoco(dir_ / "work/dl/dataset.json");
  ASSERT_TRUE(ds.ok());
  ASSERT_EQ(ds->images.size(), 2u) << "the third row is a missing local file";  // "ct_small.dcm?v=2" is no file
  for (const auto& img : ds->images) {
    EXPECT_TRUE(IsContainedRelativePath(img.file_name)) << img.file_name;
    EXPECT_EQ(img.file_name.find(".."), std::string::npos) << img.file_name;
    EXPECT_TRUE(fs::exists(dir_ / "work/dl" / img.file_name));
  }
  EXPECT_FALSE(fs::exists(dir_ / "escape.dcm"));
}

TEST_F(DownloadTest, DownloadBadConfigStopsBeforeWork) {
  WriteText(dir_ / "pipeline.yaml", Yaml("image_url\n", "      concurrency: 0\n"));
  auto p = LoadPipeline((dir_ / "pipeline.yaml").string(), BuiltinRegistry());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  auto stages = BuiltinRegistry().Instantiate(*p);
  EXPECT_FALSE(stages.ok());
  EXPECT_NE(stages.status().message().find("concurrency"), std::string::npos);
}

// kill -9 of the real binary mid-download, then a rerun: nothing that had
// finished is fetched twice, and the outputs equal an uninterrupted run's.
TEST_F(DownloadTest, DownloadKilledMidwayResumesWithoutRefetching) {
  StartServer({"--delay-ms", "150"});
  std::string csv = "image_url,label,patient_id\n";
  for (int i = 0; i < 40; ++i) csv += base_ + "/files/s" + std::to_string(i) + ".dcm,TN,P" + std::to_string(i) + "\n";
  const std::string params = "      concurrency: 4\n      window: brain\n";
  // Uninterrupted reference run, in its own folder.
  TempDir ref;
  WriteText(ref / "list.csv", csv);
  {
    std::string yaml = Yaml(csv, params);
    WriteText(ref / "pipeline.yaml", yaml);
    auto done = testing::RunProcess({testing::MedpipeBinary(), "run", (ref / "pipeline.yaml").string()});
    ASSERT_EQ(done.exit_code, 0) << done.err;
  }
  auto before = Requests();

  WriteText(dir_ / "pipeline.yaml", Yaml(csv, params));
  pid_t pid = testing::SpawnProcess({testing::MedpipeBinary(), "run", (dir_ / "pipeline.yaml").string(), "--threads", "2"});
  // Kill once some items are journaled, long before all 40 are (4 at a time, 150 ms each).
  const fs::path journal = dir_ / "work/dl/.medpipe/items.jsonl";
  for (int i = 0; i < 200 && testing::JournalLines(dir_ / "work/dl") < 8; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ::kill(pid, SIGKILL);
  EXPECT_EQ(testing::WaitProcess(pid), 128 + SIGKILL);
  const size_t finished = testing::JournalLines(dir_ / "work/dl");
  ASSERT_GE(finished, 8u);
  ASSERT_LT(finished, 40u) << "the kill came too late to test anything";

  // The items journaled before the kill: finished, never to be fetched again.
  std::set<std::string> finished_urls;
  {
    std::string text = ReadText(journal);
    for (size_t i = 0, j; (j = text.find('\n', i)) != std::string::npos; i = j + 1) {
      ItemRecord rec;
      if (DecodeItemRecord(std::string_view(text).substr(i, j - i), &rec)) finished_urls.insert(rec.key);
    }
  }
  ASSERT_GE(finished_urls.size(), 8u);
  auto at_kill = Requests();

  auto again = testing::RunProcess({testing::MedpipeBinary(), "run", (dir_ / "pipeline.yaml").string()});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  auto after = Requests();
  int refetched = 0;
  for (int i = 0; i < 40; ++i) {
    std::string path = "/files/s" + std::to_string(i) + ".dcm";
    int rerun = after[path] - at_kill[path];
    int total = after[path] - before[path];  // the killed run and the rerun together
    if (finished_urls.count(base_ + path)) {
      EXPECT_EQ(rerun, 0) << path << " had finished before the kill and was fetched again";
      EXPECT_EQ(total, 1) << path;
    } else {
      EXPECT_GE(total, 1) << path;
      EXPECT_LE(total, 2) << path;
      refetched += total - 1;
    }
  }
  // Only bodies in flight (or fetched ahead, not yet converted) at the kill
  // are fetched a second time.
  EXPECT_LE(refetched, 40 - static_cast<int>(finished_urls.size()));
  EXPECT_EQ(testing::Snapshot(dir_ / "work/dl"), testing::Snapshot(ref / "work/dl"));
}

}  // namespace
}  // namespace medpipe
