#include "volume/dicom_write.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <fmt/format.h>

#include <cctype>

#include "util/hash.h"

namespace medpipe {

std::string UidFromKey(const std::string& key) {
  // "2.25.<decimal>" of the first 120 bits of SHA-256(key) (PS3.5 B.2).
  std::string hex = HashBytes(key).substr(0, 30);
  unsigned __int128 v = 0;
  for (char c : hex) v = v * 16 + static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : c - 'a' + 10);
  std::string dec;
  do {
    dec.insert(dec.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v != 0);
  return "2.25." + dec;
}

Status WriteDicomSlice(const fs::path& path, const DicomSliceSpec& s) {
  if (s.stored.size() != static_cast<size_t>(s.rows) * s.cols) return Status::Invalid("pixel count != rows x cols");
  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  auto put = [&](const DcmTagKey& tag, const std::string& value) { ds->putAndInsertString(tag, value.c_str()); };
  put(DCM_SOPClassUID, UID_CTImageStorage);
  put(DCM_SOPInstanceUID, s.sop_uid);
  put(DCM_StudyDate, "20240101");
  put(DCM_Modality, "CT");
  put(DCM_Manufacturer, "medpipe-ctvolgen");
  put(DCM_PatientID, s.patient_id);
  put(DCM_StudyInstanceUID, s.study_uid);
  put(DCM_SeriesInstanceUID, s.series_uid);
  put(DCM_FrameOfReferenceUID, s.frame_of_reference_uid);
  put(DCM_InstanceNumber, std::to_string(s.instance));
  if (!s.series_number.empty()) put(DCM_SeriesNumber, s.series_number);
  put(DCM_ImagePositionPatient, fmt::format("{:.4f}\\{:.4f}\\{:.4f}", s.position[0], s.position[1], s.position[2]));
  put(DCM_ImageOrientationPatient, fmt::format("{:.6f}\\{:.6f}\\{:.6f}\\{:.6f}\\{:.6f}\\{:.6f}", s.orientation[0],
                                               s.orientation[1], s.orientation[2], s.orientation[3],
                                               s.orientation[4], s.orientation[5]));
  put(DCM_SamplesPerPixel, "1");
  put(DCM_PhotometricInterpretation, "MONOCHROME2");
  ds->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(s.rows));
  ds->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(s.cols));
  put(DCM_PixelSpacing, fmt::format("{}\\{}", s.spacing_row, s.spacing_col));
  ds->putAndInsertUint16(DCM_BitsAllocated, 16);
  ds->putAndInsertUint16(DCM_BitsStored, 16);
  ds->putAndInsertUint16(DCM_HighBit, 15);
  ds->putAndInsertUint16(DCM_PixelRepresentation, 1);
  put(DCM_RescaleIntercept, fmt::format("{}", s.intercept));
  put(DCM_RescaleSlope, fmt::format("{}", s.slope));
  ds->putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16*>(s.stored.data()),
                              static_cast<unsigned long>(s.stored.size()));
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  OFCondition c = ff.saveFile(path.c_str(), EXS_LittleEndianExplicit);
  if (c.bad()) return Status::IOError(fmt::format("{}: {}", path.string(), c.text()));
  return Status::OK();
}

}  // namespace medpipe
