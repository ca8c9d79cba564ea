// Reading and writing the dataset model as COCO JSON, and the Roboflow export
// layout (train/valid/test folders, each with _annotations.coco.json).
#pragma once

#include <string>
#include <string_view>

#include "dataset/dataset.h"
#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

// Parses COCO JSON. `origin` names the text in messages ("a.json").
Result<Dataset> ParseCoco(std::string_view text, const std::string& origin);
Result<Dataset> ReadCoco(const fs::path& path);

// Serialises deterministically: fields in a fixed order, images, annotations
// and categories in the order held, attributes by key.
std::string SerializeCoco(const Dataset& dataset);

// Reads a Roboflow export: every split folder present (train, valid or val,
// test) with its _annotations.coco.json. Images get `split` set ("val" is read
// as "valid") and `file_name` prefixed with the folder ("train/x.jpg"); ids are
// renumbered so they are unique across splits.
Result<Dataset> ReadRoboflow(const fs::path& dir);

// The folder names Roboflow uses, in output order.
inline constexpr std::string_view kSplitNames[] = {"train", "valid", "test"};

}  // namespace medpipe
