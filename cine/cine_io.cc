#include "cine/cine_io.h"

// DCMTK headers: osconfig.h first, as DCMTK requires.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcpixel.h>
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

// The fast path for what ultrasound cines mostly are: 8-bit MONOCHROME2 or
// interleaved RGB without a modality transform, uncompressed or losslessly
// compressed (RLE, JPEG lossless, JPEG-LS). Their stored values are the
// display values DicomImage would render, so the frames are copied straight
// from the (decompressed) pixel data, skipping DicomImage's planar copy and
// output conversion (a fifth of the degrade stage's CPU time on 256x256 RGB).
// Leaves `cine->frames` empty when the file is anything else; fails only
// when the pixel data is short or cannot be decompressed.
Status ReadPlainFrames(DcmDataset* ds, Cine* cine) {
  Uint16 bits_allocated = 0, bits_stored = 0, pixel_rep = 0, samples = 0, planar = 0, rows = 0, cols = 0;
  ds->findAndGetUint16(DCM_BitsAllocated, bits_allocated);
  ds->findAndGetUint16(DCM_BitsStored, bits_stored);
  ds->findAndGetUint16(DCM_PixelRepresentation, pixel_rep);
  ds->findAndGetUint16(DCM_SamplesPerPixel, samples);
  ds->findAndGetUint16(DCM_PlanarConfiguration, planar);
  ds->findAndGetUint16(DCM_Rows, rows);
  ds->findAndGetUint16(DCM_Columns, cols);
  const std::string& pi = cine->source_photometric;
  const bool plain = bits_allocated == 8 && bits_stored == 8 && pixel_rep == 0 && rows > 0 && cols > 0 &&
                     ((pi == "MONOCHROME2" && samples == 1) || (pi == "RGB" && samples == 3 && planar == 0)) &&
                     !ds->tagExists(DCM_RescaleSlope) && !ds->tagExists(DCM_RescaleIntercept) &&
                     !ds->tagExists(DCM_ModalityLUTSequence);
  if (!plain) return Status::OK();
  const E_TransferSyntax xfer = ds->getOriginalXfer();
  if (DcmXfer(xfer).isEncapsulated() && !DcmXfer(xfer).isLossless()) return Status::OK();
  if (ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr).bad()) {
    return Status::Invalid("cannot decompress the pixel data");
  }
  const Uint8* data = nullptr;
  unsigned long length = 0;
  if (ds->findAndGetUint8Array(DCM_PixelData, data, &length).bad() || !data) {
    return Status::Invalid("cannot read the pixel data");
  }
  Sint32 frames = 1;
  ds->findAndGetSint32(DCM_NumberOfFrames, frames);
  if (frames < 1) frames = 1;
  const int type = samples == 3 ? CV_8UC3 : CV_8UC1;
  const size_t frame_bytes = static_cast<size_t>(rows) * cols * samples;
  if (length < frame_bytes * static_cast<size_t>(frames)) {
    return Status::Invalid(fmt::format("the pixel data holds {} bytes, {} frames need {}", length, frames,
                                       frame_bytes * static_cast<size_t>(frames)));
  }
  cine->frames.reserve(static_cast<size_t>(frames));
  for (Sint32 f = 0; f < frames; ++f) {
    cv::Mat m(rows, cols, type);
    std::memcpy(m.data, data + static_cast<size_t>(f) * frame_bytes, frame_bytes);
    cine->frames.push_back(std::move(m));
  }
  cine->photometric = pi;
  return Status::OK();
}

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
  EnsureDicomDecoders();
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

  if (Status fast = ReadPlainFrames(ds, &cine); !fast.ok()) {
    return Status::Invalid(fmt::format("{}: {}", file.string(), fast.message()));
  }
  if (cine.frames.empty()) {
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
    // DCMTK's own buffer, filled in place: one copy of the frames, not two.
    const size_t frame_bytes = first.total() * first.elemSize();
    Uint8* pixels = nullptr;
    auto* element = new DcmPixelData(DCM_PixelData);
    element->setVR(EVR_OB);
    c = element->createUint8Array(static_cast<Uint32>(frame_bytes * frames.size()), pixels);
    if (c.good()) {
      for (size_t i = 0; i < frames.size(); ++i) {
        cv::Mat f = frames[i].isContinuous() ? frames[i] : frames[i].clone();
        std::memcpy(pixels + i * frame_bytes, f.data, frame_bytes);
      }
      c = ds->insert(element, /*replaceOld=*/true);
    }
    if (c.bad()) delete element;
  }
  if (c.bad()) return Status::Invalid(fmt::format("cannot build the derived DICOM: {}", c.text()));

  // Into memory through DCMTK's buffer stream: write() returns
  // EC_StreamNotifyClient whenever the buffer is full and continues where it
  // stopped on the next call.
  std::string out;
  out.reserve(static_cast<size_t>(first.total() * first.elemSize() * frames.size()) + (1 << 16));
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
