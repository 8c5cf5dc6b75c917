// The bench engine at 2, 3, 4 and 6 ranks (MPI backend, host memory): every size of every op
// checks its data and finds nothing wrong, in both placements and every dtype; every rank's
// figures reach every rank; the HDF5 file keeps them, and its busbw is nccl-tests' arithmetic
// on the recorded times.
#include <doctest/doctest.h>
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "mpi_helpers.hpp"
#include "shardsim/bench/collectives.hpp"
#include "shardsim/io/bench_file.hpp"

using namespace shardsim;
using namespace shardsim::test;
using plan::CollectiveKind;

namespace {


bench::BenchOptions small(DType t, std::int64_t ranks_per_node) {
    bench::BenchOptions o;
    o.ops = {CollectiveKind::all_gather, CollectiveKind::reduce_scatter, CollectiveKind::all_reduce};
    o.min_bytes = 4;
    o.max_bytes = 96 * 1024;  // not a power of two: counts that do not divide evenly come up
    o.factor = 3;
    o.iters = 2;
    o.warmup = 1;
    o.dtype = t;
    o.ranks_per_node = ranks_per_node;
    return o;
}

}  // namespace

TEST_CASE("bench: #wrong is 0 for every size, op, placement and dtype; figures reach every rank") {
    const int n = world_size();
    auto device = device::make_cpu_device();
    for (DType t : {DType::fp32, DType::bf16, DType::fp16}) {
        CAPTURE(dtype_name(t));
        const bench::BenchRun run = bench::run_bench(small(t, n), *device, MPI_COMM_WORLD);
        if (n == 1) {  // a collective over one rank moves nothing: no group is benchmarked
            CHECK(run.groups.empty());
            CHECK(run.rows.empty());
            continue;
        }
        REQUIRE(run.groups.size() == 1);
        REQUIRE_FALSE(run.rows.empty());
        CHECK(run.wrong_total() == 0);
        CHECK(run.rank_time_s.size() == run.rows.size() * static_cast<std::size_t>(n));
        for (const auto& r : run.rows) {
            CHECK(r.time_s > 0);
            CHECK(r.size_bytes % dtype_size(t) == 0);
            // Reductions in 16 bits have no raw MPI counterpart; everything else has.
            const bool raw = t == DType::fp32 || r.kind == CollectiveKind::all_gather;
            CHECK(std::isnan(r.raw_time_s) == !raw);
        }
    }
}

TEST_CASE("bench on the node and replicate groups of a two-node split") {
    const int n = world_size();
    if (n % 2 != 0 || n < 4) return;  // needs 2 nodes of >= 2 ranks
    auto device = device::make_cpu_device();
    const bench::BenchRun run = bench::run_bench(small(DType::fp32, n / 2), *device, MPI_COMM_WORLD);
    REQUIRE(run.groups.size() == 3);
    CHECK(run.groups[1].name == "node");
    CHECK(run.groups[2].span.nodes == 2);
    CHECK(run.wrong_total() == 0);
}

TEST_CASE("bench file: every rank's times, and busbw recomputed from a recorded time") {
    const int n = world_size();
    auto device = device::make_cpu_device();
    const bench::BenchRun run = bench::run_bench(small(DType::fp32, n), *device, MPI_COMM_WORLD);
    if (world_rank() != 0) return;
    const std::string path = "/tmp/shardsim-test-bench-" + std::to_string(n) + ".h5";
    io::write_bench_file(path, run);
    const bench::BenchRun back = io::read_bench_file(path);
    const auto busbw = io::read_bench_column(path, "busbw_GBps");
    const auto algbw = io::read_bench_column(path, "algbw_GBps");
    REQUIRE(back.rows.size() == run.rows.size());
    const std::size_t rows = back.rows.size();
    for (std::size_t i = 0; i < rows; ++i) {
        const auto& r = back.rows[i];
        // The row's time is the mean of the ranks' recorded times.
        double mean = 0;
        for (int q = 0; q < n; ++q) mean += back.rank_time_s[static_cast<std::size_t>(q) * rows + i];
        mean /= n;
        CHECK(r.time_s == doctest::Approx(mean));
        const double alg = static_cast<double>(r.size_bytes) / mean / 1e9;
        const double factor = r.kind == CollectiveKind::all_reduce ? 2.0 * (n - 1) / n : (n - 1.0) / n;
        CHECK(algbw[i] == doctest::Approx(alg));
        CHECK(busbw[i] == doctest::Approx(alg * factor));
    }
    std::remove(path.c_str());
}
