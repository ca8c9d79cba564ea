// The interface every stage kind implements.
//
// A Stage is built once from validated params by its kind's factory and is
// immutable: all per-run state lives in the StageContext (as DuckDB keeps
// operator state apart from operators). It knows nothing of fingerprints,
// commit records or skipping.
#pragma once

#include <memory>
#include <string>

#include "graph/pipeline.h"
#include "runner/stage_context.h"
#include "util/status.h"

namespace medpipe {

class Stage {
 public:
  virtual ~Stage() = default;

  // A fingerprint of what the stage reads from outside the workdir (a source
  // folder, a CSV), so a rerun notices new or changed source files. Must be
  // cheap: list and stat, never read contents. "" when it reads nothing.
  virtual Result<std::string> ExternalFingerprint() const { return std::string(); }

  // Produces the stage's outputs in ctx.dir(). Runs on a TBB worker; may run
  // at the same time as other stages, never twice at once for one instance.
  virtual Status Run(StageContext& ctx) const = 0;
};

using StageFactory = std::function<Result<std::unique_ptr<Stage>>(const StageDecl& decl, uint64_t seed)>;

}  // namespace medpipe
