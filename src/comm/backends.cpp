#include "shardsim/comm/backends.hpp"

#include "shardsim/core/error.hpp"

namespace shardsim::comm {

#if SHARDSIM_HAVE_CUDA
std::unique_ptr<Communicator> make_nccl_communicator_impl(MPI_Comm comm, void* cuda_stream);
bool nccl_built() { return true; }
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, void* cuda_stream) {
    return make_nccl_communicator_impl(comm, cuda_stream);
}
#else
bool nccl_built() { return false; }
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm, void*) {
    throw Error("this shardsim was built without CUDA/NCCL (see the configure summary); use --backend mpi");
}
#endif

}  // namespace shardsim::comm
