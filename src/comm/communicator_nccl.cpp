// The NCCL backend: device buffers, stream-ordered on the executor's communication stream.
#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>

#include "nccl_common.hpp"

namespace shardsim::comm {

namespace {

class NcclCommunicator final : public Communicator {
public:
    NcclCommunicator(ncclComm_t comm, cudaStream_t stream) : comm_(comm), stream_(stream) {
        SHARDSIM_NCCL_CHECK(ncclCommUserRank(comm_, &rank_));
        SHARDSIM_NCCL_CHECK(ncclCommCount(comm_, &size_));
    }
    ~NcclCommunicator() override {
        if (comm_) ncclCommDestroy(comm_);
    }
    NcclCommunicator(const NcclCommunicator&) = delete;
    NcclCommunicator& operator=(const NcclCommunicator&) = delete;

    std::string backend() const override { return "nccl"; }
    int rank() const override { return rank_; }
    int size() const override { return size_; }

    void all_gather(const void* send, void* recv, std::int64_t count, DType dtype) override {
        SHARDSIM_NCCL_CHECK(ncclAllGather(send, recv, static_cast<size_t>(count), nccl_type(dtype), comm_, stream_));
    }
    void reduce_scatter(const void* send, void* recv, std::int64_t count, DType dtype) override {
        SHARDSIM_NCCL_CHECK(ncclReduceScatter(send, recv, static_cast<size_t>(count), nccl_type(dtype), ncclSum, comm_, stream_));
    }
    void all_reduce(const void* send, void* recv, std::int64_t count, DType dtype) override {
        SHARDSIM_NCCL_CHECK(ncclAllReduce(send, recv, static_cast<size_t>(count), nccl_type(dtype), ncclSum, comm_, stream_));
    }
    void broadcast(void* buf, std::int64_t count, DType dtype, int root) override {
        SHARDSIM_NCCL_CHECK(ncclBroadcast(buf, buf, static_cast<size_t>(count), nccl_type(dtype), root, comm_, stream_));
    }
    void barrier() override {
        float* one = nullptr;
        if (cudaMallocAsync(reinterpret_cast<void**>(&one), sizeof(float), stream_) != cudaSuccess)
            throw Error("NCCL barrier: cudaMallocAsync failed");
        SHARDSIM_NCCL_CHECK(ncclAllReduce(one, one, 1, ncclFloat32, ncclSum, comm_, stream_));
        cudaFreeAsync(one, stream_);
        if (cudaStreamSynchronize(stream_) != cudaSuccess) throw Error("NCCL barrier: stream synchronisation failed");
    }
    std::unique_ptr<Communicator> split(int color, int key) override {
        ncclComm_t sub = nullptr;
        SHARDSIM_NCCL_CHECK(ncclCommSplit(comm_, color, key, &sub, nullptr));
        return std::make_unique<NcclCommunicator>(sub, stream_);
    }
    void abort() noexcept override {
        if (comm_) ncclCommAbort(comm_);
        comm_ = nullptr;
    }

private:
    ncclComm_t comm_ = nullptr;
    cudaStream_t stream_ = nullptr;
    int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator_impl(MPI_Comm mpi, void* cuda_stream) {
    ncclComm_t comm = make_nccl_comm(mpi);
    return std::make_unique<NcclCommunicator>(comm, static_cast<cudaStream_t>(cuda_stream));
}

}  // namespace shardsim::comm
