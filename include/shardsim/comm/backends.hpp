#pragma once
// Which communicators this build can make. NCCL exists only in builds with CUDA.
#include <mpi.h>

#include <memory>
#include <string>

#include "shardsim/comm/communicator.hpp"

namespace shardsim::comm {

bool nccl_built();
// A NCCL communicator over the ranks of `comm` (collective over `comm`: rank 0 makes the unique
// id and broadcasts it over MPI), issuing on `cuda_stream` (a cudaStream_t). Throws when this
// build has no NCCL.
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, void* cuda_stream);

}  // namespace shardsim::comm
