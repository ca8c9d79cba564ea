// Telling DICOM files from the other files of a DICOM folder (LICENSE,
// README, notes, checksums) before any DICOM reader sees them. It knows
// nothing of pipelines: callers count the files it rules out.
//
// Decided conservatively, so that no DICOM file is ever skipped: a file is
// "maybe DICOM" when it has a DICOM extension (.dcm, .dicom, .dic, .ima; a
// reader then says why it is not one), the "DICM" magic at offset 128, or
// starts like a raw dataset without preamble (old ACR-NEMA style files and
// implicit-VR files many tools write): a first tag of a low even group
// (0x0000 to 0x0028, little or big endian) followed by either a valid
// explicit VR or a plausible 32-bit length. Empty files and files that cannot
// be opened are also "maybe DICOM", so the reader reports them. Everything
// else (text starts with printable bytes: a tag group of 0x2000 or more;
// PNG, gzip, zip, PDF, NIfTI headers) is plainly not DICOM.
#pragma once

#include <string_view>

#include "util/fs.h"

namespace medpipe {

// .dcm, .dicom, .dic or .ima, in any case.
bool HasDicomExtension(const fs::path& file);

// The byte test alone, on the first bytes of a file (132 are enough).
bool HeadLooksLikeDicom(std::string_view head);

// The whole test; reads at most 132 bytes of `file`, and none when its
// extension decides. Thread-safe.
bool MaybeDicom(const fs::path& file);

}  // namespace medpipe
