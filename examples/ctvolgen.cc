// Writes synthetic chest-CT volumes in CT-RATE's layout, for the demo, the
// ctprep/folds tests and the benchmarks:
//
//   medpipe-ctvolgen --out DIR [--patients N] [--size PX] [--slices N]
//                    [--dicom-patients N] [--seed S]
//
//   DIR/volumes/train_<patient>_<scan>_<recon>.nii.gz  int16 stored values
//   DIR/metadata.csv   VolumeName,RescaleSlope,RescaleIntercept,XYSpacing,ZSpacing
//   DIR/labels.csv     VolumeName + CT-RATE's 18 abnormality columns (0/1)
//   DIR/dicom/train_<patient>_a_3/<k>.dcm  the first `dicom-patients`
//                      patients' first scan again as a third
//                      "reconstruction", a DICOM series (a labels row too)
//
// Every third patient has a second scan (b), every fourth a second
// reconstruction (2) of each scan. A volume is a body ellipse of soft tissue
// (~40 HU) on a table, two lungs (~-850 HU), a spine (~700 HU) and, for some
// positive labels, a visible finding (a nodule, an effusion, calcified
// arteries). Stored values are (HU - intercept) / slope with slope 1 and
// intercept -1024 (every fifth volume slope 2, intercept -2048); the NIfTI
// header carries the same scaling as the metadata CSV. Output is byte-for-byte
// deterministic for a seed (own RNG arithmetic, fixed UIDs).
#include <fmt/format.h>
#include <nifti1_io.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "util/fs.h"
#include "volume/dicom_write.h"

using namespace medpipe;

namespace {

const char* kLabels[18] = {"Medical material", "Arterial wall calcification", "Cardiomegaly", "Pericardial effusion",
                           "Coronary artery wall calcification", "Hiatal hernia", "Lymphadenopathy", "Emphysema",
                           "Atelectasis", "Lung nodule", "Lung opacity", "Pulmonary fibrotic sequela",
                           "Pleural effusion", "Mosaic attenuation pattern", "Peribronchial thickening",
                           "Consolidation", "Bronchiectasis", "Interlobular septal thickening"};
// Approximate CT-RATE prevalences of the labels above.
const double kPrevalence[18] = {0.10, 0.28, 0.11, 0.07, 0.25, 0.14, 0.25, 0.20, 0.26,
                                0.45, 0.37, 0.27, 0.12, 0.08, 0.10, 0.17, 0.10, 0.07};

struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  double Uniform() { return static_cast<double>(gen() >> 11) * (1.0 / 9007199254740992.0); }
  double Gauss() {
    double u = std::max(Uniform(), 1e-300), v = Uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
};

// HU volume (x fastest) of one scan; `recon` changes only the noise.
std::vector<float> Phantom(int n, int nz, const std::vector<int>& labels, Rng& rng) {
  std::vector<float> hu(static_cast<size_t>(n) * n * nz, -1000.0f);
  const double c = (n - 1) / 2.0;
  for (int z = 0; z < nz; ++z) {
    double t = static_cast<double>(z) / std::max(1, nz - 1);
    double lung = 0.25 + 0.08 * std::sin(3.14159 * t);
    for (int y = 0; y < n; ++y) {
      for (int x = 0; x < n; ++x) {
        double u = (x - c) / n, v = (y - c) / n;
        float val = -1000;
        if (v > 0.40 && v < 0.44) val = 200;                                  // table
        if ((u * u) / (0.44 * 0.44) + (v * v) / (0.32 * 0.32) < 1) val = 40;  // body
        for (double side : {-0.2, 0.2}) {
          if (std::pow((u - side) / 0.15, 2) + std::pow((v + 0.02) / lung, 2) < 1) val = -850;
        }
        if (std::pow(u / 0.06, 2) + std::pow((v - 0.2) / 0.06, 2) < 1) val = 700;  // spine
        if (labels[9] && std::pow((u - 0.2) / 0.03, 2) + std::pow(v / 0.03, 2) + std::pow((t - 0.5) / 0.1, 2) < 1) {
          val = 30;  // lung nodule
        }
        if (labels[12] && val == -850 && v > 0.12) val = 10;                         // pleural effusion
        if (labels[1] && std::pow(u / 0.035, 2) + std::pow((v + 0.05) / 0.035, 2) < 1) val = 400;  // calcified aorta
        if (labels[7] && val == -850) val = -950;                                    // emphysema
        hu[(static_cast<size_t>(z) * n + y) * n + x] = val + static_cast<float>(12 * rng.Gauss());
      }
    }
  }
  return hu;
}

void WriteNifti(const fs::path& path, const std::vector<int16_t>& stored, int n, int nz, double xy, double zs,
                double slope, double inter) {
  int dims[8] = {3, n, n, nz, 1, 1, 1, 1};
  nifti_image* nim = nifti_make_new_nim(dims, DT_INT16, 0);
  nim->data = std::malloc(stored.size() * 2);
  std::memcpy(nim->data, stored.data(), stored.size() * 2);
  nim->dx = nim->pixdim[1] = static_cast<float>(xy);
  nim->dy = nim->pixdim[2] = static_cast<float>(xy);
  nim->dz = nim->pixdim[3] = static_cast<float>(zs);
  nim->scl_slope = static_cast<float>(slope);
  nim->scl_inter = static_cast<float>(inter);
  nim->qform_code = 1;
  nim->qfac = 1;
  nim->xyz_units = NIFTI_UNITS_MM;
  nim->nifti_type = NIFTI_FTYPE_NIFTI1_1;
  nifti_set_filenames(nim, path.c_str(), 0, 1);
  nifti_image_write(nim);
  nifti_image_free(nim);
}

}  // namespace

int main(int argc, char** argv) {
  std::string out;
  int patients = 12, size = 96, slices = 48, dicom_patients = 2;
  uint64_t seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--out") out = argv[i + 1];
    else if (a == "--patients") patients = std::atoi(argv[i + 1]);
    else if (a == "--size") size = std::atoi(argv[i + 1]);
    else if (a == "--slices") slices = std::atoi(argv[i + 1]);
    else if (a == "--dicom-patients") dicom_patients = std::atoi(argv[i + 1]);
    else if (a == "--seed") seed = std::strtoull(argv[i + 1], nullptr, 10);
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (out.empty() || patients < 1 || size < 16 || slices < 4) {
    std::fprintf(stderr, "usage: medpipe-ctvolgen --out DIR [--patients N] [--size PX>=16] [--slices N>=4] "
                         "[--dicom-patients N] [--seed S]\n");
    return 2;
  }
  nifti_set_debug_level(0);
  fs::path root(out);
  fs::create_directories(root / "volumes");
  std::string meta = "VolumeName,RescaleSlope,RescaleIntercept,XYSpacing,ZSpacing\n";
  std::string labels_csv = "VolumeName";
  for (const char* l : kLabels) labels_csv += std::string(",") + l;
  labels_csv += "\n";
  Rng rng(seed);
  int volume_index = 0;
  for (int p = 1; p <= patients; ++p) {
    std::vector<int> patient_labels(18);
    for (int l = 0; l < 18; ++l) patient_labels[l] = rng.Uniform() < kPrevalence[l];
    int scans = p % 3 == 0 ? 2 : 1, recons = p % 4 == 0 ? 2 : 1;
    for (int s = 0; s < scans; ++s) {
      std::vector<int> labels = patient_labels;
      if (s == 1) labels[static_cast<size_t>(rng.Uniform() * 18)] ^= 1;  // a follow-up scan differs a little
      double xy = 0.6 + 0.05 * static_cast<int>(rng.Uniform() * 6), zs = 1.0 + 0.5 * static_cast<int>(rng.Uniform() * 4);
      for (int r = 1; r <= recons; ++r) {
        std::string name = fmt::format("train_{}_{}_{}", p, static_cast<char>('a' + s), r);
        double slope = volume_index % 5 == 4 ? 2.0 : 1.0, inter = slope == 2.0 ? -2048 : -1024;
        ++volume_index;
        std::vector<float> hu = Phantom(size, slices, labels, rng);
        std::vector<int16_t> stored(hu.size());
        for (size_t i = 0; i < hu.size(); ++i) {
          stored[i] = static_cast<int16_t>(std::clamp(std::lround((hu[i] - inter) / slope), -32768L, 32767L));
        }
        WriteNifti(root / "volumes" / (name + ".nii.gz"), stored, size, slices, xy, zs, slope, inter);
        meta += fmt::format("{}.nii.gz,{},{},\"[{}, {}]\",{}\n", name, slope, inter, xy, xy, zs);
        labels_csv += name + ".nii.gz";
        for (int v : labels) labels_csv += v ? ",1" : ",0";
        labels_csv += "\n";
        if (p <= dicom_patients && s == 0 && r == 1) {
          // The same scan as a DICOM series: one file per axial slice, HU
          // stored with intercept -1024, positions 1 step apart along z. The
          // NIfTI's voxel axes grow towards R, A, S (identity qform); DICOM's
          // usual axial slice has its columns towards L and rows towards P,
          // so pixel (c, r) is NIfTI voxel (n-1-c, n-1-r) and the first
          // pixel lies at that voxel's place in LPS coordinates.
          const std::string dname = fmt::format("train_{}_a_3", p);
          std::string key = fmt::format("ctvolgen:{}:{}", seed, dname);
          labels_csv += dname;
          for (int v : labels) labels_csv += v ? ",1" : ",0";
          labels_csv += "\n";
          for (int z = 0; z < slices; ++z) {
            DicomSliceSpec d;
            d.patient_id = fmt::format("train_{}", p);
            d.study_uid = UidFromKey(key + ":study");
            d.series_uid = UidFromKey(key + ":series");
            d.frame_of_reference_uid = UidFromKey(key + ":for");
            d.sop_uid = UidFromKey(fmt::format("{}:sop:{}", key, z));
            d.instance = z + 1;
            d.rows = d.cols = size;
            d.spacing_row = d.spacing_col = xy;
            d.position = {-(size - 1) * xy, -(size - 1) * xy, z * zs};
            d.intercept = -1024;
            d.stored.resize(static_cast<size_t>(size) * size);
            for (int r = 0; r < size; ++r) {
              for (int c = 0; c < size; ++c) {
                size_t src = (static_cast<size_t>(z) * size + (size - 1 - r)) * size + (size - 1 - c);
                d.stored[static_cast<size_t>(r) * size + c] = static_cast<int16_t>(std::lround(hu[src] + 1024));
              }
            }
            Status st = WriteDicomSlice(root / "dicom" / dname / fmt::format("{:04d}.dcm", z), d);
            if (!st.ok()) {
              std::fprintf(stderr, "%s\n", st.ToString().c_str());
              return 1;
            }
          }
        }
      }
    }
  }
  FILE* f = std::fopen((root / "metadata.csv").c_str(), "wb");
  std::fwrite(meta.data(), 1, meta.size(), f);
  std::fclose(f);
  f = std::fopen((root / "labels.csv").c_str(), "wb");
  std::fwrite(labels_csv.data(), 1, labels_csv.size(), f);
  std::fclose(f);
  std::printf("%d volumes of %d patients in %s\n", volume_index, patients, out.c_str());
  return 0;
}
