// Open MPI's reduce-scatter (and all-reduce) through comm::MpiCommunicator with glibc's default
// allocation thresholds, or with comm::keep_large_allocations_in_heap() called before MPI starts
// as `shardsim run` and `shardsim bench` do (see shared/NOTES-environment.md: Open MPI mallocs its
// reduction temporaries on every call; served by fresh mmaps, they page-fault every time).
//   usage: mpirun -np 2 bench_malloc_effect default|heap [max_mib]
// Prints one line per size: size_bytes, reduce_scatter busbw, all_reduce busbw (decimal GB/s,
// nccl-tests' definitions; mean time over ranks of 10 timed calls after 2 warm-up calls).
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "shardsim/comm/mpi.hpp"
#include "shardsim/plan/collective.hpp"

using namespace shardsim;

namespace {

double mean_time(comm::MpiCommunicator& c, bool reduce_scatter, std::vector<float>& send, std::vector<float>& recv,
                 std::int64_t elements) {
    const std::int64_t count = reduce_scatter ? elements / c.size() : elements;
    auto call = [&] {
        if (reduce_scatter)
            c.reduce_scatter(send.data(), recv.data(), count, DType::fp32);
        else
            c.all_reduce(send.data(), recv.data(), count, DType::fp32);
    };
    for (int i = 0; i < 2; ++i) call();
    constexpr int kIters = 10;
    c.barrier();
    const double t0 = MPI_Wtime();
    for (int i = 0; i < kIters; ++i) call();
    double t = (MPI_Wtime() - t0) / kIters, sum = 0;
    MPI_Allreduce(&t, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return sum / c.size();
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode != "default" && mode != "heap") {
        std::fprintf(stderr, "usage: mpirun -np 2 bench_malloc_effect default|heap [max_mib]\n");
        return 2;
    }
    const std::int64_t max_bytes = (argc > 2 ? std::atoll(argv[2]) : 64) << 20;
    if (mode == "heap") comm::keep_large_allocations_in_heap();
    comm::MpiSession session(&argc, &argv);
    comm::MpiCommunicator world(MPI_COMM_WORLD, false);
    // Normal floats (1.0): denormals would slow the sums for another reason.
    std::vector<float> send(static_cast<std::size_t>(max_bytes / 4), 1.0f), recv(send.size(), 0.0f);
    const std::int64_t n = world.size();
    for (std::int64_t size = 1 << 20; size <= max_bytes; size *= 4) {
        const std::int64_t elements = size / 4 / n * n;
        const double rs = mean_time(world, true, send, recv, elements);
        const double ar = mean_time(world, false, send, recv, elements);
        const std::int64_t bytes = elements * 4;
        if (world.rank() == 0)
            std::printf("%lld %.3f %.3f\n", static_cast<long long>(bytes),
                        plan::busbw_GBps(plan::CollectiveKind::reduce_scatter, bytes, n, rs),
                        plan::busbw_GBps(plan::CollectiveKind::all_reduce, bytes, n, ar));
    }
    return 0;
}
