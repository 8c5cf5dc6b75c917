#include "shardsim/plan/bound.hpp"

#include <algorithm>

#include "shardsim/plan/engine.hpp"

namespace shardsim::plan {

BoundModel::BoundModel(const model::ModelSpec& spec, const model::LoraSpec& lora)
    : spec_(spec), units_(model::build_units(spec, lora)), program_(model::forward_program(spec, units_)) {}

void BoundModel::prepare(std::int64_t shards) {
    if (params_.count(shards)) return;
    std::vector<Counts>& p = params_[shards];
    std::vector<Counts>& s = state_[shards];
    for (const auto& u : units_) {
        const FlatLayout all = make_layout(u, shards, false);
        const FlatLayout trainable = make_layout(u, shards, true);
        p.push_back({all.shard, all.real});
        s.push_back({trainable.shard, trainable.real});
    }
}

UnitSizes BoundModel::sizes(int unit, std::int64_t param_shards, std::int64_t state_shards) const {
    const Counts& p = params_.at(param_shards)[static_cast<std::size_t>(unit)];
    const Counts& s = state_.at(state_shards)[static_cast<std::size_t>(unit)];
    return {p.shard, p.shard * param_shards, p.real, s.shard, s.shard * state_shards, s.real};
}

ActivationInputs BoundModel::activation_inputs(const model::Scenario& scenario, DType compute) const {
    ActivationInputs in;
    in.model = &spec_;
    in.units = &units_;
    in.program = &program_;
    in.behaviour = model_behaviour(scenario, compute);
    in.shape = micro_batch_shape(scenario);
    in.checkpointing = scenario.job.activation_checkpointing;
    return in;
}

ActivationSums activation_sums(const ActivationInputs& in) {
    ActivationSums a;
    const int calls = static_cast<int>(in.program->size());
    for (int c = 0; c < calls; ++c) {
        const CallActivations ca = call_activations(in, c);
        // A call's input is the previous call's output: counted once, as that call's.
        a.kept += ca.forward_bytes() - (c == 0 ? ca.input_bytes() : 0);
        if (c == calls - 1) a.head_backward = ca.backward_workspace + ca.input_bytes();
    }
    return a;
}

namespace {

// The persistent buffers of plan/buffers.cpp (persistent_states, grad_arena, the DDP bucket
// storage, DeepSpeed ZeRO-3's IPG buffer), summed with the same rules.
MemoryByCategory persistent_states(const BoundModel& m, const model::Scenario& s, const ShardingRules& r) {
    MemoryByCategory out;
    const bool off = r.offload_optimizer;
    const Precision& prec = r.precision;
    const bool ds = r.traits->engine == Engine::deepspeed, ds3 = ds && s.job.strategy == config::Strategy::zero3;
    std::int64_t arena = 0;
    for (const auto& u : m.units()) {
        const UnitSizes sz = m.sizes(u.index, r.param_shards(), r.state_shards());
        out[r.offload_params ? MemCategory::offloaded : MemCategory::params] += r.param_shard_bytes(sz).count();
        if (r.shards_grads())
            out[MemCategory::grads] += r.grad_shard_bytes(sz).count();
        else if (sz.state_real.count() > 0)
            arena += r.grad_shard_bytes(sz).count();
        out[off ? MemCategory::offloaded : MemCategory::master_params] += r.master_bytes(sz).count();
        if (prec.moment_count > 0)
            out[off ? MemCategory::offloaded : MemCategory::optimizer_states] +=
                r.optimizer_state_bytes(sz).count() / prec.moment_count * prec.moment_count;
        if (!off) continue;
        out[MemCategory::offloaded] += r.host_grad_bytes(sz).count();
        // ZeRO-3 sends its fp32 master up instead of a 16-bit staging copy; ZeRO-1/2 accumulate
        // several backwards in a host buffer of the gradient dtype.
        if (!r.offload_params && !(ds3 && prec.master)) out[MemCategory::offloaded] += r.state_update_bytes(sz).count();
        if (ds && !ds3 && s.job.grad_accum > 1) out[MemCategory::offloaded] += bytes_of(sz.state_shard, prec.grads).count();
    }
    out[MemCategory::grads] += arena;
    const EngineSettings e = resolve_engine(s, *r.traits);
    if (r.traits->reduction == GradReduction::all_reduce_buckets && r.dims.world() > 1 && !e.gradient_as_bucket_view)
        out[MemCategory::comm_buffers] += arena / dtype_size(prec.grads) * dtype_size(prec.reduce);
    if (r.traits->engine == Engine::deepspeed && e.zero_stage == 3)
        out[MemCategory::comm_buffers] += e.reduce_bucket_elements * dtype_size(prec.reduce);
    out[MemCategory::runtime_overhead] += s.topology.gpu.runtime_overhead_bytes;
    return out;
}

// The head's backward: the units it reads gathered, and the gradient buffers it allocates (a
// unit's first backward use is its last forward use; plan/buffers.cpp gives units a gradient
// buffer of their own under DeepSpeed when gradients are sharded, else when they are transient).
std::int64_t head_units(const BoundModel& m, const ShardingRules& r) {
    const auto& prog = m.program();
    const int last = static_cast<int>(prog.size()) - 1;
    const bool grad_buffers = r.traits->engine == Engine::deepspeed ? r.shards_grads() : r.transient_grads();
    std::int64_t bytes = 0;
    // Units not resharded after forward (FSDP SHARD_GRAD_OP, ZeRO-2 as FSDP runs it) stay gathered
    // from their forward to their backward: at the head's backward every other unit is too.
    if (r.gathers_params() && !r.traits->reshard_after_forward) {
        std::vector<bool> head(m.units().size(), false);
        for (int u : prog.back().reads) head[static_cast<std::size_t>(u)] = true;
        for (const auto& u : m.units())
            if (!head[static_cast<std::size_t>(u.index)])
                bytes += r.unsharded_param_bytes(m.sizes(u.index, r.param_shards(), r.state_shards())).count();
    }
    for (int u : prog.back().reads) {
        const UnitSizes sz = m.sizes(u, r.param_shards(), r.state_shards());
        if (r.gathers_params()) bytes += r.unsharded_param_bytes(sz).count();
        int last_use = -1;
        for (int c = 0; c <= last; ++c)
            for (int v : prog[static_cast<std::size_t>(c)].reads)
                if (v == u) last_use = c;
        if (grad_buffers && last_use == last && sz.state_real.count() > 0) bytes += r.unsharded_grad_bytes(sz).count();
    }
    return bytes;
}

}  // namespace

MemoryBound memory_bound(const BoundModel& m, const model::Scenario& s, const ShardingRules& r, const ActivationSums& a) {
    MemoryBound b;
    b.persistent = persistent_states(m, s, r);
    b.head_units = head_units(m, r);
    b.host_bytes_per_node = b.persistent.host_total() * r.dims.gpus_per_node;
    return with_activations(b, a, s.topology.gpu.allocator_fragmentation);
}

MemoryBound with_activations(MemoryBound b, const ActivationSums& a, double frag) {
    b.transient = a.kept + a.head_backward + b.head_units;
    b.device_bytes = b.persistent.device_total() + b.transient + static_cast<std::int64_t>(frag * static_cast<double>(b.transient));
    return b;
}

}  // namespace shardsim::plan
