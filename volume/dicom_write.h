// Writing CT slices as DICOM files with DCMTK: for the synthetic data
// generator and for tests that need series with a given geometry (shuffled,
// missing a slice, tilted). Output is deterministic: UIDs come from the
// caller, dates are fixed.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

struct DicomSliceSpec {
  std::string patient_id, study_uid, series_uid, sop_uid, frame_of_reference_uid;
  int instance = 1;
  std::string series_number;  // SeriesNumber; "" leaves it out
  int rows = 0, cols = 0;
  double spacing_row = 1, spacing_col = 1;
  std::array<double, 3> position{};
  std::array<double, 6> orientation = {1, 0, 0, 0, 1, 0};
  double slope = 1, intercept = -1024;
  std::vector<int16_t> stored;  // rows x cols, row-major
};

// Writes one CT Image Storage file (explicit VR little endian).
Status WriteDicomSlice(const fs::path& path, const DicomSliceSpec& s);

// A deterministic UID under the UUID-derived root 2.25 from `key`.
std::string UidFromKey(const std::string& key);

}  // namespace medpipe
