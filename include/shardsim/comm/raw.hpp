#pragma once
// The underlying library's collectives called directly — MPI_Allgather, MPI_Reduce_scatter_block,
// MPI_Allreduce, or ncclAllGather, ncclReduceScatter, ncclAllReduce — with no shardsim code around
// them: the baseline `shardsim bench` holds the Communicator wrappers against. Buffers are passed
// as the Communicator takes them (see communicator.hpp); the only translation is the library's
// own spelling of "in place" (MPI_IN_PLACE), so in-place reduce-scatter on MPI leaves its result
// where MPI puts it: at the start of the buffer.
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>

#include "shardsim/core/dtype.hpp"

namespace shardsim::comm {

class RawCollectives {
public:
    virtual ~RawCollectives() = default;
    virtual std::string library() const = 0;  // "MPI" | "NCCL"
    // MPI has no 16-bit float sum: a raw 16-bit reduction does not exist there.
    virtual bool has_sum(DType dtype) const = 0;
    virtual void all_gather(const void* send, void* recv, std::int64_t count, DType dtype) = 0;
    virtual void reduce_scatter(const void* send, void* recv, std::int64_t count, DType dtype) = 0;
    virtual void all_reduce(const void* send, void* recv, std::int64_t count, DType dtype) = 0;
};

// Over `comm` (not owned; it must outlive the result).
std::unique_ptr<RawCollectives> make_raw_mpi(MPI_Comm comm);
// Its own NCCL communicator over the ranks of `comm` (collective over `comm`), issuing on
// `cuda_stream`. Throws when this build has no NCCL.
std::unique_ptr<RawCollectives> make_raw_nccl(MPI_Comm comm, void* cuda_stream);

}  // namespace shardsim::comm
