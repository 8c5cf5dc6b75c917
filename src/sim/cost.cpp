#include "shardsim/sim/cost.hpp"

#include <algorithm>
#include <cmath>

#include "shardsim/plan/buffers.hpp"

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

// [Note: data movement around a collective] What the executor does around the library call
// (exec/executor_ops.cpp), as the engines do it around theirs: an all-gather copies this rank's
// shard into a staging buffer when its input is not laid out for the call, and copies the gathered
// output out into the unit's parameters (FSDP2's copy-in / copy-out); a reduce-scatter or
// all-reduce packs its inputs into each staging buffer in turn (FSDP2's chunk_cat, a DDP bucket),
// zeroing a gathered one first (its padding), and lands the reduced rows in the gradients: added
// into an accumulated shard, copied into anything else. The sizes are the plan's buffers; a
// GPU streams them at HBM speed (microseconds beside the wire), a CPU core moves them element by
// element (compute.accumulate_gelems, compute.stage_gelems), which on 2 CPU ranks is most of a
// reduce-scatter's time (README, "Limits").
double CostModel::movement_time(const plan::Op& op) const {
    const auto& table = plan_.buffers();
    const auto& topo = plan_.scenario().topology;
    auto spec = [&](const plan::BufferUse& u) -> const plan::BufferSpec& { return table[u.buffer]; };
    auto copy = [&](const plan::BufferSpec& from, const plan::BufferSpec& to, double elements) {
        if (elements <= 0) return 0.0;
        if (from.side != to.side) return copy_seconds(topo, static_cast<std::int64_t>(elements) * static_cast<std::int64_t>(dtype_size(from.dtype)));
        if (from.dtype == to.dtype) return compute_.memory_time(elements * static_cast<double>(dtype_size(from.dtype)));
        return compute_.convert_time(elements, static_cast<double>(dtype_size(from.dtype)), static_cast<double>(dtype_size(to.dtype)));
    };
    const plan::BufferUse* in = op.use(plan::Role::input);
    const plan::BufferUse* out = op.use(plan::Role::output);
    if (!in) return 0;
    double t = 0;
    const plan::BufferSpec* cur = &spec(*in);
    for (const auto& u : op.buffers) {
        if (u.role != plan::Role::stage) continue;
        const plan::BufferSpec& stage = spec(u);
        if (stage.arrangement == plan::Arrangement::gathered) t += compute_.memory_time(static_cast<double>(stage.bytes));
        // An all-gather's stage holds this rank's shard; a reduction's, every element packed.
        t += copy(*cur, stage, static_cast<double>(std::min(stage.elements(), cur->elements())));
        cur = &stage;
    }
    const bool gather = op.collective->kind == plan::CollectiveKind::all_gather;
    if (op.collective->kind == plan::CollectiveKind::all_reduce && out) {
        t += copy(*cur, spec(*out), static_cast<double>(spec(*out).elements()));
        cur = &spec(*out);
    }
    const plan::BufferSpec& reduced = gather && out ? spec(*out) : *cur;
    bool landed = false;
    for (const auto& u : op.buffers) {
        if (u.role != plan::Role::result) continue;
        landed = true;
        const plan::BufferSpec& r = spec(u);
        const double n = static_cast<double>(std::min(r.elements(), reduced.elements()));
        if (!gather && r.arrangement == plan::Arrangement::shard)
            t += compute_.accumulate_time(n, static_cast<double>(dtype_size(reduced.dtype)), static_cast<double>(dtype_size(r.dtype)));
        else
            t += copy(reduced, r, n);
    }
    // An all-reduce staged only for the call hands the sum back to its input.
    if (!landed && !gather && !out && cur != &spec(*in)) t += copy(*cur, spec(*in), static_cast<double>(spec(*in).elements()));
    return t;
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
            return collective_time(links_, op.collective->kind, op.collective->size_bytes, plan_.groups().span(op.collective->group),
                                   plan::executor_in_place(op.collective->kind)) +
                   movement_time(op);
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
