#include "stages/link_images.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include "util/hash.h"

namespace medpipe {

namespace {

// An item's fingerprint. A symlink follows its target path, so the path is
// all it depends on; a hard link or copy holds the bytes of the moment it was
// made, so it also depends on the state of the file reached (an upstream
// stage that rewrites the file gives it a new inode and mtime).
std::string LinkFingerprint(const LinkSpec& l, LinkMode mode) {
  if (mode == LinkMode::kSymlink) return HashBytes(l.target.string());
  struct stat st;
  std::string state = ::stat(l.target.c_str(), &st) == 0
                          ? fmt::format("{}:{}:{}.{}", st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec)
                          : "missing";
  return HashBytes(fmt::format("{}\n{}\n{}", mode == LinkMode::kHardlink ? "hardlink" : "copy", l.target.string(),
                               state));
}

}  // namespace

ParamSpec MaterializeParam() {
  return {"materialize", ParamType::kString, "hardlink", false,
          "how files are put in this folder: hardlink (a copy where the filesystem refuses), copy, or symlink "
          "(links into the upstream stages: the folder breaks when they are cleaned or it is copied)",
          {"hardlink", "copy", "symlink"}};
}

LinkMode MaterializeMode(const std::string& text) {
  return text == "copy" ? LinkMode::kCopy : text == "symlink" ? LinkMode::kSymlink : LinkMode::kHardlink;
}

Result<std::vector<bool>> LinkImages(StageContext& ctx, const std::vector<LinkSpec>& links, LinkMode mode) {
  std::vector<ItemTask> tasks;
  tasks.reserve(links.size());
  for (const auto& l : links) tasks.push_back(ItemTask{l.out_rel, LinkFingerprint(l, mode)});
  MEDPIPE_ASSIGN_OR_RETURN(
      std::vector<ItemResult> results, ctx.RunItems(tasks, [&](size_t i, ItemOutput& out) -> Result<std::string> {
        const LinkSpec& l = links[i];
        switch (mode) {
          case LinkMode::kHardlink:
            MEDPIPE_RETURN_IF_ERROR(out.Hardlink(l.out_rel, l.target));
            break;
          case LinkMode::kCopy:
            MEDPIPE_RETURN_IF_ERROR(out.Copy(l.out_rel, l.target));
            break;
          case LinkMode::kSymlink: {
            fs::path link = ctx.dir() / l.out_rel;
            MEDPIPE_RETURN_IF_ERROR(out.Symlink(l.out_rel, l.target.lexically_relative(link.parent_path())));
            break;
          }
        }
        return std::string();
      }, "link"));
  std::vector<bool> ok(results.size());
  for (size_t i = 0; i < results.size(); ++i) ok[i] = results[i].ok;
  return ok;
}

}  // namespace medpipe
