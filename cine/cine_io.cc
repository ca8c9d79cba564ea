#include "cine/cine_io.h"

// DCMTK headers: osconfig.h first, as DCMTK requires.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmimgle/dcmimage.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <cstring>

#include "dicom/convert.h"
#include "util/hash.h"

namespace medpipe {

Cine::Cine() = default;
Cine::~Cine() = default;
Cine::Cine(Cine&&) noexcept = default;
Cine& Cine::operator=(Cine&&) noexcept = default;

namespace {

std::vector<std::string> SplitValues(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t end = s.find('\\', start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

std::string GetString(DcmItem* item, const DcmTagKey& tag) {
  OFString v;
  if (item->findAndGetOFStringArray(tag, v).good()) return std::string(v.c_str());
  return std::string();
}

// The attributes that describe stored pixel values. WriteDerivedCine writes
// 8-bit MONOCHROME2 or RGB frames, so everything that interprets the
// source's stored values (palettes, modality and VOI transforms of a deeper
// source, ICC profiles of a colour space we no longer claim) goes.
const DcmTagKey kPixelDescription[] = {
    DCM_PixelData,
    DCM_RedPaletteColorLookupTableDescriptor,
    DCM_GreenPaletteColorLookupTableDescriptor,
    DCM_BluePaletteColorLookupTableDescriptor,
    DCM_RedPaletteColorLookupTableData,
    DCM_GreenPaletteColorLookupTableData,
    DCM_BluePaletteColorLookupTableData,
    DCM_SegmentedRedPaletteColorLookupTableData,
    DCM_SegmentedGreenPaletteColorLookupTableData,
    DCM_SegmentedBluePaletteColorLookupTableData,
    DCM_PaletteColorLookupTableUID,
    DCM_PlanarConfiguration,
    DCM_SmallestImagePixelValue,
    DCM_LargestImagePixelValue,
    DCM_PixelPaddingValue,
    DCM_ExtendedOffsetTable,
    DCM_ExtendedOffsetTableLengths,
};
const DcmTagKey kDeepValueTransforms[] = {
    DCM_RescaleIntercept, DCM_RescaleSlope, DCM_RescaleType, DCM_ModalityLUTSequence,
    DCM_WindowCenter,     DCM_WindowWidth,  DCM_VOILUTSequence, DCM_VOILUTFunction,
};

}  // namespace

std::string DerivedUid(const std::string& key) {
  std::string hex = HashBytes(key).substr(0, 30);
  unsigned __int128 v = 0;
  for (char c : hex) v = v * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : c - 'a' + 10);
  std::string dec;
  do {
    dec.insert(dec.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v != 0);
  return "2.25." + dec;
}

Result<Cine> ReadCine(const fs::path& file) {
  EnsureDcmtkCodecs();
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) return Status::NotFound(fmt::format("{}: no such file", file.string()));

  Cine cine;
  cine.header_ = std::make_unique<DcmFileFormat>();
  OFCondition c = cine.header_->loadFile(file.c_str());
  if (c.bad()) return Status::Invalid(fmt::format("{}: not a readable DICOM file ({})", file.string(), c.text()));
  DcmDataset* ds = cine.header_->getDataset();
  const E_TransferSyntax xfer = ds->getOriginalXfer();
  cine.transfer_syntax = DcmXfer(xfer).getXferID();
  cine.source_photometric = GetString(ds, DCM_PhotometricInterpretation);
  cine.sop_class_uid = GetString(ds, DCM_SOPClassUID);
  cine.sop_instance_uid = GetString(ds, DCM_SOPInstanceUID);
  cine.series_instance_uid = GetString(ds, DCM_SeriesInstanceUID);
  cine.study_instance_uid = GetString(ds, DCM_StudyInstanceUID);
  cine.patient_id = GetString(ds, DCM_PatientID);
  cine.manufacturer_model = GetString(ds, DCM_ManufacturerModelName);
  if (!ds->tagExistsWithValue(DCM_PixelData)) {
    return Status::Invalid(fmt::format("{}: has no pixel data", file.string()));
  }
  Uint16 bits_stored = 8;
  ds->findAndGetUint16(DCM_BitsStored, bits_stored);

  {
    // All frames at once (fcount 0); DicomImage decompresses as needed and
    // may drop the dataset's pixel data once it holds its own copy.
    DicomImage image(cine.header_.get(), xfer, CIF_MayDetachPixelData, 0, 0);
    if (image.getStatus() != EIS_Normal) {
      return Status::Invalid(fmt::format("{}: cannot decode the pixel data ({}; transfer syntax {})", file.string(),
                                         DicomImage::getString(image.getStatus()), DcmXfer(xfer).getXferName()));
    }
    const int rows = static_cast<int>(image.getHeight()), cols = static_cast<int>(image.getWidth());
    const bool mono = image.isMonochrome();
    const int type = mono ? CV_8UC1 : CV_8UC3;
    const unsigned long frames = image.getFrameCount();
    cine.frames.reserve(frames);
    for (unsigned long f = 0; f < frames; ++f) {
      // Planar configuration 0: interleaved R, G, B for colour.
      const void* data = image.getOutputData(8, f, 0);
      if (!data) {
        return Status::Invalid(fmt::format("{}: cannot decode frame {} ({})", file.string(), f,
                                           DicomImage::getString(image.getStatus())));
      }
      cv::Mat m(rows, cols, type);
      std::memcpy(m.data, data, m.total() * m.elemSize());
      cine.frames.push_back(std::move(m));
    }
    cine.photometric = mono ? "MONOCHROME2" : "RGB";
  }
  if (cine.frames.empty()) return Status::Invalid(fmt::format("{}: has no frames", file.string()));

  for (const DcmTagKey& tag : kPixelDescription) ds->findAndDeleteElement(tag, true, false);
  if (bits_stored > 8) {
    for (const DcmTagKey& tag : kDeepValueTransforms) ds->findAndDeleteElement(tag, true, false);
  }
  return cine;
}

Result<std::string> WriteDerivedCine(const Cine& source, const std::vector<cv::Mat>& frames, const DerivedInfo& info) {
  if (!source.header_) return Status::Invalid("WriteDerivedCine: the source cine was not read by ReadCine");
  if (frames.empty()) return Status::Invalid("WriteDerivedCine: no frames");
  const cv::Mat& first = frames[0];
  if (first.type() != CV_8UC1 && first.type() != CV_8UC3) {
    return Status::Invalid("WriteDerivedCine: frames must be 8-bit grey or RGB");
  }
  for (const cv::Mat& f : frames) {
    if (f.size() != first.size() || f.type() != first.type()) {
      return Status::Invalid("WriteDerivedCine: frames differ in size or type");
    }
  }
  const int channels = first.channels();

  DcmFileFormat ff(*source.header_);
  DcmDataset* ds = ff.getDataset();
  OFCondition c;
  auto put = [&](const DcmTagKey& tag, const std::string& value) {
    if (c.good()) c = ds->putAndInsertString(tag, value.c_str());
  };
  auto put16 = [&](const DcmTagKey& tag, int value) {
    if (c.good()) c = ds->putAndInsertUint16(tag, static_cast<Uint16>(value));
  };

  put(DCM_SOPInstanceUID, info.sop_instance_uid);
  put(DCM_SeriesInstanceUID, info.series_instance_uid);
  if (!info.series_description.empty()) put(DCM_SeriesDescription, info.series_description);
  std::vector<std::string> type = SplitValues(GetString(ds, DCM_ImageType));
  std::string image_type = "DERIVED\\SECONDARY";
  for (size_t i = 2; i < type.size(); ++i) image_type += "\\" + type[i];
  put(DCM_ImageType, image_type);
  put(DCM_DerivationDescription, info.derivation_description);

  ds->findAndDeleteElement(DCM_SourceImageSequence);
  DcmItem* ref = nullptr;
  if (c.good()) c = ds->findOrCreateSequenceItem(DCM_SourceImageSequence, ref, -2);
  if (c.good() && ref) {
    c = ref->putAndInsertString(DCM_ReferencedSOPClassUID, source.sop_class_uid.c_str());
    if (c.good()) c = ref->putAndInsertString(DCM_ReferencedSOPInstanceUID, source.sop_instance_uid.c_str());
  }

  put16(DCM_SamplesPerPixel, channels);
  put(DCM_PhotometricInterpretation, channels == 3 ? "RGB" : "MONOCHROME2");
  if (channels == 3) put16(DCM_PlanarConfiguration, 0);
  put16(DCM_Rows, first.rows);
  put16(DCM_Columns, first.cols);
  put16(DCM_BitsAllocated, 8);
  put16(DCM_BitsStored, 8);
  put16(DCM_HighBit, 7);
  put16(DCM_PixelRepresentation, 0);
  put(DCM_NumberOfFrames, std::to_string(frames.size()));
  if (c.good()) {
    const size_t frame_bytes = first.total() * first.elemSize();
    std::vector<Uint8> pixels(frame_bytes * frames.size());
    for (size_t i = 0; i < frames.size(); ++i) {
      cv::Mat f = frames[i].isContinuous() ? frames[i] : frames[i].clone();
      std::memcpy(pixels.data() + i * frame_bytes, f.data, frame_bytes);
    }
    c = ds->putAndInsertUint8Array(DCM_PixelData, pixels.data(), static_cast<unsigned long>(pixels.size()));
  }
  if (c.bad()) return Status::Invalid(fmt::format("cannot build the derived DICOM: {}", c.text()));

  // Into memory through DCMTK's buffer stream: write() returns
  // EC_StreamNotifyClient whenever the buffer is full and continues where it
  // stopped on the next call.
  std::string out;
  std::vector<char> buffer(1 << 20);
  DcmOutputBufferStream stream(buffer.data(), static_cast<offile_off_t>(buffer.size()));
  ff.transferInit();
  do {
    c = ff.write(stream, EXS_LittleEndianExplicit, EET_ExplicitLength, nullptr, EGL_recalcGL, EPD_noChange, 0, 0,
                 0, EWM_createNewMeta);
    void* chunk = nullptr;
    offile_off_t length = 0;
    stream.flushBuffer(chunk, length);
    out.append(static_cast<const char*>(chunk), static_cast<size_t>(length));
  } while (c == EC_StreamNotifyClient);
  ff.transferEnd();
  if (c.bad()) return Status::Invalid(fmt::format("cannot write the derived DICOM: {}", c.text()));
  return out;
}

}  // namespace medpipe
