// The DICOM sniff on real files: every file DCMTK reads (pydicom's test
// files, the public CT and X-ray samples, with and without a preamble) is
// "maybe DICOM" even without its extension; the LICENSE, README and text
// files around them are not.
#include "dicom/sniff.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace medpipe {
namespace {

std::string Head(const fs::path& p) { return testing::ReadText(p).substr(0, 132); }

TEST(DicomSniff, EveryFileDcmtkReadsIsMaybeDicomWithoutItsExtension) {
  int dicom = 0, no_preamble = 0;
  for (fs::path root : {fs::path("/usr/lib/python3/dist-packages/pydicom/data"), fs::path(MEDPIPE_PUBLIC_DATA)}) {
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (!e.is_regular_file() || e.file_size() > (64u << 20)) continue;
      DcmFileFormat ff;
      if (ff.loadFile(e.path().c_str(), EXS_Unknown, EGL_noChange, 256, ERM_autoDetect).bad()) continue;
      ++dicom;
      std::string head = Head(e.path());
      if (head.size() < 132 || head.substr(128, 4) != "DICM") ++no_preamble;
      EXPECT_TRUE(HeadLooksLikeDicom(head)) << e.path();
    }
  }
  EXPECT_GT(dicom, 100);
  EXPECT_GE(no_preamble, 3);  // rtstruct.dcm, ExplVR_LitEndNoMeta.dcm, ExplVR_BigEndNoMeta.dcm, ...
}

TEST(DicomSniff, TextAndOtherFilesAreNotDicom) {
  const fs::path pyd = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
  const fs::path ge = fs::path(MEDPIPE_PUBLIC_DATA) / "ct_head_ge_dcm_qa_ct";
  for (fs::path p : {ge / "LICENSE", ge / "README.md", pyd / "README.txt", pyd / "rtplan.dump", pyd / "test1.json",
                     pyd / "zipMR.gz", pyd / "dicomdirtests/TINY_ALPHA/README"}) {
    EXPECT_FALSE(MaybeDicom(p)) << p;
  }
  for (fs::path p : {ge / "01.dcm", pyd / "rtstruct.dcm", pyd / "ExplVR_BigEndNoMeta.dcm", pyd / "CT_small.dcm"}) {
    EXPECT_TRUE(MaybeDicom(p)) << p;
  }
  testing::TempDir dir;
  // Raw datasets without preamble or extension, as old tools wrote them.
  fs::copy_file(pyd / "rtstruct.dcm", dir / "IM0001");
  fs::copy_file(pyd / "ExplVR_LitEndNoMeta.dcm", dir / "1.2.840.10008.5");
  fs::copy_file(ge / "08.dcm", dir / "slice8");
  for (const char* name : {"IM0001", "1.2.840.10008.5", "slice8"}) EXPECT_TRUE(MaybeDicom(dir / name)) << name;
  // A DICOM extension decides: the reader reports what is wrong with it.
  testing::WriteText(dir / "garbage.dcm", std::string(300, 'x'));
  EXPECT_TRUE(MaybeDicom(dir / "garbage.dcm"));
  // Empty and unreadable files go to the reader too.
  testing::WriteText(dir / "empty", "");
  EXPECT_TRUE(MaybeDicom(dir / "empty"));
  EXPECT_TRUE(MaybeDicom(dir / "missing"));
  testing::WriteText(dir / "notes", "Copyright (c) 2018 the authors\n");
  testing::WriteText(dir / "checksums.md5", "d41d8cd98f00b204e9800998ecf8427e  01.dcm\n");
  testing::WriteText(dir / "png", std::string("\x89PNG\r\n\x1a\n", 8) + std::string(200, '\0'));
  for (const char* name : {"notes", "checksums.md5", "png"}) EXPECT_FALSE(MaybeDicom(dir / name)) << name;
}

}  // namespace
}  // namespace medpipe
