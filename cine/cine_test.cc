// cine/: the degradations against their definitions, and derived DICOM
// files read back with DCMTK and, independently, with pydicom. Uses the real
// public echo cines (RLE palette colour, RGB).
#include <gtest/gtest.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include <cmath>
#include <opencv2/imgproc.hpp>
#include <regex>

#include "cine/cine_io.h"
#include "cine/degrade.h"
#include "tests/test_util.h"

namespace medpipe {
namespace {

using testing::TempDir;

const fs::path kCines = fs::path(MEDPIPE_PUBLIC_DATA) / "us_echo_cine";
const fs::path kPalette = kCines / "US-PAL-8-10x-echo.dcm";
const fs::path kRgb = kCines / "gdcm-US-RGB-8-esopecho.dcm";

Degradation Only(const std::string& kind) {
  Degradation d;
  d.kind = kind;
  return d;
}

double StdDev(const cv::Mat& m) {
  cv::Scalar mean, sd;
  cv::meanStdDev(m.reshape(1), mean, sd);
  return sd[0];
}

TEST(Degrade, NoiseSigmaMeasuredOnAFlatFrameIsTheDrawnFractionOfTheRange) {
  for (double sigma : {0.2, 0.3, 0.4}) {
    Degradation d = Only("noise");
    d.noise = true, d.noise_sigma = sigma, d.noise_seed = 5;
    // A flat frame at mid grey; clipping at 0 and 255 trims the tails, so
    // the expected spread is that of a normal clamped to [-127.5, 127.5].
    cv::Mat flat(256, 256, CV_8UC1, cv::Scalar(128));
    const double s = sigma * 255, lim = 127.5 / s;
    // Var of clamp(Z, -a, a) * s for Z ~ N(0, 1), by numeric integration.
    double var = 0;
    for (double z = -lim; z <= lim; z += 1e-3) var += z * z * std::exp(-z * z / 2) / std::sqrt(2 * CV_PI) * 1e-3;
    var += 2 * lim * lim * 0.5 * std::erfc(lim / std::sqrt(2.0));
    const double expected = std::sqrt(var) * s;
    cv::Mat out = DegradeFrame(d, flat, 0);
    EXPECT_NEAR(StdDev(out), expected, 0.02 * expected) << "sigma " << sigma;
    EXPECT_NEAR(cv::mean(out)[0], 128, 1.0);
  }
}

TEST(Degrade, BlurKernelSizeFromThePointResponse) {
  for (int length : {5, 7, 9}) {
    for (double angle : {0.0, 30.0, 45.0, 90.0, 133.0}) {
      Degradation d = Only("blur");
      d.blur = true, d.blur_kernel = length, d.blur_angle = angle;
      cv::Mat point = cv::Mat::zeros(41, 41, CV_8UC1);
      point.at<uint8_t>(20, 20) = 252;  // each tap gets 252 / length, rounded
      cv::Mat out = DegradeFrame(d, point, 0);
      std::vector<cv::Point> lit;
      cv::findNonZero(out, lit);
      cv::Rect box = cv::boundingRect(lit);
      EXPECT_EQ(static_cast<int>(lit.size()), length) << "length " << length << " angle " << angle;
      EXPECT_EQ(std::max(box.width, box.height), length) << "length " << length << " angle " << angle;
      EXPECT_NEAR(cv::sum(out)[0], 252, length) << "the blur keeps the total intensity";
      // The line runs along the angle: its ends' direction matches.
      if (angle == 0.0) { EXPECT_EQ(box.height, 1); }
      if (angle == 90.0) { EXPECT_EQ(box.width, 1); }
    }
  }
}

TEST(Degrade, ContrastReductionFromTheIntensitySpread) {
  cv::Mat ramp(64, 256, CV_8UC1);
  for (int y = 0; y < ramp.rows; ++y)
    for (int x = 0; x < ramp.cols; ++x) ramp.at<uint8_t>(y, x) = static_cast<uint8_t>(x);
  for (double r : {0.3, 0.5, 0.7}) {
    Degradation d = Only("contrast");
    d.contrast = true, d.contrast_reduction = r;
    cv::Mat out = DegradeFrame(d, ramp, 0);
    EXPECT_NEAR(StdDev(out) / StdDev(ramp), 1 - r, 0.01) << r;
    EXPECT_NEAR(cv::mean(out)[0], cv::mean(ramp)[0], 0.5) << "reduction is toward the mean";
  }
}

TEST(Degrade, DrawsStayInTheirRangesAndCoverEveryKind) {
  DegradeRanges ranges;
  std::map<std::string, int> kinds;
  std::set<int> kernels;
  for (uint64_t s = 0; s < 400; ++s) {
    Degradation d = DrawDegradation(ranges, s);
    ++kinds[d.kind];
    if (d.noise) { EXPECT_TRUE(d.noise_sigma >= 0.2 && d.noise_sigma <= 0.4); }
    if (d.blur) {
      EXPECT_TRUE(d.blur_kernel >= 5 && d.blur_kernel <= 9 && d.blur_kernel % 2 == 1);
      EXPECT_TRUE(d.blur_angle >= 0 && d.blur_angle < 180);
      kernels.insert(d.blur_kernel);
    }
    if (d.contrast) { EXPECT_TRUE(d.contrast_reduction >= 0.3 && d.contrast_reduction <= 0.7); }
    if (d.kind == "combined") { EXPECT_GE(int{d.noise} + int{d.blur} + int{d.contrast}, 2); }
    EXPECT_EQ(DescribeDegradation(d), DescribeDegradation(DrawDegradation(ranges, s))) << "deterministic";
  }
  EXPECT_EQ(kinds.size(), 4u);
  for (const auto& [k, n] : kinds) EXPECT_GT(n, 60) << k;
  EXPECT_EQ(kernels, (std::set<int>{5, 7, 9}));
  DegradeRanges bad;
  bad.noise_min = 0.5, bad.noise_max = 0.2;
  EXPECT_FALSE(ValidateDegradeRanges(bad).ok());
  bad = DegradeRanges{};
  bad.kinds = {"sharpen"};
  EXPECT_FALSE(ValidateDegradeRanges(bad).ok());
}

TEST(Degrade, TheSameDrawOnEveryFrame) {
  // Identical frames with contrast and blur give identical outputs; the noise
  // is a fresh realisation per frame with the same sigma.
  Degradation d = Only("combined");
  d.contrast = true, d.contrast_reduction = 0.5;
  d.blur = true, d.blur_kernel = 7, d.blur_angle = 20;
  cv::Mat frame(64, 64, CV_8UC3);
  cv::randu(frame, 0, 255);
  cv::Mat a = DegradeFrame(d, frame, 0), b = DegradeFrame(d, frame, 9);
  EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0);
  d.noise = true, d.noise_sigma = 0.3, d.noise_seed = 17;
  cv::Mat flat(128, 128, CV_8UC1, cv::Scalar(128));
  cv::Mat n0 = DegradeFrame(d, flat, 0), n1 = DegradeFrame(d, flat, 1);
  EXPECT_GT(cv::norm(n0, n1, cv::NORM_L1), 0) << "noise differs between frames";
  EXPECT_NEAR(StdDev(n0), StdDev(n1), 2.0) << "with the same sigma";
  EXPECT_EQ(cv::norm(n0, DegradeFrame(d, flat, 0), cv::NORM_INF), 0) << "and is seeded";
}

TEST(CineIo, ReadsThePublicPaletteRleAndRgbCines) {
  Result<Cine> pal = ReadCine(kPalette);
  ASSERT_TRUE(pal.ok()) << pal.status().ToString();
  EXPECT_EQ(pal->frames.size(), 10u);
  EXPECT_EQ(pal->source_photometric, "PALETTE COLOR");
  EXPECT_EQ(pal->photometric, "RGB");
  EXPECT_EQ(pal->transfer_syntax, "1.2.840.10008.1.2.5");
  EXPECT_EQ(pal->frames[0].cols, 600);
  EXPECT_EQ(pal->frames[0].rows, 430);
  EXPECT_EQ(pal->frames[0].type(), CV_8UC3);
  Result<Cine> rgb = ReadCine(kRgb);
  ASSERT_TRUE(rgb.ok()) << rgb.status().ToString();
  EXPECT_EQ(rgb->frames.size(), 1u);
  EXPECT_EQ(rgb->frames[0].cols, 256);
  EXPECT_EQ(rgb->frames[0].rows, 120);

  EXPECT_EQ(ReadCine("/nonexistent/x.dcm").status().code(), Status::Code::kNotFound);
  TempDir dir;
  testing::WriteText(dir / "bad.dcm", "not dicom at all");
  EXPECT_EQ(ReadCine(dir / "bad.dcm").status().code(), Status::Code::kInvalid);
}

// Degrades a real cine, writes it, and checks the file with DCMTK and pydicom.
class DerivedFile : public ::testing::Test {
 protected:
  std::string Write(const fs::path& source, const std::string& out_name, uint64_t seed) {
    Result<Cine> cine = ReadCine(source);
    EXPECT_TRUE(cine.ok()) << cine.status().ToString();
    Degradation d = DrawDegradation(DegradeRanges{}, seed);
    std::vector<cv::Mat> frames;
    for (size_t f = 0; f < cine->frames.size(); ++f) frames.push_back(DegradeFrame(d, cine->frames[f], f));
    DerivedInfo info;
    info.sop_instance_uid = DerivedUid(out_name + "sop");
    info.series_instance_uid = DerivedUid(out_name + "series");
    info.derivation_description = "medpipe degrade " + DescribeDegradation(d);
    Result<std::string> bytes = WriteDerivedCine(*cine, frames, info);
    EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
    testing::WriteText(dir_ / out_name, *bytes);
    source_uid_ = cine->sop_instance_uid;
    return *bytes;
  }
  TempDir dir_;
  std::string source_uid_;
};

TEST_F(DerivedFile, PaletteCineBecomesRgbWithEveryFrameNewUidsAndItsSource) {
  Write(kPalette, "pal.dcm", 3);
  DcmFileFormat ff;
  ASSERT_TRUE(ff.loadFile((dir_ / "pal.dcm").c_str()).good());
  DcmDataset* ds = ff.getDataset();
  OFString s;
  ds->findAndGetOFString(DCM_PhotometricInterpretation, s);
  EXPECT_EQ(s, "RGB");
  ds->findAndGetOFString(DCM_NumberOfFrames, s);
  EXPECT_EQ(s, "10");
  ds->findAndGetOFStringArray(DCM_ImageType, s);
  EXPECT_EQ(std::string(s.c_str()).rfind("DERIVED\\SECONDARY", 0), 0u) << s;
  ds->findAndGetOFString(DCM_DerivationDescription, s);
  EXPECT_NE(std::string(s.c_str()).find("medpipe degrade"), std::string::npos);
  DcmItem* item = nullptr;
  ASSERT_TRUE(ds->findAndGetSequenceItem(DCM_SourceImageSequence, item, 0).good());
  item->findAndGetOFString(DCM_ReferencedSOPInstanceUID, s);
  EXPECT_EQ(std::string(s.c_str()), source_uid_);
  EXPECT_FALSE(ds->tagExists(DCM_RedPaletteColorLookupTableData)) << "the palette went with the RGB conversion";
  Result<Cine> back = ReadCine(dir_ / "pal.dcm");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->frames.size(), 10u);
  EXPECT_EQ(back->patient_id, ReadCine(kPalette)->patient_id);
  EXPECT_NE(back->sop_instance_uid, source_uid_);
  EXPECT_NE(back->series_instance_uid, ReadCine(kPalette)->series_instance_uid);
}

TEST_F(DerivedFile, SameSeedSameBytesDifferentSeedDifferentPixels) {
  std::string a = Write(kRgb, "a.dcm", 11), b = Write(kRgb, "a.dcm", 11), c = Write(kRgb, "a.dcm", 12);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// pydicom, an independent reader: frames, size, photometric, UIDs valid and
// new, the source referenced, and the source's patient/study attributes kept.
TEST_F(DerivedFile, PydicomReadsTheDerivedFiles) {
  Write(kPalette, "pal.dcm", 4);
  const std::string pal_uid = source_uid_;
  Write(kRgb, "rgb.dcm", 5);
  const std::string script = R"PY(
import sys, re, pydicom
uid = re.compile(r'^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$')
for path, source in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):
    d = pydicom.dcmread(path)
    s = pydicom.dcmread(source)
    px = d.pixel_array
    frames = int(getattr(d, 'NumberOfFrames', 1))
    shape = (frames, d.Rows, d.Columns, 3) if frames > 1 else (d.Rows, d.Columns, 3)
    assert px.shape == shape, (px.shape, shape)
    assert d.PhotometricInterpretation == 'RGB'
    assert (d.Rows, d.Columns) == (s.Rows, s.Columns)
    assert int(getattr(s, 'NumberOfFrames', 1)) == frames
    for u in (d.SOPInstanceUID, d.SeriesInstanceUID):
        assert uid.match(u) and len(u) <= 64, u
    assert d.SOPInstanceUID != s.SOPInstanceUID and d.SeriesInstanceUID != s.SeriesInstanceUID
    assert d.SourceImageSequence[0].ReferencedSOPInstanceUID == s.SOPInstanceUID
    assert d.SourceImageSequence[0].ReferencedSOPClassUID == s.SOPClassUID
    assert d.SOPClassUID == s.SOPClassUID and d.StudyInstanceUID == s.StudyInstanceUID
    assert d.ImageType[0] == 'DERIVED'
    assert 'degrade' in d.DerivationDescription
    # Every attribute of the source stays, equal, except what a derived
    # 8-bit RGB instance must change.
    changed = {'SOPInstanceUID', 'SeriesInstanceUID', 'ImageType', 'DerivationDescription', 'SourceImageSequence',
               'PhotometricInterpretation', 'SamplesPerPixel', 'PlanarConfiguration', 'NumberOfFrames', 'Rows',
               'Columns', 'BitsAllocated', 'BitsStored', 'HighBit', 'PixelRepresentation', 'PixelData',
               'SmallestImagePixelValue', 'LargestImagePixelValue', 'PixelPaddingValue', 'PaletteColorLookupTableUID'}
    kept = 0
    for el in s:
        kw = el.keyword
        if not kw or kw in changed or 'PaletteColorLookupTable' in kw:
            continue
        assert kw in d, kw
        assert d[kw].value == el.value, kw
        kept += 1
    assert kept >= 10, kept
print('ok')
)PY";
  testing::WriteText(dir_ / "check.py", script);
  testing::ProcessResult r = testing::RunProcess(
      {"/usr/bin/python3", (dir_ / "check.py").string(), (dir_ / "pal.dcm").string(), kPalette.string(),
       (dir_ / "rgb.dcm").string(), kRgb.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "ok\n");
  (void)pal_uid;
}

// The palette clip's frames as DCMTK decodes them, written unchanged, against
// pydicom's own RLE decoding and palette application (16-bit LUT entries,
// scaled to 8 bits): the same RGB within one level.
TEST(CineIo, PaletteToRgbAgreesWithPydicom) {
  TempDir dir;
  Result<Cine> cine = ReadCine(kPalette);
  ASSERT_TRUE(cine.ok());
  DerivedInfo info{DerivedUid("id-sop"), DerivedUid("id-series"), "identity", ""};
  Result<std::string> bytes = WriteDerivedCine(*cine, cine->frames, info);
  ASSERT_TRUE(bytes.ok());
  testing::WriteText(dir / "rgb.dcm", *bytes);
  testing::WriteText(dir / "check.py", R"PY(
import sys, numpy as np, pydicom
from pydicom.pixel_data_handlers.util import apply_color_lut
src = pydicom.dcmread(sys.argv[1]); out = pydicom.dcmread(sys.argv[2])
ref = apply_color_lut(src.pixel_array, src).astype(np.float64)
if ref.max() > 255: ref = ref / 257.0
diff = np.abs(out.pixel_array.astype(np.float64) - ref).max()
print(out.pixel_array.shape, diff)
sys.exit(0 if diff <= 1.0 else 1)
)PY");
  testing::ProcessResult r =
      testing::RunProcess({"/usr/bin/python3", (dir / "check.py").string(), kPalette.string(), (dir / "rgb.dcm").string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST(CineIo, DerivedUidsAreValidAndDistinct) {
  std::regex uid(R"(^2\.25\.[1-9][0-9]*$|^2\.25\.0$)");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string u = DerivedUid("k" + std::to_string(i));
    EXPECT_TRUE(std::regex_match(u, uid)) << u;
    EXPECT_LE(u.size(), 64u);
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

}  // namespace
}  // namespace medpipe
