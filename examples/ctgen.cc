// Writes synthetic head-CT DICOM series, DCMTK-written, for the demo, the
// convert/download tests and the benchmarks, plus a model-feedback CSV in the
// shape of the seeds' (image_url,label,patient_id,study_uid,sop_uid; label FP
// or TN; image_url a file:// URL of the written file).
//
//   medpipe-ctgen --out DIR [--patients N] [--slices N] [--size PX] [--seed S]
//
// Each patient has one axial series of `slices` slices: int16 stored values
// with RescaleIntercept -1024 / slope 1 (HU = stored - 1024): air, a skull
// ring of ~1000 HU, brain at 30-40 HU with scanner-like noise, and on some
// slices hemorrhage-like blobs of 60-80 HU. SliceThickness cycles through
// 5.0, 5.5, 1.25 and 2.5 mm by patient, so a 5.0/5.5 filter keeps about half.
// Files of even patients end in .dcm, of odd ones have no extension (as PACS
// exports often do). Folder names are case numbers, never patient ids.
//
// Output is byte-for-byte deterministic for a seed: UIDs are derived from the
// seed under the UUID-derived root 2.25 (dcmGenerateUniqueIdentifier uses
// the clock and the host), dates are fixed, and the noise is our own RNG.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "util/fs.h"
#include "util/hash.h"

using namespace medpipe;

namespace {

const double kThickness[] = {5.0, 5.5, 1.25, 2.5};

struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  // Own arithmetic instead of std distributions, whose output may differ
  // between standard libraries.
  double Uniform() { return static_cast<double>(gen() >> 11) * (1.0 / 9007199254740992.0); }
  int Int(int lo, int hi) { return lo + static_cast<int>(Uniform() * (hi - lo + 1)); }
  double Gauss() {  // Box-Muller
    double u = std::max(Uniform(), 1e-300), v = Uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
};

// "2.25.<decimal>" from the first 120 bits of SHA-256(key): a valid
// UUID-derived UID (PS3.5 B.2), deterministic for the key.
std::string DerivedUid(const std::string& key) {
  std::string hex = HashBytes(key).substr(0, 30);
  unsigned __int128 v = 0;
  for (char c : hex) v = v * 16 + static_cast<unsigned>(std::isdigit(c) ? c - '0' : c - 'a' + 10);
  std::string dec;
  do {
    dec.insert(dec.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v != 0);
  return "2.25." + dec;
}

struct Blob {
  double x, y, r, hu;
};

// One slice in stored values (HU + 1024). `z` in [0, 1] runs from the skull
// base to the vertex; the head's cross-section shrinks towards both ends.
std::vector<int16_t> Slice(int size, double z, const std::vector<Blob>& blobs, Rng& rng) {
  std::vector<int16_t> px(static_cast<size_t>(size) * size);
  const double c = (size - 1) / 2.0;
  const double scale = 0.55 + 0.4 * std::sin(3.14159 * (0.15 + 0.8 * z));
  const double ax = 0.36 * size * scale, ay = 0.44 * size * scale;  // outer skull radii
  const double skull = 0.028 * size;
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      double dx = (x - c) / ax, dy = (y - c) / ay;
      double rr = std::sqrt(dx * dx + dy * dy);          // 1 at the outer skull edge
      double depth = (1.0 - rr) * std::min(ax, ay);      // pixels inside the outer edge
      double hu;
      if (rr > 1.0) {
        hu = -1000 + 8 * rng.Gauss();
      } else if (depth < skull) {
        hu = 900 + 250 * std::sin(3.14159 * depth / skull) + 30 * rng.Gauss();
      } else {
        // Grey/white matter contrast in a slow pattern, plus noise.
        hu = 35 + 4 * std::sin(x * 0.05) * std::cos(y * 0.043) + 4 * rng.Gauss();
        for (const auto& b : blobs) {
          double bx = x - b.x, by = y - b.y;
          if (bx * bx + by * by < b.r * b.r) hu = b.hu + 4 * rng.Gauss();
        }
      }
      px[static_cast<size_t>(y) * size + x] =
          static_cast<int16_t>(std::lround(std::clamp(hu, -1024.0, 3071.0) + 1024));
    }
  }
  return px;
}

int Usage() {
  std::fprintf(stderr, "usage: medpipe-ctgen --out DIR [--patients N] [--slices N] [--size PX] [--seed S]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out;
  int patients = 4, slices = 8, size = 512;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (!std::strcmp(argv[i], "--out") && (v = next())) out = v;
    else if (!std::strcmp(argv[i], "--patients") && (v = next())) patients = std::atoi(v);
    else if (!std::strcmp(argv[i], "--slices") && (v = next())) slices = std::atoi(v);
    else if (!std::strcmp(argv[i], "--size") && (v = next())) size = std::atoi(v);
    else if (!std::strcmp(argv[i], "--seed") && (v = next())) seed = std::strtoull(v, nullptr, 10);
    else return Usage();
  }
  if (out.empty() || patients < 1 || slices < 1 || size < 32 || size > 4096) return Usage();

  const fs::path root = fs::absolute(out);
  std::error_code ec;
  fs::create_directories(root / "dicom", ec);
  if (ec) {
    std::fprintf(stderr, "medpipe-ctgen: cannot create %s: %s\n", (root / "dicom").c_str(), ec.message().c_str());
    return 1;
  }
  std::string csv = "image_url,label,patient_id,study_uid,sop_uid\n";
  Rng rng(seed);
  const double spacing = 250.0 / size;  // a 25 cm field of view
  for (int p = 0; p < patients; ++p) {
    const std::string pid = fmt::format("HCT{:06d}", static_cast<int>((seed * 7919 + p * 104729) % 1000000));
    const std::string key = fmt::format("ctgen/{}/{}", seed, p);
    const std::string study = DerivedUid(key + "/study"), series = DerivedUid(key + "/series");
    const std::string frame_of_ref = DerivedUid(key + "/for");
    const double thickness = kThickness[p % 4];
    const std::string dir = fmt::format("case_{:03d}/series_1", p);
    fs::create_directories(root / "dicom" / dir, ec);
    std::vector<Blob> blobs;
    if (p % 3 != 2) {  // two of three patients bleed
      for (int b = rng.Int(1, 3); b > 0; --b) {
        blobs.push_back(Blob{size * (0.35 + 0.3 * rng.Uniform()), size * (0.35 + 0.3 * rng.Uniform()),
                             size * (0.02 + 0.04 * rng.Uniform()), 60.0 + 20 * rng.Uniform()});
      }
    }
    for (int s = 0; s < slices; ++s) {
      const double z = slices == 1 ? 0.5 : static_cast<double>(s) / (slices - 1);
      const bool bleeding = !blobs.empty() && z > 0.3 && z < 0.8;
      std::vector<int16_t> px = Slice(size, z, bleeding ? blobs : std::vector<Blob>{}, rng);
      const std::string sop = DerivedUid(fmt::format("{}/sop/{}", key, s));

      DcmFileFormat ff;
      DcmDataset* ds = ff.getDataset();
      auto put = [&](const DcmTagKey& tag, const std::string& value) { ds->putAndInsertString(tag, value.c_str()); };
      put(DCM_SpecificCharacterSet, "ISO_IR 100");
      put(DCM_ImageType, "ORIGINAL\\PRIMARY\\AXIAL");
      put(DCM_SOPClassUID, UID_CTImageStorage);
      put(DCM_SOPInstanceUID, sop);
      put(DCM_StudyDate, "20240101");
      put(DCM_StudyTime, "120000");
      put(DCM_AccessionNumber, fmt::format("ACC{:06d}", p));
      put(DCM_Modality, "CT");
      put(DCM_Manufacturer, "medpipe-ctgen");
      put(DCM_ManufacturerModelName, "Synthetic Head CT 1");
      put(DCM_PatientName, fmt::format("Synthetic^Patient{:03d}", p));
      put(DCM_PatientID, pid);
      put(DCM_PatientBirthDate, "19700101");
      put(DCM_PatientSex, p % 2 ? "F" : "M");
      put(DCM_BodyPartExamined, "HEAD");
      put(DCM_SliceThickness, fmt::format("{}", thickness));
      put(DCM_KVP, "120");
      put(DCM_StudyInstanceUID, study);
      put(DCM_SeriesInstanceUID, series);
      put(DCM_StudyID, "1");
      put(DCM_SeriesNumber, "1");
      put(DCM_InstanceNumber, std::to_string(s + 1));
      put(DCM_ImagePositionPatient, fmt::format("{:.3f}\\{:.3f}\\{:.3f}", -125.0, -125.0, s * thickness));
      put(DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
      put(DCM_FrameOfReferenceUID, frame_of_ref);
      put(DCM_SliceLocation, fmt::format("{:.3f}", s * thickness));
      put(DCM_SamplesPerPixel, "1");
      put(DCM_PhotometricInterpretation, "MONOCHROME2");
      ds->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(size));
      ds->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(size));
      put(DCM_PixelSpacing, fmt::format("{}\\{}", spacing, spacing));
      ds->putAndInsertUint16(DCM_BitsAllocated, 16);
      ds->putAndInsertUint16(DCM_BitsStored, 16);
      ds->putAndInsertUint16(DCM_HighBit, 15);
      ds->putAndInsertUint16(DCM_PixelRepresentation, 1);
      put(DCM_WindowCenter, "40");
      put(DCM_WindowWidth, "80");
      put(DCM_RescaleIntercept, "-1024");
      put(DCM_RescaleSlope, "1");
      put(DCM_RescaleType, "HU");
      ds->putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16*>(px.data()),
                                  static_cast<unsigned long>(px.size()));

      const std::string rel = fmt::format("{}/IM{:04d}{}", dir, s + 1, p % 2 ? "" : ".dcm");
      const fs::path path = root / "dicom" / rel;
      OFCondition c = ff.saveFile(path.c_str(), EXS_LittleEndianExplicit);
      if (c.bad()) {
        std::fprintf(stderr, "medpipe-ctgen: cannot write %s: %s\n", path.c_str(), c.text());
        return 1;
      }
      // Model feedback: a false positive now and then on a clean slice.
      const char* label = !bleeding && rng.Uniform() < 0.2 ? "FP" : "TN";
      if (!bleeding) csv += fmt::format("file://{},{},{},{},{}\n", path.string(), label, pid, study, sop);
    }
  }
  if (Status s = DefaultDisk()->WriteAtomic(root / "feedback.csv", csv, false); !s.ok()) {
    std::fprintf(stderr, "medpipe-ctgen: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("medpipe-ctgen: %d patients x %d slices of %dx%d in %s\n", patients, slices, size, size,
              (root / "dicom").c_str());
  return 0;
}
