// Writes synthetic echocardiography cines and an inference summary in the
// shape of the EchoQuality seed, for configs/echo_quality.yaml, the demo, the
// echo tests and the degrade benchmark.
//
//   medpipe-echogen --out DIR [--patients N] [--clips N] [--frames N] [--size PX] [--seed S]
//                   [--rgb-every K] [--rle-every K]
//   medpipe-echogen --bench DIR --clips N --frames N --size PX   (RGB clips only, no summary)
//
// DIR/raw_data/<folder>/<file>.dcm: Ultrasound Multi-frame Image Storage,
// 8-bit, `frames` frames of size x size: a fan-shaped sector with speckle and
// a beating ring (the heart wall) whose sector sways from frame to frame.
// Folders are named after the seed's machines (Affiniti50G_*, Affiniti70G_*,
// EPIQ7_*, VIVIDE95_*, VIVIDS60_*, VIVIDS70_*), each with a matching
// ManufacturerModelName. Each patient has `clips` clips on one machine; every
// `rgb-every`-th clip is RGB (a colour-flow blob), every `rle-every`-th is
// RLE Lossless (DCMTK's encoder), the rest MONOCHROME2 uncompressed.
//
// DIR/results/inference_output/summary.json: a list of records (file_path,
// folder, file_id, score, status, assessment, model_version) with scores
// spread over [0, 1] and the seed's statuses and assessments, plus bad ones:
// two records whose files are missing, one pointing at a file that is not
// DICOM, one at a DICOM whose pixel data is truncated, and one without a
// score.
//
// Deterministic for a seed: our own RNG, UIDs derived under 2.25, fixed dates.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cine/cine_io.h"
#include "util/fs.h"

using namespace medpipe;

namespace {

struct Machine {
  const char* folder;
  const char* model;
  const char* manufacturer;
};
const Machine kMachines[] = {
    {"Affiniti50G", "Affiniti 50G", "Philips"}, {"Affiniti70G", "Affiniti 70G", "Philips"},
    {"EPIQ7", "EPIQ 7G", "Philips"},            {"VIVIDE95", "Vivid E95", "GE Healthcare"},
    {"VIVIDS60", "Vivid S60", "GE Healthcare"}, {"VIVIDS70", "Vivid S70", "GE Healthcare"},
};

struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0); }
};

// One clip's frames, interleaved RGB when `rgb`.
std::vector<uint8_t> Frames(int size, int frames, bool rgb, Rng& rng) {
  const int ch = rgb ? 3 : 1;
  std::vector<float> speckle(static_cast<size_t>(size) * size);
  for (float& v : speckle) v = static_cast<float>(0.4 + 0.6 * rng.Uniform());
  const double phase = rng.Uniform() * 6.283, ring = 0.18 + 0.08 * rng.Uniform();
  std::vector<uint8_t> px(static_cast<size_t>(frames) * size * size * ch);
  const double ax = (size - 1) / 2.0, ay = 2.0, radius = size * 0.92;
  for (int f = 0; f < frames; ++f) {
    const double t = 6.283185 * f / frames + phase;
    const double sway = 0.08 * std::sin(t);                // the sector sways
    const double wall = size * (ring + 0.05 * std::sin(t));  // the ring beats
    const double cx = ax + 0.1 * size * std::sin(t * 0.5), cy = size * 0.55;
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        const double dx = x - ax, dy = y - ay;
        const double r = std::sqrt(dx * dx + dy * dy), a = std::atan2(dx, dy) - sway;
        double v = 0;
        if (r < radius && std::abs(a) < 0.75) {
          const double d = std::sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy));
          v = 40 + 50 * (1 - r / radius) + 150 * std::exp(-std::pow((d - wall) / 3.0, 2));
          v *= speckle[static_cast<size_t>(y) * size + x];
        }
        const size_t o = ((static_cast<size_t>(f) * size + y) * size + x) * ch;
        const uint8_t g = static_cast<uint8_t>(std::min(255.0, v));
        for (int c = 0; c < ch; ++c) px[o + c] = g;
        if (rgb && v > 0 && std::abs(x - cx) < size * 0.08 && std::abs(y - cy) < size * 0.08) {
          const bool toward = std::sin(t) > 0;  // colour flow: red toward, blue away
          px[o] = toward ? 220 : 30, px[o + 1] = 40, px[o + 2] = toward ? 30 : 220;
        }
      }
    }
  }
  return px;
}

bool WriteClip(const fs::path& path, const std::string& key, const Machine& m, const std::string& patient,
               const std::string& study_uid, int size, int frames, bool rgb, bool rle, Rng& rng) {
  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  auto put = [&](const DcmTagKey& tag, const std::string& v) { ds->putAndInsertString(tag, v.c_str()); };
  put(DCM_SOPClassUID, "1.2.840.10008.5.1.4.1.1.3.1");
  put(DCM_SOPInstanceUID, DerivedUid(key + "/sop"));
  put(DCM_StudyInstanceUID, study_uid);
  put(DCM_SeriesInstanceUID, DerivedUid(key + "/series"));
  put(DCM_PatientID, patient);
  put(DCM_PatientName, "Echo^" + patient);
  put(DCM_Modality, "US");
  put(DCM_Manufacturer, m.manufacturer);
  put(DCM_ManufacturerModelName, m.model);
  put(DCM_StudyDate, "20240101");
  put(DCM_ImageType, "ORIGINAL\\PRIMARY\\CARDIAC");
  put(DCM_FrameTime, "33.3");
  put(DCM_CineRate, "30");
  put(DCM_NumberOfFrames, std::to_string(frames));
  ds->putAndInsertUint16(DCM_SamplesPerPixel, rgb ? 3 : 1);
  put(DCM_PhotometricInterpretation, rgb ? "RGB" : "MONOCHROME2");
  if (rgb) ds->putAndInsertUint16(DCM_PlanarConfiguration, 0);
  ds->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(size));
  ds->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(size));
  ds->putAndInsertUint16(DCM_BitsAllocated, 8);
  ds->putAndInsertUint16(DCM_BitsStored, 8);
  ds->putAndInsertUint16(DCM_HighBit, 7);
  ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
  std::vector<uint8_t> px = Frames(size, frames, rgb, rng);
  ds->putAndInsertUint8Array(DCM_PixelData, px.data(), static_cast<unsigned long>(px.size()));
  E_TransferSyntax xfer = EXS_LittleEndianExplicit;
  if (rle) {
    if (ds->chooseRepresentation(EXS_RLELossless, nullptr).bad()) return false;
    xfer = EXS_RLELossless;
  }
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  return ff.saveFile(path.c_str(), xfer).good();
}

std::string Assessment(double score) {
  if (score >= 0.95) return "Excellent quality";
  if (score >= 0.7) return "Good quality - minor issues";
  if (score >= 0.3) return "Poor quality - significant issues";
  return "Critical issues - unusable";
}

int Usage() {
  std::fprintf(stderr,
               "usage: medpipe-echogen --out DIR [--patients N] [--clips N] [--frames N] [--size PX] [--seed S] "
               "[--rgb-every K] [--rle-every K]\n       medpipe-echogen --bench DIR --clips N --frames N --size PX\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out, bench;
  int patients = 12, clips = 4, frames = 16, size = 128, rgb_every = 5, rle_every = 3;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return Usage();
    std::string v = argv[++i];
    if (a == "--out") out = v;
    else if (a == "--bench") bench = v;
    else if (a == "--patients") patients = std::stoi(v);
    else if (a == "--clips") clips = std::stoi(v);
    else if (a == "--frames") frames = std::stoi(v);
    else if (a == "--size") size = std::stoi(v);
    else if (a == "--seed") seed = std::stoull(v);
    else if (a == "--rgb-every") rgb_every = std::stoi(v);
    else if (a == "--rle-every") rle_every = std::stoi(v);
    else return Usage();
  }
  if ((out.empty() == bench.empty()) || frames < 1 || size < 16 || clips < 1 || patients < 1) return Usage();
  DcmRLEEncoderRegistration::registerCodecs();
  Rng rng{seed};

  if (!bench.empty()) {
    // Benchmark input: `clips` RGB clips, uncompressed, one machine per clip in turn.
    for (int c = 0; c < clips; ++c) {
      const Machine& m = kMachines[c % 6];
      const std::string key = fmt::format("bench/{}/{}", seed, c);
      if (!WriteClip(fs::path(bench) / fmt::format("clip_{:04d}.dcm", c), key, m, fmt::format("B{:04d}", c / 2),
                     DerivedUid(key + "/study"), size, frames, true, false, rng)) {
        std::fprintf(stderr, "cannot write clip %d\n", c);
        return 1;
      }
    }
    return 0;
  }

  const fs::path raw = fs::path(out) / "raw_data";
  std::string json = "[\n";
  int n = 0;
  auto record = [&](const std::string& file, const std::string& folder, const std::string& id, double score) {
    const bool pass = score >= 0.5;
    json += fmt::format(
        "  {{\"file_path\": \"{}\", \"folder\": \"{}\", \"file_id\": \"{}\", \"score\": {:.4f}, \"status\": \"{}\", "
        "\"assessment\": \"{}\", \"model_version\": \"echoquality-r2plus1d-v1\"}},\n",
        file, folder, id, score, pass ? "PASS" : "FAIL", Assessment(score));
  };
  for (int p = 0; p < patients; ++p) {
    const Machine& m = kMachines[p % 6];
    const std::string folder = fmt::format("{}_{:02d}", m.folder, p / 6 + 1);
    const std::string patient = fmt::format("ECHO{:03d}", p + 1);
    const std::string study = DerivedUid(fmt::format("echo/{}/{}/study", seed, p));
    for (int c = 0; c < clips; ++c, ++n) {
      const std::string id = fmt::format("{:08d}", 10000000 + n * 7919 % 9000000);
      const std::string file = id + ".dcm";
      const bool rgb = rgb_every > 0 && n % rgb_every == rgb_every - 1;
      const bool rle = !rgb && rle_every > 0 && n % rle_every == 0;
      if (!WriteClip(raw / folder / file, fmt::format("echo/{}/{}", seed, n), m, patient, study, size, frames, rgb,
                     rle, rng)) {
        std::fprintf(stderr, "cannot write %s\n", (raw / folder / file).c_str());
        return 1;
      }
      // Scores spread over [0, 1], about a third high and a fifth very low;
      // every patient's first clip is high and second very low, so every
      // machine has clips of both classes.
      const double u = c == 0 ? 0.0 : c == 1 ? 0.4 : rng.Uniform();
      const double score = u < 0.35 ? 0.95 + 0.05 * rng.Uniform() : u < 0.55 ? 0.1 * rng.Uniform() : rng.Uniform();
      record(file, folder, id, score);
    }
  }
  // The bad records.
  const std::string bad_folder = fmt::format("{}_{:02d}", kMachines[0].folder, 1);
  record("missing_0001.dcm", bad_folder, "missing1", 0.99);
  record("missing_0002.dcm", "VIVIDS70_09", "missing2", 0.02);
  record("not_dicom.dcm", bad_folder, "notdicom", 0.97);
  record("truncated.dcm", bad_folder, "truncated", 0.98);
  {
    std::FILE* f = std::fopen((raw / bad_folder / "not_dicom.dcm").c_str(), "wb");
    if (f) std::fputs("this is not a DICOM file\n", f), std::fclose(f);
    // A real clip cut in the middle of its pixel data.
    Rng r2{seed + 99};
    const fs::path t = raw / bad_folder / "truncated.dcm";
    if (WriteClip(t, fmt::format("echo/{}/truncated", seed), kMachines[0], "ECHO999", DerivedUid("t/study"), size,
                  frames, false, false, r2)) {
      fs::resize_file(t, fs::file_size(t) / 2);
    }
  }
  json += fmt::format(
      "  {{\"file_path\": \"no_score.dcm\", \"folder\": \"{}\", \"file_id\": \"noscore\", \"status\": \"PASS\"}}\n]\n",
      bad_folder);
  const fs::path summary = fs::path(out) / "results/inference_output/summary.json";
  std::error_code ec;
  fs::create_directories(summary.parent_path(), ec);
  std::FILE* f = std::fopen(summary.c_str(), "wb");
  if (!f) return 1;
  std::fwrite(json.data(), 1, json.size(), f);
  std::fclose(f);
  std::printf("%d clips of %d patients in %s\n", n, patients, raw.c_str());
  return 0;
}
