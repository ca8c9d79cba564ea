#include "stages/link_images.h"

#include "util/hash.h"

namespace medpipe {

Result<std::vector<bool>> LinkImages(StageContext& ctx, const std::vector<LinkSpec>& links) {
  std::vector<ItemTask> tasks;
  tasks.reserve(links.size());
  for (const auto& l : links) tasks.push_back(ItemTask{l.out_rel, HashBytes(l.target.string())});
  MEDPIPE_ASSIGN_OR_RETURN(
      std::vector<ItemResult> results, ctx.RunItems(tasks, [&](size_t i, ItemOutput& out) -> Result<std::string> {
        fs::path link = ctx.dir() / links[i].out_rel;
        MEDPIPE_RETURN_IF_ERROR(out.Symlink(links[i].out_rel, links[i].target.lexically_relative(link.parent_path())));
        return std::string();
      }, "link"));
  std::vector<bool> ok(results.size());
  for (size_t i = 0; i < results.size(); ++i) ok[i] = results[i].ok;
  return ok;
}

}  // namespace medpipe
