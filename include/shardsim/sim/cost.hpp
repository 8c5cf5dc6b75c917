#pragma once
// Prices of the schedule's ops on a topology.
//   compute      by shape (compute.hpp): GEMMs with tile / wave quantisation and a roofline,
//                fused attention at its own rate, activation traffic over HBM, kernel launches
//   collectives  the collective model (links.hpp): ring / tree, NCCL's protocols, link kinds
//   copies       host<->device bytes / h2d bandwidth (at most the node's host path over its
//                GPUs) + 10 us launch; with pcie-no-p2p they queue with the staged collectives
//                on the node's host path (uses_host_path)
//   optimizer    on the device: bytes it touches / achieved HBM bandwidth + a launch; on the
//                host: elements / CPU rate
#include <cstdint>

#include "shardsim/config/topology.hpp"
#include "shardsim/plan/schedule.hpp"
#include "shardsim/sim/compute.hpp"
#include "shardsim/sim/links.hpp"

namespace shardsim::sim {

// The prices the schedule's ops and the plan search's fast estimate (study/estimate.cpp) share:
// compute without shapes (FLOPs at the GEMM efficiency plus traffic over HBM: the estimate has no
// GEMM shapes), host<->device copies and the optimizer step.
// The activation traffic a forward, recompute or backward op's memory-bound kernels move.
double traffic_bytes(const plan::Op& op);
double compute_seconds(const ComputeModel& compute, double flops, double activation_bytes);
double copy_seconds(const config::TopologyConfig& topo, std::int64_t bytes);
double optimizer_seconds(const config::TopologyConfig& topo, const ComputeModel& compute, bool on_host, std::int64_t elements,
                         std::int64_t bytes);

class CostModel {
public:
    explicit CostModel(const plan::ShardingPlan& plan);
    double op_time(const plan::Op& op) const;
    // The op moves data over the node's path to host memory that copies and pcie-no-p2p
    // collectives share: the simulator runs such ops one at a time.
    bool uses_host_path(const plan::Op& op) const;
    // The copies, conversions and additions around a collective's library call ([Note: data
    // movement around a collective]): part of the op's time.
    double movement_time(const plan::Op& op) const;
    const LinkModel& links() const { return links_; }
    const ComputeModel& compute() const { return compute_; }

private:
    double unshared_time(const plan::Op& op) const;  // with the cores to itself

    const plan::ShardingPlan& plan_;
    LinkModel links_;
    ComputeModel compute_;
};

}  // namespace shardsim::sim
