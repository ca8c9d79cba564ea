// DICOM series to volumes with DCMTK: slices grouped by SeriesInstanceUID,
// ordered by ImagePositionPatient along the slice normal (the cross product
// of ImageOrientationPatient's row and column directions), the z spacing
// taken from the positions, never from SliceThickness.
//
// A series is assembled only when it is one regular stack: equal
// orientation, size and pixel spacing in every slice, positions on one line
// along the normal (a gantry tilt moves them sideways), and equal steps
// between them (a step that is a multiple of the others is a missing slice).
// Anything else is kInvalid naming the series and the reason.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "util/fs.h"
#include "util/status.h"
#include "volume/volume.h"

namespace medpipe {

struct DicomSliceHeader {
  fs::path file;
  std::string series_uid;
  std::array<double, 3> position{};     // ImagePositionPatient
  std::array<double, 6> orientation{};  // ImageOrientationPatient
  int rows = 0, cols = 0;
  double spacing_row = 1, spacing_col = 1;  // PixelSpacing: between rows (y), between columns (x)
};

// Reads the header (not the pixels) of one file. kInvalid when it is not a
// DICOM image slice with the geometry attributes above.
Result<DicomSliceHeader> ReadSliceHeader(const fs::path& file);

struct DicomSeries {
  std::string uid;
  std::vector<DicomSliceHeader> slices;  // in the order given
};

// Groups headers by SeriesInstanceUID, series in order of first appearance.
std::vector<DicomSeries> GroupSeries(std::vector<DicomSliceHeader> headers);

// Checks the geometry and decodes every slice (any transfer syntax DCMTK
// decodes), applying each slice's RescaleSlope/RescaleIntercept: the result
// is in HU (modality units), slices ordered along the normal, spacing
// (PixelSpacing column, row, mean position step).
Result<Volume> AssembleSeries(const DicomSeries& series);

}  // namespace medpipe
