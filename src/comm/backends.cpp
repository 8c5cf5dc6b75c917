#include "shardsim/comm/backends.hpp"

#include "shardsim/comm/raw.hpp"
#include "shardsim/core/error.hpp"

namespace shardsim::comm {

#if SHARDSIM_HAVE_CUDA
std::unique_ptr<Communicator> make_nccl_communicator_impl(MPI_Comm comm, void* cuda_stream);
std::unique_ptr<RawCollectives> make_raw_nccl_impl(MPI_Comm comm, void* cuda_stream);
std::unique_ptr<RawCollectives> make_raw_nccl(MPI_Comm comm, void* cuda_stream) { return make_raw_nccl_impl(comm, cuda_stream); }
bool nccl_built() { return true; }
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, void* cuda_stream) {
    return make_nccl_communicator_impl(comm, cuda_stream);
}
#else
std::unique_ptr<RawCollectives> make_raw_nccl(MPI_Comm, void*) {
    throw Error("this shardsim was built without CUDA/NCCL (see the configure summary); use --backend mpi");
}
bool nccl_built() { return false; }
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm, void*) {
    throw Error("this shardsim was built without CUDA/NCCL (see the configure summary); use --backend mpi");
}
#endif

}  // namespace shardsim::comm
