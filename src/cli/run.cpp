// shardsim run (filled in by the executor).
#include "shardsim/cli/app.hpp"
#include "shardsim/core/error.hpp"

namespace shardsim::cli {
int cmd_run(const Args&) { throw Error("run is not built yet"); }
}  // namespace shardsim::cli
