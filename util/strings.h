// Small string helpers shared by the parser, the CLI and the stages.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace medpipe {

// Edit distance counting adjacent swaps as one edit; used to suggest the closest known name for a typo.
size_t EditDistance(std::string_view a, std::string_view b);

// The candidate closest to `name`, or "" when none is close enough to be a
// plausible typo (distance at most a third of the name's length, at least 1).
std::string ClosestName(std::string_view name, const std::vector<std::string>& candidates);

// Natural order: runs of digits compare by their numeric value, so
// "labels.csv:7" < "labels.csv:10" and "img2" < "img10"; the rest byte-wise.
// A strict weak order; strings equal as numbers ("7", "07") fall back to
// byte order so the order stays total.
bool NaturalLess(std::string_view a, std::string_view b);

// "1.2 s", "3 min 04 s", "45 ms".
std::string HumanDuration(double seconds);

std::string Join(const std::vector<std::string>& parts, std::string_view sep);

// The fields of `text` between the `sep` characters, empty ones dropped
// ("a,,b," gives a, b).
std::vector<std::string> Split(std::string_view text, char sep);

// fnmatch(3) glob match where '*' also crosses '/'.
bool GlobMatch(std::string_view pattern, std::string_view text);

// "1.2 MB": a byte count in the largest unit that keeps it >= 1.
std::string HumanBytes(uint64_t bytes);

}  // namespace medpipe
