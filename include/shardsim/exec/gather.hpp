#pragma once
// Every rank's measured timeline on rank 0 (for the summary and --json), over MPI.
#include <mpi.h>

#include "shardsim/timeline/timeline.hpp"

namespace shardsim::exec {

// Collective: returns all ranks' timelines on `root` (timelines[r], class_of_rank[r] = r);
// other ranks get an empty vector.
std::vector<timeline::RankTimeline> gather_timelines(const timeline::RankTimeline& mine, MPI_Comm comm, int root = 0);

}  // namespace shardsim::exec
