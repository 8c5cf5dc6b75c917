#pragma once
// Prices of the schedule's ops on a topology.
//   compute      GEMM FLOPs / (peak of the compute dtype x compute_efficiency) + the bytes of
//                activations written and read / HBM bandwidth (the elementwise, memory-bound part)
//   collectives  alpha-beta: steps x latency + size x bus factor / bus bandwidth, for a ring; a
//                tree (log2 steps) and, for groups spanning nodes, a hierarchical all-reduce
//                (reduce-scatter in the node, all-reduce across nodes, all-gather in the node)
//                compete for all-reduce and the fastest wins, as NCCL's tuner picks
//   links        inside a node: intra_node bandwidth per GPU and latency; a group that spans
//                nodes runs at min(intra, NICs x NIC bandwidth) per rank with the network's
//                latency; one rank per node (a replica group) shares its node's NICs with the
//                other local ranks doing the same
//   copies       host<->device bytes / h2d bandwidth + 10 us launch
//   optimizer    on the device: bytes it touches / HBM bandwidth; on the host: elements / CPU rate
#include <cstdint>

#include "shardsim/config/topology.hpp"
#include "shardsim/plan/schedule.hpp"

namespace shardsim::sim {

using plan::GroupSpan;

// Link parameters the collective model uses; from the topology, or fitted by `calibrate`.
struct LinkModel {
    double intra_latency_s = 0;
    double intra_bandwidth_Bps = 0;  // per GPU, one direction, bytes/s
    double inter_latency_s = 0;
    double inter_bandwidth_Bps = 0;  // per NIC
    std::int64_t nics = 1;
    std::int64_t gpus_per_node = 1;

    static LinkModel from(const config::TopologyConfig& t);
};

double collective_time(const LinkModel& links, plan::CollectiveKind kind, std::int64_t size_bytes, const GroupSpan& span);

class CostModel {
public:
    explicit CostModel(const plan::ShardingPlan& plan);
    double op_time(const plan::Op& op) const;
    const LinkModel& links() const { return links_; }

private:
    const plan::ShardingPlan& plan_;
    LinkModel links_;
};

}  // namespace shardsim::sim
