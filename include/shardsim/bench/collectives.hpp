#pragma once
// The engine of `shardsim bench`: an nccl-tests-style sweep of collectives over the groups a
// sharding plan uses. Every size runs out of place and in place, through the Communicator
// wrappers and through the raw library (comm/raw.hpp) on the same buffers, and checks every
// element of its result.
//
// [Note: bench groups] The groups are the plan's, with ranks placed node-major (rank r on node
// r / ranks_per_node), as ShardingPlan splits them:
//   world      every rank: the shard group of full sharding (zero2, zero3, fsdp-full-shard)
//   node       the ranks of one node: the shard group of fsdp-hybrid-shard (several nodes only)
//   replicate  one rank per node, same local rank: its replicate group (several nodes only)
// A group of one rank has nothing to measure and is left out. All instances of a group (every
// node, every local rank) run at once, as they do in training.
//
// [Note: bench figures] nccl-tests' definitions (plan/collective.hpp): `size` is the gathered
// output of all-gather, the whole input of reduce-scatter, the buffer of all-reduce; `count` is
// the count argument of the call (elements per rank for all-gather and reduce-scatter). A
// rank's time is its wall time over the timed iterations divided by their number (MPI_Wtime,
// after a barrier; on a GPU the stream is synchronised before the clock stops); a row's time is
// the mean over all ranks, as nccl-tests reports by default. Ours and raw alternate in two
// rounds (ours, raw, raw, ours) so that drift during a size does not favour either.
#include <mpi.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "shardsim/core/dtype.hpp"
#include "shardsim/device/backend.hpp"
#include "shardsim/device/device.hpp"
#include "shardsim/plan/collective.hpp"
#include "shardsim/plan/groups.hpp"

namespace shardsim::bench {

using device::Device;

struct BenchOptions {
    std::vector<plan::CollectiveKind> ops;
    std::int64_t min_bytes = 8;
    std::int64_t max_bytes = 1LL << 30;
    std::int64_t factor = 2;
    int iters = 20;
    int warmup = 5;
    DType dtype = DType::fp32;
    device::Backend backend = device::Backend::mpi;
    std::int64_t ranks_per_node = 1;   // node-major placement
};

struct BenchGroup {
    std::string name;              // world | node | replicate
    plan::RankGroup ranks;         // size and stride ([Note: rank groups])
    plan::GroupSpan span;          // what the collective model needs
    std::int64_t instances = 1;    // how many such groups run at once
};

// One measured line: one op, one size, one placement, on one group ([Note: bench figures]).
struct BenchRow {
    int group = 0;
    plan::CollectiveKind kind = plan::CollectiveKind::all_gather;
    std::int64_t size_bytes = 0;
    std::int64_t count = 0;
    bool in_place = false;
    double time_s = 0;
    double raw_time_s = std::numeric_limits<double>::quiet_NaN();  // NaN: the library has no such call
    std::int64_t wrong = 0;  // result elements that differ from the expected ones, summed over ranks
};

struct BenchRun {
    std::string backend;      // mpi | nccl
    std::string raw_library;  // MPI | NCCL
    DType dtype = DType::fp32;
    std::int64_t world_size = 1;
    std::int64_t nodes = 1;
    std::int64_t ranks_per_node = 1;
    int iters = 0;
    int warmup = 0;
    std::string topology;             // INI text of --topology, or ""
    std::vector<std::string> hosts;   // per rank
    std::vector<BenchGroup> groups;
    std::vector<BenchRow> rows;
    // Every rank's own figures, rank-major: index rank * rows.size() + row.
    std::vector<double> rank_time_s;
    std::vector<double> rank_raw_time_s;
    std::vector<std::int64_t> rank_wrong;

    std::int64_t wrong_total() const;
};

// min, min*factor, ... while <= max.
std::vector<std::int64_t> bench_sizes(std::int64_t min_bytes, std::int64_t max_bytes, std::int64_t factor);
// The groups of `world` ranks placed node-major, `ranks_per_node` to a node ([Note: bench groups]).
std::vector<BenchGroup> bench_groups(std::int64_t world, std::int64_t ranks_per_node);

// Collective over `world`: runs the sweep on `device` (host memory for MPI, a GPU for NCCL) and
// returns the whole run, every rank's figures included, on every rank.
BenchRun run_bench(const BenchOptions& options, Device& device, MPI_Comm world);

}  // namespace shardsim::bench
