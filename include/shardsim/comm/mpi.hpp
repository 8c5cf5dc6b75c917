#pragma once
// MPI: the session guard, the host-buffer communicator, and helpers about where a rank runs.
#include <mpi.h>

#include <memory>
#include <string>

#include "shardsim/comm/communicator.hpp"
#include "shardsim/core/error.hpp"

#define SHARDSIM_MPI_CHECK(call)                                                                   \
    do {                                                                                           \
        const int shardsim_mpi_rc_ = (call);                                                       \
        if (shardsim_mpi_rc_ != MPI_SUCCESS) ::shardsim::comm::throw_mpi(__FILE__, __LINE__, #call, shardsim_mpi_rc_); \
    } while (0)

namespace shardsim::comm {

[[noreturn]] void throw_mpi(const char* file, int line, const char* call, int rc);

// MPI_Init_thread / MPI_Finalize. Asks for MPI_THREAD_MULTIPLE (the executor's communication
// thread calls MPI while the compute thread works) and refuses to exist twice.
class MpiSession {
public:
    MpiSession(int* argc, char*** argv);
    ~MpiSession();
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;
    int thread_level() const { return provided_; }

private:
    int provided_ = 0;
    bool finalize_ = false;
};

class MpiCommunicator final : public Communicator {
public:
    // Wraps `comm`; frees it on destruction when `owned`.
    MpiCommunicator(MPI_Comm comm, bool owned);
    ~MpiCommunicator() override;
    MpiCommunicator(const MpiCommunicator&) = delete;
    MpiCommunicator& operator=(const MpiCommunicator&) = delete;

    std::string backend() const override { return "mpi"; }
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    void all_gather(const void* send, void* recv, std::int64_t count, DType dtype) override;
    void reduce_scatter(const void* send, void* recv, std::int64_t count, DType dtype) override;
    void all_reduce(const void* send, void* recv, std::int64_t count, DType dtype) override;
    void broadcast(void* buf, std::int64_t count, DType dtype, int root) override;
    void barrier() override;
    std::unique_ptr<Communicator> split(int color, int key) override;
    void abort() noexcept override;
    MPI_Comm handle() const { return comm_; }

private:
    MPI_Comm comm_;
    bool owned_;
    int rank_ = 0, size_ = 1;
};

// This process's host name, and its rank among the ranks of its node (MPI_Comm_split_type).
std::string host_name();
// "[rank R on HOST] LINE" on stderr in one write, so that the lines of ranks writing at once (which
// mpirun and srun merge into one stream) stay whole.
void say_from_rank(int rank, const std::string& line);
int node_local_rank(MPI_Comm comm);
int node_local_size(MPI_Comm comm);
// The CPUs the ranks of this node may run on between them: the union of their affinity masks
// (each rank's alone is one core when mpirun binds ranks to cores). Collective over `comm`.
int node_cpu_cores(MPI_Comm comm);

// Open MPI allocates reduction temporaries with malloc on every call; glibc serves large blocks
// with fresh mmaps, so each call page-faults its buffers again and reduce-scatter runs 20-100x
// below what the library can do. Raising glibc's mmap threshold to its maximum and turning heap
// trimming off (before MPI starts) keeps those blocks in the heap, up to 2 GiB temporaries.
// See shared/NOTES-environment.md; bench/malloc_effect.sh measures the difference.
void keep_large_allocations_in_heap();

}  // namespace shardsim::comm
