#include "dicom/sniff.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <string>

namespace medpipe {

namespace {

// Every value representation of PS3.5 table 6.2-1.
bool IsVr(char a, char b) {
  static const char* const kVrs[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB",
                                     "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM",
                                     "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"};
  for (const char* vr : kVrs) {
    if (vr[0] == a && vr[1] == b) return true;
  }
  return false;
}

bool LowGroup(unsigned g) { return g <= 0x0028 && g % 2 == 0; }

}  // namespace

bool HasDicomExtension(const fs::path& file) {
  std::string ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".dcm" || ext == ".dicom" || ext == ".dic" || ext == ".ima";
}

bool HeadLooksLikeDicom(std::string_view head) {
  if (head.size() >= 132 && head.substr(128, 4) == "DICM") return true;
  if (head.size() < 8) return false;
  auto b = [&](size_t i) { return static_cast<unsigned>(static_cast<unsigned char>(head[i])); };
  const bool le = LowGroup(b(0) | (b(1) << 8)), be = LowGroup((b(0) << 8) | b(1));
  if (!le && !be) return false;
  // Explicit VR: two upper-case letters of a known VR after the tag.
  if (IsVr(head[4], head[5])) return true;
  // Implicit VR: a 32-bit length, even (or undefined), and not absurd for
  // the first element of a header.
  const uint32_t len = le ? (b(4) | (b(5) << 8) | (b(6) << 16) | (b(7) << 24))
                          : ((b(4) << 24) | (b(5) << 16) | (b(6) << 8) | b(7));
  return len == 0xFFFFFFFFu || (len % 2 == 0 && len <= (1u << 20));
}

bool MaybeDicom(const fs::path& file) {
  if (HasDicomExtension(file)) return true;
  std::ifstream in(file, std::ios::binary);
  if (!in) return true;  // the reader says why it cannot be read
  std::string head(132, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  if (head.empty()) return true;
  return HeadLooksLikeDicom(head);
}

}  // namespace medpipe
