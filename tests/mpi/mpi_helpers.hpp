#pragma once
// Small helpers the MPI test files share.
#include <mpi.h>

namespace shardsim::test {

inline int world_rank() {
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

inline int world_size() {
    int n = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

inline bool is_root() { return world_rank() == 0; }

}  // namespace shardsim::test
