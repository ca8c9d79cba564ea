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

// A split name as medpipe spells it: "val" (Ultralytics, many Roboflow
// exports) and "validation" are "valid"; any other name is returned as is.
// Every reader of a split name goes through here (ParseCoco does, so stages
// reading a dataset.json see "valid"), so no image is dropped for the spelling.
std::string CanonicalSplit(std::string_view split);
// True for train, valid and test.
bool IsRoboflowSplit(std::string_view split);

// The upload stem of a Roboflow file name `<stem>_<ext>.rf.<hash>.<ext>`
// ("163_jpg.rf.7dbc....jpg" -> "163"), or "" for any other name. Roboflow's
// augmented copies of one upload share it.
std::string RoboflowStem(std::string_view name);

}  // namespace medpipe
