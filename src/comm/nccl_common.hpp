#pragma once
// What the two NCCL users (the NcclCommunicator and bench's raw NCCL baseline) share: the error
// check, the dtype mapping and making a communicator over an MPI group. Included only by
// *_nccl.cpp files, which are built when NCCL is found.
#include <mpi.h>
#include <nccl.h>

#include <string>

#include "shardsim/comm/mpi.hpp"
#include "shardsim/core/dtype.hpp"
#include "shardsim/core/error.hpp"

#define SHARDSIM_NCCL_CHECK(call)                                                                           \
    do {                                                                                                    \
        const ncclResult_t shardsim_nccl_rc_ = (call);                                                      \
        if (shardsim_nccl_rc_ != ncclSuccess)                                                               \
            ::shardsim::throw_error(__FILE__, __LINE__, std::string(#call) + " failed: " + ncclGetErrorString(shardsim_nccl_rc_)); \
    } while (0)

namespace shardsim::comm {

inline ncclDataType_t nccl_type(DType t) {
    switch (t) {
        case DType::fp32: return ncclFloat32;
        case DType::bf16: return ncclBfloat16;
        case DType::fp16: return ncclFloat16;
    }
    return ncclFloat32;
}

// Collective over `mpi`: rank 0 makes the unique id, MPI broadcasts it, every rank joins.
inline ncclComm_t make_nccl_comm(MPI_Comm mpi) {
    int rank = 0, size = 1;
    SHARDSIM_MPI_CHECK(MPI_Comm_rank(mpi, &rank));
    SHARDSIM_MPI_CHECK(MPI_Comm_size(mpi, &size));
    ncclUniqueId id{};
    if (rank == 0) SHARDSIM_NCCL_CHECK(ncclGetUniqueId(&id));
    SHARDSIM_MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mpi));
    ncclComm_t comm = nullptr;
    SHARDSIM_NCCL_CHECK(ncclCommInitRank(&comm, size, id, rank));
    return comm;
}

}  // namespace shardsim::comm
