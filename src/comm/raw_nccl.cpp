// Raw NCCL collectives: the baseline of `shardsim bench` on GPUs (see raw.hpp). A communicator
// of its own, so nothing of NcclCommunicator is on the measured path.
#include <cuda_runtime.h>
#include <nccl.h>

#include "nccl_common.hpp"
#include "shardsim/comm/raw.hpp"

namespace shardsim::comm {

namespace {

class RawNccl final : public RawCollectives {
public:
    RawNccl(ncclComm_t comm, cudaStream_t stream) : comm_(comm), stream_(stream) {}
    ~RawNccl() override { ncclCommDestroy(comm_); }
    RawNccl(const RawNccl&) = delete;
    RawNccl& operator=(const RawNccl&) = delete;

    std::string library() const override { return "NCCL"; }
    bool has_sum(DType) const override { return true; }
    void all_gather(const void* send, void* recv, std::int64_t count, DType dtype) override {
        SHARDSIM_NCCL_CHECK(ncclAllGather(send, recv, static_cast<size_t>(count), nccl_type(dtype), comm_, stream_));
    }
    void reduce_scatter(const void* send, void* recv, std::int64_t count, DType dtype) override {
        SHARDSIM_NCCL_CHECK(ncclReduceScatter(send, recv, static_cast<size_t>(count), nccl_type(dtype), ncclSum, comm_, stream_));
    }
    void all_reduce(const void* send, void* recv, std::int64_t count, DType dtype) override {
        SHARDSIM_NCCL_CHECK(ncclAllReduce(send, recv, static_cast<size_t>(count), nccl_type(dtype), ncclSum, comm_, stream_));
    }

private:
    ncclComm_t comm_;
    cudaStream_t stream_;
};

}  // namespace

std::unique_ptr<RawCollectives> make_raw_nccl_impl(MPI_Comm mpi, void* cuda_stream) {
    ncclComm_t comm = make_nccl_comm(mpi);
    return std::make_unique<RawNccl>(comm, static_cast<cudaStream_t>(cuda_stream));
}

}  // namespace shardsim::comm
