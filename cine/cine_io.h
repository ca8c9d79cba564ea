// Multi-frame ultrasound DICOM ("cines") in and out, through DCMTK.
//
// ReadCine decodes every frame of a file in any transfer syntax DCMTK
// decodes here (uncompressed, RLE, JPEG baseline/extended/lossless,
// JPEG-LS; not JPEG 2000) into 8-bit OpenCV frames: colour (RGB, YBR,
// PALETTE COLOR) becomes RGB, monochrome becomes MONOCHROME2. It keeps the
// file's header so that WriteDerivedCine can write frames derived from it as
// a new instance with the source's attributes.
//
// This folder knows nothing of pipelines; it is used by the `degrade` stage,
// the echo example generator and the degrade benchmark.
//
// Threading: every function may be called from many threads at once (see
// dicom/convert.cc for what DCMTK shares between threads); a Cine object
// belongs to one thread at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "util/fs.h"
#include "util/status.h"

class DcmFileFormat;

namespace medpipe {

// What a derived instance says about its derivation. The UIDs are given, not
// generated, so that the same inputs give the same bytes (DCMTK's generator
// uses the clock); DerivedUid makes them.
struct DerivedInfo {
  std::string sop_instance_uid;
  std::string series_instance_uid;
  std::string derivation_description;  // e.g. "gaussian noise sigma=0.31 of range"
  std::string series_description;      // optional; empty keeps the source's
};

class Cine {
 public:
  Cine();
  ~Cine();
  Cine(Cine&&) noexcept;
  Cine& operator=(Cine&&) noexcept;

  // Every frame, CV_8UC1 (MONOCHROME2) or CV_8UC3 in R, G, B order.
  std::vector<cv::Mat> frames;
  // The source's photometric interpretation, e.g. "PALETTE COLOR", and the
  // one the frames are in ("RGB" or "MONOCHROME2").
  std::string source_photometric, photometric;
  std::string transfer_syntax;  // the source's transfer syntax UID
  std::string sop_class_uid, sop_instance_uid, series_instance_uid, study_instance_uid, patient_id;
  std::string manufacturer_model;  // ManufacturerModelName, "" when absent

 private:
  friend Result<Cine> ReadCine(const fs::path& file);
  friend Result<std::string> WriteDerivedCine(const Cine& source, const std::vector<cv::Mat>& frames,
                                              const DerivedInfo& info);
  // The source's header without its pixel data and pixel-module LUTs.
  std::unique_ptr<DcmFileFormat> header_;
};

// Reads and decodes every frame. A missing file is kNotFound; a file that is
// not DICOM, has no pixel data, or cannot be decoded (corrupt, truncated,
// an unsupported compression) is kInvalid naming the file and the reason.
Result<Cine> ReadCine(const fs::path& file);

// "2.25.<decimal>" from 120 bits of SHA-256(key): a valid UUID-derived UID
// (PS3.5 B.2) of at most 41 characters, deterministic for the key.
std::string DerivedUid(const std::string& key);

// A new DICOM file (Explicit VR Little Endian, uncompressed) holding `frames`
// with the source's attributes except: the given SOP Instance and Series
// Instance UIDs, ImageType DERIVED\SECONDARY (then the source's values from
// the third on), DerivationDescription, the source's SOP Class and Instance
// UIDs in SourceImageSequence, and the pixel module rewritten for 8-bit
// frames (RGB frames as RGB: a palette source loses its LUTs). Returns the
// file's bytes.
// REQUIRES: frames non-empty, all of one size and type, CV_8UC1 or CV_8UC3.
Result<std::string> WriteDerivedCine(const Cine& source, const std::vector<cv::Mat>& frames, const DerivedInfo& info);

}  // namespace medpipe
