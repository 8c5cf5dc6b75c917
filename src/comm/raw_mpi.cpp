// Raw MPI collectives: the baseline of `shardsim bench` (see raw.hpp).
#include <climits>

#include "shardsim/comm/mpi.hpp"
#include "shardsim/comm/raw.hpp"

namespace shardsim::comm {

namespace {

class RawMpi final : public RawCollectives {
public:
    explicit RawMpi(MPI_Comm comm) : comm_(comm) {
        SHARDSIM_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
        // 16-bit values travel as unsigned 16-bit integers; only gathers are defined on them.
        type_[0] = MPI_FLOAT;
        type_[1] = MPI_UINT16_T;
    }
    std::string library() const override { return "MPI"; }
    bool has_sum(DType dtype) const override { return dtype == DType::fp32; }

    void all_gather(const void* send, void* recv, std::int64_t count, DType dtype) override {
        const auto* own = static_cast<const char*>(recv) + rank_ * count * dtype_size(dtype);
        SHARDSIM_MPI_CHECK(MPI_Allgather(send == own ? MPI_IN_PLACE : send, to_int(count), type(dtype), recv,
                                         to_int(count), type(dtype), comm_));
    }
    void reduce_scatter(const void* send, void* recv, std::int64_t count, DType dtype) override {
        const auto* own = static_cast<const char*>(send) + rank_ * count * dtype_size(dtype);
        if (recv == own)  // in place: MPI reads the whole buffer and writes the result at its start
            SHARDSIM_MPI_CHECK(MPI_Reduce_scatter_block(MPI_IN_PLACE, const_cast<void*>(send), to_int(count), type(dtype),
                                                        MPI_SUM, comm_));
        else
            SHARDSIM_MPI_CHECK(MPI_Reduce_scatter_block(send, recv, to_int(count), type(dtype), MPI_SUM, comm_));
    }
    void all_reduce(const void* send, void* recv, std::int64_t count, DType dtype) override {
        SHARDSIM_MPI_CHECK(MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, to_int(count), type(dtype), MPI_SUM, comm_));
    }

private:
    MPI_Datatype type(DType t) const { return type_[t == DType::fp32 ? 0 : 1]; }
    static int to_int(std::int64_t count) {
        if (count < 0 || count > INT_MAX) throw Error("raw MPI collective of " + std::to_string(count) + " elements exceeds INT_MAX");
        return static_cast<int>(count);
    }
    MPI_Comm comm_;
    int rank_ = 0;
    MPI_Datatype type_[2];
};

}  // namespace

std::unique_ptr<RawCollectives> make_raw_mpi(MPI_Comm comm) { return std::make_unique<RawMpi>(comm); }

}  // namespace shardsim::comm
