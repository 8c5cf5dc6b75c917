#pragma once
// The HDF5 file of `shardsim bench` (its own small layout, format "shardsim-bench", version 1):
//
//   /                  attrs: format, schema_version, shardsim_version, backend, raw_library,
//                             dtype, world_size, nodes, ranks_per_node, iters, warmup,
//                             topology (INI text of --topology, "" when none),
//                             hosts (comma-separated, rank order)
//   /groups            compound, one row per group ([Note: bench groups] in bench/collectives.hpp):
//                             name, ranks, nodes, per_node, instances
//   /rows              compound, one row per group, op, size and placement:
//                             group, ranks, nodes, per_node, op, size_bytes, count, in_place,
//                             time_s, algbw_GBps, busbw_GBps, wrong, raw_time_s, raw_busbw_GBps,
//                             ours_over_raw
//   /rank_time_s       float64 [world_size][rows]: each rank's own mean time per row (ours)
//   /rank_raw_time_s   float64 [world_size][rows]: the same through the raw library
//   /rank_wrong        int64   [world_size][rows]: each rank's wrong elements per row
//
// Sizes, counts and times are nccl-tests' ([Note: bench figures]); algbw and busbw in decimal
// GB/s; raw_* and ours_over_raw are NaN where the raw library has no such call (MPI has no
// 16-bit float sum). Strings are fixed-length NUL-terminated (16 bytes in compound columns), so
// h5dump and h5py read every field. The derived columns are for those readers: read_bench_file
// recomputes them from the times.
#include <string>
#include <vector>

#include "shardsim/bench/collectives.hpp"

namespace shardsim::io {

inline constexpr int kBenchSchemaVersion = 1;

// Written by one process (rank 0 of the bench holds every rank's figures).
void write_bench_file(const std::string& path, const bench::BenchRun& run);
bench::BenchRun read_bench_file(const std::string& path);
// A float64 column of /rows as stored (e.g. "busbw_GBps"), for tests and tools.
std::vector<double> read_bench_column(const std::string& path, const std::string& column);

}  // namespace shardsim::io
