// Raw NCCL collectives: the baseline of `shardsim bench` on GPUs (see raw.hpp). A communicator
// of its own, so nothing of NcclCommunicator is on the measured path.
#include <cuda_runtime.h>
#include <nccl.h>

#include "shardsim/comm/mpi.hpp"
#include "shardsim/comm/raw.hpp"

#define SHARDSIM_NCCL_CHECK(call)                                                                           \
    do {                                                                                                    \
        const ncclResult_t shardsim_nccl_rc_ = (call);                                                      \
        if (shardsim_nccl_rc_ != ncclSuccess)                                                               \
            ::shardsim::throw_error(__FILE__, __LINE__, std::string(#call) + " failed: " + ncclGetErrorString(shardsim_nccl_rc_)); \
    } while (0)

namespace shardsim::comm {

namespace {

ncclDataType_t raw_type(DType t) {
    return t == DType::fp32 ? ncclFloat32 : (t == DType::bf16 ? ncclBfloat16 : ncclFloat16);
}

class RawNccl final : public RawCollectives {
public:
    RawNccl(ncclComm_t comm, cudaStream_t stream) : comm_(comm), stream_(stream) {}
    ~RawNccl() override { ncclCommDestroy(comm_); }
    RawNccl(const RawNccl&) = delete;
    RawNccl& operator=(const RawNccl&) = delete;

    std::string library() const override { return "NCCL"; }
    bool has_sum(DType) const override { return true; }
    void all_gather(const void* send, void* recv, std::int64_t count, DType dtype) override {
        SHARDSIM_NCCL_CHECK(ncclAllGather(send, recv, static_cast<size_t>(count), raw_type(dtype), comm_, stream_));
    }
    void reduce_scatter(const void* send, void* recv, std::int64_t count, DType dtype) override {
        SHARDSIM_NCCL_CHECK(ncclReduceScatter(send, recv, static_cast<size_t>(count), raw_type(dtype), ncclSum, comm_, stream_));
    }
    void all_reduce(const void* send, void* recv, std::int64_t count, DType dtype) override {
        SHARDSIM_NCCL_CHECK(ncclAllReduce(send, recv, static_cast<size_t>(count), raw_type(dtype), ncclSum, comm_, stream_));
    }

private:
    ncclComm_t comm_;
    cudaStream_t stream_;
};

}  // namespace

std::unique_ptr<RawCollectives> make_raw_nccl_impl(MPI_Comm mpi, void* cuda_stream) {
    int rank = 0, size = 1;
    SHARDSIM_MPI_CHECK(MPI_Comm_rank(mpi, &rank));
    SHARDSIM_MPI_CHECK(MPI_Comm_size(mpi, &size));
    ncclUniqueId id{};
    if (rank == 0) SHARDSIM_NCCL_CHECK(ncclGetUniqueId(&id));
    SHARDSIM_MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mpi));
    ncclComm_t comm = nullptr;
    SHARDSIM_NCCL_CHECK(ncclCommInitRank(&comm, size, id, rank));
    return std::make_unique<RawNccl>(comm, static_cast<cudaStream_t>(cuda_stream));
}

}  // namespace shardsim::comm
