#include "shardsim/comm/mpi.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "shardsim/comm/half_sum.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/core/system.hpp"

namespace shardsim::comm {

void throw_mpi(const char* file, int line, const char* call, int rc) {
    char msg[MPI_MAX_ERROR_STRING] = {};
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw Error("MPI error: " + std::string(msg, static_cast<std::size_t>(len)), std::string(file) + ":" + std::to_string(line) + ": " + call);
}

namespace {

std::atomic<bool> g_session{false};

// 16-bit sums: MPI has no bf16/fp16 type, so they travel as 2-byte opaque elements with a
// user-defined sum that adds in fp32 and rounds back to nearest-even.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
    add_bf16(static_cast<const std::uint16_t*>(in), static_cast<std::uint16_t*>(inout), *len);
}
void fp16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
    add_fp16(static_cast<const std::uint16_t*>(in), static_cast<std::uint16_t*>(inout), *len);
}

struct Types {
    MPI_Datatype half = MPI_DATATYPE_NULL;
    MPI_Op bf16 = MPI_OP_NULL, fp16 = MPI_OP_NULL;
};
Types& types() {
    static Types t = [] {
        Types x;
        SHARDSIM_MPI_CHECK(MPI_Type_contiguous(2, MPI_BYTE, &x.half));
        SHARDSIM_MPI_CHECK(MPI_Type_commit(&x.half));
        SHARDSIM_MPI_CHECK(MPI_Op_create(&bf16_sum, 1, &x.bf16));
        SHARDSIM_MPI_CHECK(MPI_Op_create(&fp16_sum, 1, &x.fp16));
        return x;
    }();
    return t;
}

MPI_Datatype mpi_type(DType t) { return t == DType::fp32 ? MPI_FLOAT : types().half; }
MPI_Op mpi_sum(DType t) {
    switch (t) {
        case DType::fp32: return MPI_SUM;
        case DType::bf16: return types().bf16;
        case DType::fp16: return types().fp16;
    }
    return MPI_SUM;
}

int checked_count(std::int64_t count) {
    if (count < 0 || count > INT_MAX)
        throw Error("MPI collective of " + std::to_string(count) + " elements exceeds the MPI count limit (" +
                    std::to_string(INT_MAX) + ")");
    return static_cast<int>(count);
}

}  // namespace

// [Note: Open MPI's reduce-scatter] Open MPI 4.1's fixed decision runs MPI_Reduce_scatter_block
// on 2 ranks as a linear reduce-then-scatter from 256 KiB: measured on this project's host by
// forcing each of coll/tuned's algorithms, the default times equal algorithm 1 (basic linear) from
// 256 KiB and recursive halving (3) below it, and recursive halving is 2-3x faster at 256 KiB -
// 4 MiB on 2 ranks, all-reduce and all-gather unchanged. Recursive halving's traffic is a ring's,
// (n-1)/n of the buffer sent and reduced per rank, the shape the collective model prices
// (sim/links.hpp), so a CPU host's reduce-scatters run as fast as the library can and as the
// simulator predicts. Unless the user set them (an OMPI_MCA_* variable, or mpirun --mca, which
// sets the same), each process asks coll/tuned for it before MPI starts; every other collective
// keeps the library's own decision (its algorithm parameter stays 0, "use the fixed rules").
// Other MPI implementations ignore the variables.
static void prefer_halving_reduce_scatter() {
    if (std::getenv("OMPI_MCA_coll_tuned_reduce_scatter_block_algorithm") || std::getenv("OMPI_MCA_coll_tuned_use_dynamic_rules")) return;
    setenv("OMPI_MCA_coll_tuned_use_dynamic_rules", "1", 0);
    setenv("OMPI_MCA_coll_tuned_reduce_scatter_block_algorithm", "3", 0);
}

MpiSession::MpiSession(int* argc, char*** argv) {
    if (g_session.exchange(true)) throw Error("MpiSession created twice: MPI is initialised once per process");
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
        prefer_halving_reduce_scatter();
        SHARDSIM_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided_));
        finalize_ = true;
    } else {
        MPI_Query_thread(&provided_);
    }
    // Errors come back as codes, so that SHARDSIM_MPI_CHECK can name the call.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiSession::~MpiSession() {
    if (finalize_) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
    }
    g_session = false;
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    SHARDSIM_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    SHARDSIM_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
}

MpiCommunicator::~MpiCommunicator() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCommunicator::all_gather(const void* send, void* recv, std::int64_t count, DType dtype) {
    const int n = checked_count(count);
    const auto* own = static_cast<const char*>(recv) + static_cast<std::int64_t>(rank_) * count * dtype_size(dtype);
    SHARDSIM_MPI_CHECK(MPI_Allgather(send == own ? MPI_IN_PLACE : send, n, mpi_type(dtype), recv, n, mpi_type(dtype), comm_));
}

void MpiCommunicator::reduce_scatter(const void* send, void* recv, std::int64_t count, DType dtype) {
    const std::int64_t block = count * dtype_size(dtype);
    auto* full = const_cast<char*>(static_cast<const char*>(send));
    if (recv != full + static_cast<std::int64_t>(rank_) * block) {
        SHARDSIM_MPI_CHECK(MPI_Reduce_scatter_block(send, recv, checked_count(count), mpi_type(dtype), mpi_sum(dtype), comm_));
        return;
    }
    // In place (the NCCL convention: recv is this rank's block of send). MPI's in-place form
    // leaves the result at the start of the buffer instead, so it moves to this rank's block.
    SHARDSIM_MPI_CHECK(MPI_Reduce_scatter_block(MPI_IN_PLACE, full, checked_count(count), mpi_type(dtype), mpi_sum(dtype), comm_));
    if (rank_ != 0) std::memmove(recv, full, static_cast<std::size_t>(block));
}

void MpiCommunicator::all_reduce(const void* send, void* recv, std::int64_t count, DType dtype) {
    SHARDSIM_MPI_CHECK(MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, checked_count(count), mpi_type(dtype),
                                     mpi_sum(dtype), comm_));
}

void MpiCommunicator::broadcast(void* buf, std::int64_t count, DType dtype, int root) {
    SHARDSIM_MPI_CHECK(MPI_Bcast(buf, checked_count(count), mpi_type(dtype), root, comm_));
}

void MpiCommunicator::barrier() { SHARDSIM_MPI_CHECK(MPI_Barrier(comm_)); }

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
    MPI_Comm sub = MPI_COMM_NULL;
    SHARDSIM_MPI_CHECK(MPI_Comm_split(comm_, color, key, &sub));
    return std::make_unique<MpiCommunicator>(sub, true);
}

void MpiCommunicator::abort() noexcept { MPI_Abort(comm_, 1); }

std::string host_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
    return buf;
}

void say_from_rank(int rank, const std::string& line) {
    const std::string text = "[rank " + std::to_string(rank) + " on " + host_name() + "] " + line + "\n";
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(STDERR_FILENO, text.data() + done, text.size() - done);
        if (n <= 0) break;  // stderr gone: nothing better to do with the message
        done += static_cast<std::size_t>(n);
    }
}

namespace {
MPI_Comm node_comm(MPI_Comm comm) {
    MPI_Comm node = MPI_COMM_NULL;
    SHARDSIM_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
    return node;
}
}  // namespace

int node_local_rank(MPI_Comm comm) {
    MPI_Comm node = node_comm(comm);
    int r = 0;
    MPI_Comm_rank(node, &r);
    MPI_Comm_free(&node);
    return r;
}

int node_local_size(MPI_Comm comm) {
    MPI_Comm node = node_comm(comm);
    int n = 0;
    MPI_Comm_size(node, &n);
    MPI_Comm_free(&node);
    return n;
}

int node_cpu_cores(MPI_Comm comm) {
    const std::vector<int> mine = affinity_cpus();
    const int width = std::max(mine.back() + 1, 1);
    MPI_Comm node = node_comm(comm);
    int widest = 0;
    SHARDSIM_MPI_CHECK(MPI_Allreduce(&width, &widest, 1, MPI_INT, MPI_MAX, node));
    std::vector<unsigned char> mask(static_cast<std::size_t>(widest), 0), all(mask.size(), 0);
    for (int c : mine) mask[static_cast<std::size_t>(c)] = 1;
    SHARDSIM_MPI_CHECK(MPI_Allreduce(mask.data(), all.data(), widest, MPI_UNSIGNED_CHAR, MPI_BOR, node));
    MPI_Comm_free(&node);
    return static_cast<int>(std::count(all.begin(), all.end(), 1));
}

void keep_large_allocations_in_heap() {
    // As high as the parameters go. With the thresholds of shared/NOTES-environment.md (1 GiB
    // and INT_MAX) a 1 GiB reduce-scatter or all-reduce was 10-20x slower than at 512 MiB on 2
    // ranks: its temporaries reached the mmap threshold, or freeing them left a heap top above
    // the trim threshold, and the next call page-faulted them again. -1 turns trimming off.
    mallopt(M_MMAP_THRESHOLD, INT_MAX);
    mallopt(M_TRIM_THRESHOLD, -1);
}

}  // namespace shardsim::comm
