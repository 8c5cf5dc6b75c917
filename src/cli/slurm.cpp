// shardsim slurm (filled in by the Slurm work).
#include "shardsim/cli/app.hpp"
#include "shardsim/core/error.hpp"

namespace shardsim::cli {
int cmd_slurm(const Args&) { throw Error("slurm is not built yet"); }
}  // namespace shardsim::cli
