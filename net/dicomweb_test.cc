// DICOMweb WADO-RS against a real Orthanc (Debian's orthanc and
// orthanc-dicomweb) started on loopback ports by the test, with basic auth.
#include <gtest/gtest.h>

#include <set>

#include "dataset/coco_io.h"
#include "dicom/convert.h"
#include "net/fetcher.h"
#include "tests/servers/server_process.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::ServerProcess;
using testing::TempDir;

const char* kOrthanc = "/usr/sbin/Orthanc";
const char* kPlugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";
const char* kUser = "pacsreader";
const char* kPassword = "pacs-Secret-991";
const fs::path kCtSmall = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm";
const fs::path kGe = fs::path(MEDPIPE_PUBLIC_DATA) / "ct_head_ge_dcm_qa_ct";

class DicomWebTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(kOrthanc) || !fs::exists(kPlugin)) return;
    dir_ = new TempDir();
    const int http = testing::FreeLoopbackPort(), dicom = testing::FreeLoopbackPort();
    testing::WriteText(*dir_ / "orthanc.json",
                       "{\n  \"Name\": \"medpipe-test\",\n  \"HttpPort\": " + std::to_string(http) +
                           ",\n  \"DicomPort\": " + std::to_string(dicom) + ",\n  \"StorageDirectory\": \"" +
                           (*dir_ / "storage").string() + "\",\n  \"IndexDirectory\": \"" + (*dir_ / "index").string() +
                           "\",\n  \"RemoteAccessAllowed\": false,\n  \"AuthenticationEnabled\": true,\n"
                           "  \"RegisteredUsers\": {\"" + kUser + "\": \"" + kPassword + "\"},\n"
                           "  \"Plugins\": [\"" + kPlugin + "\"],\n  \"DicomWeb\": {\"Enable\": true, \"Root\": \"/dicom-web/\"}\n}\n");
    base_ = new std::string("http://127.0.0.1:" + std::to_string(http));
    const std::string authed = "http://" + std::string(kUser) + ":" + kPassword + "@127.0.0.1:" + std::to_string(http);
    auto s = ServerProcess::StartAndPoll({kOrthanc, (*dir_ / "orthanc.json").string()}, authed + "/system",
                                         *dir_ / "orthanc.log");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value().release();
    files_ = new std::vector<fs::path>{kGe / "01.dcm", kGe / "04.dcm", kGe / "16.dcm", kCtSmall};
    for (const auto& f : *files_) {
      auto r = testing::HttpPost(authed + "/instances", testing::ReadText(f), "application/dicom");
      ASSERT_EQ(r.status, 200) << f << ": " << r.body;
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete dir_;
    delete base_;
    delete files_;
  }

  void SetUp() override {
    if (!fs::exists(kOrthanc) || !fs::exists(kPlugin)) {
      GTEST_SKIP() << "Orthanc is not installed (" << kOrthanc << ", " << kPlugin
                   << "): apt-get install orthanc orthanc-dicomweb";
    }
    ASSERT_NE(server_, nullptr);
  }

  std::unique_ptr<Fetcher> MakeFetcher(HttpAuth auth) {
    FetchOptions o;
    o.temp_dir = tmp_.path();
    o.retries = 1;
    o.backoff_initial_seconds = 0.01;
    o.dicomweb_auth = std::move(auth);
    auto f = Fetcher::Create(o);
    EXPECT_TRUE(f.ok());
    return std::move(f).value();
  }

  static DicomMeta Meta(const fs::path& f) { return *ReadDicomMeta(f); }
  static std::string Wado(const DicomMeta& m, int depth) {
    std::string url = *base_ + "/dicom-web/studies/" + m.study_uid;
    if (depth >= 2) url += "/series/" + m.series_uid;
    if (depth >= 3) url += "/instances/" + m.sop_uid;
    return url;
  }

  // The SOP instance UIDs of the parts, checking each part is the uploaded file.
  std::multiset<std::string> Sops(const FetchResult& r) {
    std::multiset<std::string> out;
    for (const auto& f : r.files) {
      DicomMeta m = Meta(f.path);
      out.insert(m.sop_uid);
      for (const auto& src : *files_) {
        if (Meta(src).sop_uid == m.sop_uid) {
          EXPECT_EQ(testing::ReadText(f.path).size(), fs::file_size(src)) << "part differs from the uploaded file";
        }
      }
    }
    return out;
  }

  static TempDir* dir_;
  static std::string* base_;
  static ServerProcess* server_;
  static std::vector<fs::path>* files_;
  TempDir tmp_;
};

TempDir* DicomWebTest::dir_ = nullptr;
std::string* DicomWebTest::base_ = nullptr;
ServerProcess* DicomWebTest::server_ = nullptr;
std::vector<fs::path>* DicomWebTest::files_ = nullptr;

TEST_F(DicomWebTest, DicomWebStudySeriesAndInstanceRetrieve) {
  auto f = MakeFetcher(HttpAuth{HttpAuthKind::kBasic, kUser, kPassword, ""});
  const DicomMeta ge01 = Meta(kGe / "01.dcm"), ge04 = Meta(kGe / "04.dcm"), ge16 = Meta(kGe / "16.dcm");
  const std::multiset<std::string> ge_series = {ge01.sop_uid, ge04.sop_uid, ge16.sop_uid};

  FetchResult study = f->Fetch(Wado(ge01, 1));
  ASSERT_TRUE(study.status.ok()) << study.status.ToString();
  EXPECT_EQ(Sops(study), ge_series);
  study.Release();

  FetchResult series = f->Fetch(Wado(ge01, 2));
  ASSERT_TRUE(series.status.ok()) << series.status.ToString();
  EXPECT_EQ(Sops(series), ge_series);
  series.Release();

  FetchResult instance = f->Fetch(Wado(ge16, 3));
  ASSERT_TRUE(instance.status.ok()) << instance.status.ToString();
  EXPECT_EQ(Sops(instance), std::multiset<std::string>{ge16.sop_uid});
  instance.Release();

  FetchResult other = f->Fetch(Wado(Meta(kCtSmall), 3));
  ASSERT_TRUE(other.status.ok()) << other.status.ToString();
  EXPECT_EQ(other.files.size(), 1u);
  other.Release();
}

TEST_F(DicomWebTest, DicomWebWrongPasswordIsRefusedOnceAndNotPrinted) {
  auto f = MakeFetcher(HttpAuth{HttpAuthKind::kBasic, kUser, "wrong-password-77", ""});
  FetchResult r = f->Fetch(Wado(Meta(kCtSmall), 3));
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(r.reason, "http_401");
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.status.message().find("wrong-password-77"), std::string::npos);

  FetchResult missing = MakeFetcher(HttpAuth{HttpAuthKind::kBasic, kUser, kPassword, ""})
                            ->Fetch(*base_ + "/dicom-web/studies/1.2.3.4.5.6.7.8.9");
  EXPECT_FALSE(missing.status.ok());
  EXPECT_EQ(missing.reason, "http_404");
}

TEST_F(DicomWebTest, DicomWebDownloadStageFromPacs) {
  TempDir dir;
  const DicomMeta ge01 = Meta(kGe / "01.dcm");
  testing::WriteText(dir / ".env", std::string("DICOMWEB_USERNAME=") + kUser + "\nDICOMWEB_PASSWORD=" + kPassword + "\n");
  testing::WriteText(dir / "list.csv", "image_url,label,patient_id,case\n" + Wado(ge01, 2) + ",TN,P1,series\n" +
                                           Wado(Meta(kCtSmall), 3) + ",FP,P2,one\n");
  testing::WriteText(dir / "pipeline.yaml",
                     "name: pacs\nworkdir: work\nstages:\n  - id: dl\n    kind: download\n    params:\n"
                     "      csv: list.csv\n      id_columns: [patient_id, case]\n      auth: basic\n"
                     "      env_file: .env\n      filter_slice_thickness: []\n      window: brain\n");
  auto run = testing::RunProcess({testing::MedpipeBinary(), "run", (dir / "pipeline.yaml").string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto ds = ReadCoco(dir / "work/dl/dataset.json");
  ASSERT_TRUE(ds.ok());
  ASSERT_EQ(ds->images.size(), 4u);  // three slices of the series, one instance
  std::set<std::string> names;
  for (const auto& img : ds->images) {
    names.insert(img.file_name);
    EXPECT_TRUE(fs::exists(dir / "work/dl" / img.file_name)) << img.file_name;
    EXPECT_EQ(img.width, img.file_name.find("P2") != std::string::npos ? 128 : 512);
  }
  EXPECT_TRUE(names.count("images/P2_one.png"));
  EXPECT_TRUE(names.count("images/P1_series/p0_f0.png"));
  EXPECT_EQ(run.err.find(kPassword), std::string::npos);
  EXPECT_EQ(testing::ReadText(dir / "work/dl/report.json").find(kPassword), std::string::npos);
}

}  // namespace
}  // namespace medpipe
