#include "shardsim/sim/cost.hpp"

#include <algorithm>
#include <cmath>

namespace shardsim::sim {

using plan::CollectiveKind;

LinkModel LinkModel::from(const config::TopologyConfig& t) {
    LinkModel l;
    l.intra_latency_s = t.intra.latency_us * 1e-6;
    l.intra_bandwidth_Bps = t.intra.bandwidth_gbps * 1e9;
    l.inter_latency_s = t.inter.latency_us * 1e-6;
    l.inter_bandwidth_Bps = t.inter.bandwidth_gbps * 1e9;
    l.nics = t.inter.nics;
    l.gpus_per_node = t.gpus_per_node;
    return l;
}

namespace {

// Ring steps of a collective over n ranks.
double ring_steps(CollectiveKind k, std::int64_t n) {
    const double s = static_cast<double>(n - 1);
    return k == CollectiveKind::all_reduce ? 2 * s : (k == CollectiveKind::broadcast ? s : s);
}

double alpha_beta(CollectiveKind k, std::int64_t size, std::int64_t n, double alpha, double bw, double steps) {
    if (n <= 1 || bw <= 0) return 0;
    return steps * alpha + static_cast<double>(size) * plan::bus_factor(k, n) / bw;
}

}  // namespace

double collective_time(const LinkModel& l, CollectiveKind kind, std::int64_t size, const GroupSpan& g) {
    if (g.ranks <= 1 || size <= 0) return 0;
    double alpha = l.intra_latency_s, bw = l.intra_bandwidth_Bps;
    if (g.nodes > 1) {
        alpha = l.inter_latency_s;
        const double node_bw = l.inter_bandwidth_Bps * static_cast<double>(l.nics);
        // One rank per node: the node's other ranks run the same collective on their own rails.
        bw = g.per_node == 1 ? node_bw / static_cast<double>(std::max<std::int64_t>(1, l.gpus_per_node))
                             : std::min(l.intra_bandwidth_Bps, node_bw);
    }
    double t = alpha_beta(kind, size, g.ranks, alpha, bw, ring_steps(kind, g.ranks));
    if (kind == CollectiveKind::all_reduce) {
        // Double binary tree: fewer steps, same bytes per rank.
        const double tree = alpha_beta(kind, size, g.ranks, alpha, bw, 2 * std::ceil(std::log2(static_cast<double>(g.ranks))));
        t = std::min(t, tree);
        if (g.nodes > 1 && g.per_node > 1) {
            const GroupSpan node{g.per_node, 1, g.per_node};
            const GroupSpan rail{g.nodes, g.nodes, 1};
            const double hier = collective_time(l, CollectiveKind::reduce_scatter, size, node) +
                                collective_time(l, CollectiveKind::all_reduce, size / g.per_node, rail) +
                                collective_time(l, CollectiveKind::all_gather, size, node);
            t = std::min(t, hier);
        }
    }
    return t;
}

CostModel::CostModel(const plan::ShardingPlan& plan) : plan_(plan), links_(LinkModel::from(plan.scenario().topology)) {}

double CostModel::op_time(const plan::Op& op) const {
    const auto& topo = plan_.scenario().topology;
    const auto& prec = plan_.precision();
    switch (op.kind) {
        case plan::OpKind::forward:
        case plan::OpKind::recompute:
        case plan::OpKind::backward: {
            const double peak = topo.gpu.peak_tflops(prec.params) * 1e12 * topo.gpu.compute_efficiency;
            // Backward reads what forward wrote and writes gradients of the same size.
            const double traffic = static_cast<double>(op.activation_bytes) * (op.kind == plan::OpKind::backward ? 2.0 : 1.0);
            return op.flops / peak + traffic / (topo.gpu.hbm_gbps * 1e9);
        }
        case plan::OpKind::all_gather:
        case plan::OpKind::reduce_scatter:
        case plan::OpKind::all_reduce:
            return collective_time(links_, op.collective->kind, op.collective->size_bytes, plan_.groups().span(op.collective->group));
        case plan::OpKind::upload_params:
        case plan::OpKind::offload_grads:
        case plan::OpKind::upload_update:
            return static_cast<double>(op.copy_bytes) / (topo.host.h2d_gbps * 1e9) + 10e-6;
        case plan::OpKind::optimizer_step: {
            if (op.stream == plan::OpStream::host)
                return static_cast<double>(op.optimizer_elements) / (topo.host.cpu_optimizer_gelems * 1e9);
            return static_cast<double>(op.optimizer_bytes) / (topo.gpu.hbm_gbps * 1e9);
        }
        case plan::OpKind::reshard:
        case plan::OpKind::backward_end: return 0;
    }
    return 0;
}

}  // namespace shardsim::sim
