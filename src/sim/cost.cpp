#include "shardsim/sim/cost.hpp"

#include <algorithm>
#include <cmath>

namespace shardsim::sim {

using plan::CollectiveKind;

CostModel::CostModel(const plan::ShardingPlan& plan)
    : plan_(plan),
      links_(LinkModel::from(plan.scenario().topology)),
      compute_(ComputeModel::from(plan.scenario().topology, plan.precision().params)) {}


bool CostModel::uses_host_path(const plan::Op& op) const {
    if (op.copy_bytes > 0) return true;
    return op.collective && sim::uses_host_path(links_, plan_.groups().span(op.collective->group));
}

double traffic_bytes(const plan::Op& op) {
    // Backward reads what forward wrote and writes gradients of the same size.
    return static_cast<double>(op.activation_bytes) * (op.kind == plan::OpKind::backward ? 2.0 : 1.0);
}

double compute_seconds(const ComputeModel& c, double flops, double activation_bytes) {
    const double rate = c.peak_flops * c.spec.gemm_efficiency;
    return (rate > 0 ? flops / rate : 0) + c.memory_time(activation_bytes);
}

double copy_seconds(const config::TopologyConfig& topo, std::int64_t bytes) {
    // At most the node's host path shared by its GPUs (pcie-no-p2p's host bus).
    const double bw = std::min(topo.host.h2d_gbps, topo.intra.host_bus_gbps / static_cast<double>(std::max<std::int64_t>(1, topo.gpus_per_node))) * 1e9;
    return static_cast<double>(bytes) / bw + 10e-6;
}

double optimizer_seconds(const config::TopologyConfig& topo, const ComputeModel& c, bool on_host, std::int64_t elements,
                         std::int64_t bytes) {
    // On a CPU topology the device is the host: its step runs the host's kernel.
    if (on_host || topo.gpu.is_cpu) return static_cast<double>(elements) / (topo.host.cpu_optimizer_gelems * 1e9);
    return c.memory_time(static_cast<double>(bytes)) + c.spec.launch_us * 1e-6;
}

double CostModel::op_time(const plan::Op& op) const {
    // Ranks beyond a CPU host's cores take turns on them ([Note: a CPU host's cores]).
    const auto& topo = plan_.scenario().topology;
    return unshared_time(op) * (topo.gpu.is_cpu ? topo.cpu_host().slowdown : 1.0);
}

double CostModel::unshared_time(const plan::Op& op) const {
    const auto& topo = plan_.scenario().topology;
    switch (op.kind) {
        case plan::OpKind::forward:
        case plan::OpKind::recompute:
        case plan::OpKind::backward: return compute_.op_time(op.work, traffic_bytes(op));
        case plan::OpKind::all_gather:
        case plan::OpKind::reduce_scatter:
        case plan::OpKind::all_reduce:
            return collective_time(links_, op.collective->kind, op.collective->size_bytes, plan_.groups().span(op.collective->group));
        case plan::OpKind::upload_params:
        case plan::OpKind::offload_grads:
        case plan::OpKind::upload_update:
            return copy_seconds(topo, op.copy_bytes);
        case plan::OpKind::optimizer_step:
            return optimizer_seconds(topo, compute_, op.stream == plan::OpStream::host, op.optimizer_elements, op.optimizer_bytes);
        case plan::OpKind::reshard:
        case plan::OpKind::backward_end: return 0;
    }
    return 0;
}

}  // namespace shardsim::sim
