// File names made from data values (a machine type, a label, a file id).
#pragma once

#include <cctype>
#include <string>

namespace medpipe {

// `s` with every character other than letters, digits, '.', '-' and '_'
// replaced by '_', and a leading '.' too, so the result names one plain,
// visible file in its folder; "none" for an empty string.
inline std::string FileSafeName(const std::string& s) {
  std::string out = s.empty() ? "none" : s;
  for (char& c : out) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  }
  if (out[0] == '.') out[0] = '_';
  return out;
}

}  // namespace medpipe
