// The text of `medpipe --version`.
#pragma once

#include <string>

namespace medpipe {

// "medpipe 0.1.0" and one line per library: name and version.
std::string VersionText();

}  // namespace medpipe
