#pragma once
// `shardsim bench --predict`: the collective model's nccl-tests table for a topology, without
// running anything (no MPI, no GPU): per group and op one line per size with time, algbw, busbw
// and the algorithm and protocol the model picks, and beside it the published nccl-tests busbw the
// topology cites ([nccl_tests] section), with the model's difference from it. Text and JSON from
// one call.
#include <string>
#include <vector>

#include "shardsim/config/topology.hpp"
#include "shardsim/io/json.hpp"
#include "shardsim/plan/collective.hpp"
#include "shardsim/sim/links.hpp"

namespace shardsim::report {

struct PredictOptions {
    std::vector<plan::CollectiveKind> ops;
    std::int64_t min_bytes = 8;
    std::int64_t max_bytes = 1LL << 30;
    std::int64_t factor = 2;
    std::int64_t element_bytes = 4;  // for the count column
};

struct PredictReport {
    io::Json json;
    std::string text;
};

PredictReport predicted_bench(const config::TopologyConfig& topo, const PredictOptions& o);

// The span of `ranks` ranks placed node-major on the topology's nodes (the published figures' group).
plan::GroupSpan span_of_ranks(std::int64_t ranks, std::int64_t gpus_per_node);

}  // namespace shardsim::report
