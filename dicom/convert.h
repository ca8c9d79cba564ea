// DICOM to training images: header reading, rendering and encoding.
//
// Every DICOM detail (parsing, transfer syntaxes, decompression, modality
// LUT, VOI windowing, MONOCHROME1 polarity, palette and YBR colour) is
// DCMTK's; this layer chooses the window, picks the frames, resizes
// (OpenCV) and encodes (image/png.h, libjpeg-turbo).
// Used by the `convert` stage and by `download`.
//
// Threading: every function here may be called from many threads at once.
// The decoders are registered once, before first use, by a function-local
// static; each call builds its own DcmFileFormat and DicomImage (see
// convert.cc for what DCMTK shares between threads).
#pragma once

#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "image/png.h"
#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

// The identifying and geometric attributes medpipe keeps from a DICOM file.
// Nothing else of the file reaches medpipe's outputs.
struct DicomMeta {
  std::string patient_id, study_uid, series_uid, sop_uid, modality, manufacturer, model;
  std::string transfer_syntax;  // the file's transfer syntax UID
  std::string photometric;      // e.g. "MONOCHROME2", "PALETTE COLOR"
  double slice_thickness = std::numeric_limits<double>::quiet_NaN();
  double pixel_spacing_row = std::numeric_limits<double>::quiet_NaN();
  double pixel_spacing_col = std::numeric_limits<double>::quiet_NaN();
  int rows = 0, cols = 0, frames = 0;  // frames: 1 when NumberOfFrames is absent
  // False for objects without pixel data (structured reports, RT plans,
  // DICOMDIR): not an error of the file, just nothing to convert.
  bool has_pixel_data = false;
};

struct ConvertOptions {
  // The VOI window for monochrome images: a preset name (see
  // WindowPresetNames()), "C/W" explicit (W >= 1), "file" (the file's first
  // VOI LUT (VOI LUT Sequence), else its first window, else min-max), "minmax" (min-max of the frame's modality
  // values), or "none" (modality values, without windowing, scaled from the
  // full range they can take to the output depth, as dcm2pnm does by
  // default). Colour images pass through unwindowed.
  std::string window = "file";
  // Exactly 3 windows, or empty: monochrome images become RGB with one
  // window per channel (R, G, B in this order). Overrides `window`.
  std::vector<std::string> rgb_windows;
  // "linear": DICOM PS3.3 C.11.2.1.2 LINEAR, rendered by DCMTK, so 8-bit
  // output equals `dcm2pnm +Ww C W` pixel for pixel. "linear_exact": PS3.3
  // C.11.2.1.3.2 LINEAR_EXACT (rounded). "sigmoid": PS3.3 C.11.2.1.3.1.
  std::string voi_function = "linear";
  int bit_depth = 8;           // 8 or 16 (16 only with png)
  std::string format = "png";  // "png" or "jpeg"
  // Default PNG settings, chosen by measuring (bench/png_limit.cc, one
  // thread, CPU per image, 200 medpipe-ctgen 512x512 slices, brain window;
  // Pillow's own files of the same images: 11.21 MB):
  //   level 1, NONE            1.6-2.4 ms   10.97 MB   <- default
  //   level 1, adaptive (all)  4.4 ms       13.43 MB
  //   level 2 / 3, NONE        2.6 / 2.9 ms 10.91 / 10.83 MB
  //   level 6, NONE            4.8 ms       10.29 MB
  //   level 6, Pillow's filters (none/sub/up/paeth) 5.0-6.0 ms 11.25 MB
  //   level 9, NONE            8.4 ms       10.10 MB
  // A windowed CT slice is mostly long runs of 0 (air) and 255 (bone) plus
  // noise: deflate finds the runs in the raw bytes, while prediction
  // filters turn run edges and noise into residuals that compress worse. So
  // NONE is both the fastest and among the smallest, and levels above 1 buy
  // a few percent for 10-250% more time. zlib's Z_RLE strategy, which only
  // looks for runs, is faster again (0.9 vs 1.6 ms per synthetic slice) and
  // smaller: on the 8 real GE head-CT slices of shared/data/public, brain
  // window, 377 KB against 404 KB for the default strategy and 352 KB for
  // Pillow's level 6 adaptive (+7%); on the synthetic slices 17% smaller.
  // Since the deflate back ends came (image/png.h), the default is
  // libdeflate (`small`: files no larger than Pillow's); ISA-L (`fast`) is
  // faster but not byte-reproducible (image/png.h). The zlib settings above
  // remain as the `zlib` back end, whose bytes equal what medpipe wrote
  // before.
  PngCompressor png_compression = PngCompressor::kSmall;
  int png_level = 1;               // zlib back end only
  int png_filter = kPngFilterNone;  // filter mask (image/png.h); kPngAllFilters = adaptive
  int png_strategy = 3;            // zlib back end only: 0 default, 1 filtered, 2 huffman, 3 rle (Z_RLE)
  int jpeg_quality = 95;
  // Output size; 0 and 0 keep the size, one of them 0 keeps the aspect
  // ratio. OpenCV INTER_AREA.
  int resize_width = 0, resize_height = 0;
  // 0-based frame indices to render; empty: every frame.
  std::vector<int> frames;
  // Monochrome rendering. kAuto: the lookup-table fast path
  // (dicom/window_lut.h) for a monochrome image with a linear modality
  // transform under one linear window (explicit, or the file's), DicomImage
  // for everything else. kDicomImage: DicomImage always (the reference the
  // fast path is tested against). Both give the same pixels.
  enum class Renderer { kAuto, kDicomImage };
  Renderer renderer = Renderer::kAuto;
};

struct EncodedFrame {
  int frame = 0;  // 0-based index in the file
  int width = 0, height = 0, channels = 1;
  std::string bytes;   // the encoded PNG or JPEG file
  // The VOI transformation used: "40/80", "40/80,80/200,600/2800", "none",
  // "color"; for "file": "voi_lut" (the file's VOI LUT), "C/W" (the file's
  // window) or "minmax:C/W" (neither in the file).
  std::string window;
  bool fast_path = false;  // rendered through the lookup table, not DicomImage
};

// Checks options that do not depend on a file (window syntax, depth, format,
// frames). ConvertDicomFile checks them too; stages call it in their factory
// so that a typo is a config error before anything runs.
Status ValidateConvertOptions(const ConvertOptions& options);

// The preset window names, e.g. "brain", "subdural", "bone", "stroke",
// "lung", "soft_tissue", "mediastinum", "liver".
std::vector<std::string> WindowPresetNames();

// Registers DCMTK's decoders (JPEG, JPEG-LS, RLE) once, silences its log and
// tunes the heap, as every function here does first; for other libraries that
// decode DICOM with DCMTK directly (volume/dicom_series, cine/). Thread-safe.
void EnsureDicomDecoders();

// Reads the header only (parsing stops before the pixel data, nothing is
// decoded): for attribute filters before converting. A file that is not
// DICOM, or whose header is corrupt or truncated, is kInvalid.
Result<DicomMeta> ReadDicomMeta(const fs::path& file);

// Decodes and renders every selected frame. Unsupported (JPEG 2000, a
// segmented palette ...), corrupt or truncated input is kInvalid with a
// clear reason naming the file; never a crash. A missing file is kNotFound.
// `meta` (optional) receives the file's attributes, also on a render error
// after the header was read.
Result<std::vector<EncodedFrame>> ConvertDicomFile(const fs::path& file, const ConvertOptions& options,
                                                   DicomMeta* meta);

// A salted pseudonym for a patient id: the first 128 bits of
// SHA-256(salt + patient_id) in hex (32 digits). Empty salt: the id itself.
// An empty patient id stays empty (there is nothing to hide).
std::string Pseudonymize(const std::string& patient_id, const std::string& salt);

// True if `head` (the first bytes of a file, 132 or more when it has them)
// looks like DICOM: the "DICM" magic at offset 128, or a dataset with no
// preamble starting with a group 0002 or 0008 element.
bool LooksLikeDicom(std::string_view head);

}  // namespace medpipe
