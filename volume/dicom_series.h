// DICOM series to volumes with DCMTK: slices grouped by SeriesInstanceUID,
// ordered by ImagePositionPatient along the slice normal (the cross product
// of ImageOrientationPatient's row and column directions), the z spacing
// taken from the positions, never from SliceThickness.
//
// A series is assembled only when it is one stack: equal orientation, size
// and pixel spacing in every slice, and no missing slice (a step that is a
// whole multiple of the usual one). Positions off the line along the normal
// (a gantry tilt moves them sideways) and unequal steps are either refused
// or resampled onto a regular, untilted grid, as the caller asks. Anything
// refused is kInvalid naming the series and the reason.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "util/fs.h"
#include "util/status.h"
#include "volume/orient.h"
#include "volume/volume.h"

namespace medpipe {

struct DicomSliceHeader {
  fs::path file;
  std::string series_uid;
  std::string series_number;  // SeriesNumber as written, "" when absent
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

struct AssembleOptions {
  // A tilted stack: refused, or each slice shifted in its plane (bilinear,
  // exact sub-pixel weights) onto a grid whose slices lie straight along the
  // normal, as dcm2niix's tilt correction does.
  bool resample_tilt = false;
  // Unequal steps that are not missing slices (GE's variable spacing):
  // refused, or interpolated linearly along the normal onto equal steps of
  // the smallest step (the first and last slice kept where they are).
  bool resample_uneven = false;
  // Where a shifted slice has no source pixel: air.
  float fill_hu = -1024;
};

struct SeriesVolume {
  Volume volume;  // HU; x along the rows, y down the columns, z along the normal
  Affine affine{};  // voxel to RAS+ world of `volume`
  double tilt_degrees = 0;  // the tilt found (0 when below half a degree)
  bool tilt_corrected = false;
  bool spacing_equalized = false;
  int source_slices = 0;  // files in the series
};

// Checks the geometry and decodes every slice (any transfer syntax DCMTK
// decodes), applying each slice's RescaleSlope/RescaleIntercept: the result
// is in HU (modality units), slices ordered along the normal, spacing
// (PixelSpacing column, row, mean position step).
Result<SeriesVolume> AssembleSeries(const DicomSeries& series, const AssembleOptions& o);
// The same refusing tilt and unequal steps, without the geometry.
Result<Volume> AssembleSeries(const DicomSeries& series);

}  // namespace medpipe
