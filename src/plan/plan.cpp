#include "shardsim/plan/plan.hpp"

#include <algorithm>
#include <set>

#include "shardsim/core/format.hpp"

namespace shardsim::plan {

namespace {

Precision make_precision(const config::JobConfig& job) {
    Precision p;
    p.params = job.params;
    p.grads = job.grads;
    p.reduce = job.reduce;
    p.master = is_16bit(job.params) && job.master_weights;
    // Optimizer states follow the master weights: fp32 whenever updates happen in fp32.
    p.moments = (job.params == DType::fp32 || p.master) ? DType::fp32 : job.params;
    if (job.optimizer == config::OptimizerKind::adamw)
        p.moment_count = 2;
    else
        p.moment_count = job.momentum > 0 ? 1 : 0;
    return p;
}

void check(const model::Scenario& s, const StrategyTraits& t, const std::vector<model::Unit>& units, Problems& problems) {
    const auto& job = s.job;
    const auto& topo = s.topology;
    const std::string strategy = config::strategy_name(job.strategy);
    if (job.offload_optimizer && !t.shard_optimizer)
        problems.add(job.where("memory.offload_optimizer") + ": bad value 'true': strategy " + strategy +
                     " keeps a full optimizer on every rank (allowed with: zero1, zero2, zero3, fsdp-full-shard, "
                     "fsdp-shard-grad-op, fsdp-hybrid-shard)");
    if (job.offload_params && !t.shard_params)
        problems.add(job.where("memory.offload_params") + ": bad value 'true': strategy " + strategy +
                     " keeps full parameters on every device (allowed with: zero3, fsdp-full-shard, fsdp-shard-grad-op, "
                     "fsdp-hybrid-shard)");
    if (job.lora_rank > 0) {
        const auto allowed = model::lora_modules(s.model.arch);
        std::set<std::string> present;
        for (const auto& u : units)
            for (const auto& tensor : u.tensors)
                if (tensor.role == model::TensorRole::linear && !tensor.module.empty()) present.insert(tensor.module);
        std::vector<std::string> usable;
        for (const auto& m : allowed)
            if (present.count(m)) usable.push_back(m);
        for (const auto& target : job.lora_targets)
            if (!present.count(target) || std::find(allowed.begin(), allowed.end(), target) == allowed.end())
                problems.add(job.where("lora.targets") + ": bad value '" + target + "': model " + s.model.name +
                             " (arch " + model::arch_name(s.model.arch) + ") has no such module (allowed: " +
                             join(usable, ", ") + ")");
    }
    if (job.offload_optimizer && topo.host.memory_bytes <= 0)
        problems.add(s.topology.source.path + ": host.memory_gib: offload needs the host memory of the node");
}

// The divisors of n below it, for "allowed" lists.
std::string divisors_below(std::int64_t n) {
    std::vector<std::string> d;
    for (std::int64_t k = 1; k < n && d.size() < 16; ++k)
        if (n % k == 0) d.push_back(std::to_string(k));
    return join(d, ", ");
}

// replicate x shard (x secondary inside shard), every factor checked against the world and the
// strategy, each problem printed with all the factors.
ParallelDims parallel_dims(const model::Scenario& s, const StrategyTraits& t) {
    const auto& job = s.job;
    ParallelDims d;
    const std::int64_t world = s.world_size();
    d.gpus_per_node = std::min(s.topology.gpus_per_node, world);
    const std::string strategy = config::strategy_name(job.strategy);
    const std::string world_factors = "world " + std::to_string(world) + " = " + std::to_string(s.topology.nodes) +
                                      " node(s) x " + std::to_string(d.gpus_per_node) + " ranks of topology " + s.topology.name;
    Problems problems;
    if (job.shard_size > 0 && !t.hybrid)
        problems.add(job.where("parallel.shard_size") + ": bad value '" + std::to_string(job.shard_size) + "': strategy " +
                     strategy + " shards over the whole world or not at all (allowed: 0, or strategy fsdp-hybrid-shard)");
    if (t.hybrid) {
        d.shard = job.shard_size > 0 ? job.shard_size : d.gpus_per_node;
        if (world % d.shard != 0 || d.shard >= world)
            problems.add((job.shard_size > 0 ? job.where("parallel.shard_size") : job.where("parallel.strategy")) +
                         ": bad value '" + (job.shard_size > 0 ? std::to_string(job.shard_size) : strategy) + "': " +
                         "fsdp-hybrid-shard needs world = replicate x shard with replicate >= 2, but shard " +
                         std::to_string(d.shard) + (job.shard_size > 0 ? std::string() : std::string(" (the GPUs of one node)")) +
                         " and " + world_factors + " (allowed: parallel.shard_size in " +
                         (world > 1 ? divisors_below(world) : std::string("none: one rank has nothing to replicate")) + ")");
    } else if (t.shard_params || t.shard_optimizer) {
        d.shard = world;
    }
    if (job.secondary_shard > 0) {
        if (job.strategy != config::Strategy::zero3)
            problems.add(job.where("parallel.secondary_shard") + ": bad value '" + std::to_string(job.secondary_shard) +
                         "': hpZ is a ZeRO-3 feature, strategy is " + strategy + " (allowed: 0, or strategy zero3)");
        else if (job.offload_params)
            problems.add(job.where("parallel.secondary_shard") + ": bad value '" + std::to_string(job.secondary_shard) +
                         "': shardsim models hpZ's secondary copy on the device only, and memory.offload_params keeps "
                         "parameters on the host (allowed: 0 with offload_params)");
        else if (job.secondary_shard < 2 || d.shard % job.secondary_shard != 0 || job.secondary_shard >= d.shard)
            problems.add(job.where("parallel.secondary_shard") + ": bad value '" + std::to_string(job.secondary_shard) +
                         "': the secondary partition splits the shard group of " + std::to_string(d.shard) + " ranks (" +
                         world_factors + ") into equal parts of 2 or more ranks (allowed: 0, or a divisor of " +
                         std::to_string(d.shard) + " in 2.." + std::to_string(d.shard / 2) + ")");
        else
            d.secondary = job.secondary_shard;
    }
    problems.throw_if_any();
    d.replicate = world / d.shard;
    return d;
}

}  // namespace

std::shared_ptr<const ShardingPlan> ShardingPlan::build(const model::Scenario& scenario) {
    auto plan = std::shared_ptr<ShardingPlan>(new ShardingPlan());
    ShardingPlan& p = *plan;
    p.scenario_ = scenario;
    p.traits_ = &plan::traits(scenario.job.strategy);
    p.units_ = model::build_units(scenario.model, scenario.lora());
    p.program_ = model::forward_program(scenario.model, p.units_);
    p.precision_ = make_precision(scenario.job);

    Problems problems;
    check(scenario, *p.traits_, p.units_, problems);
    problems.throw_if_any();

    p.groups_ = Groups(parallel_dims(scenario, *p.traits_));
    for (const auto& u : p.units_) {
        UnitPlan up;
        up.unit = u.index;
        up.params = make_layout(u, p.param_shards(), false);
        up.state = make_layout(u, p.state_shards(), true);
        up.full_params = make_layout(u, 1, false);
        up.full_state = make_layout(u, 1, true);
        if (p.groups_.secondary_size() > 1) up.secondary = make_layout(u, p.groups_.secondary_size(), false);
        p.unit_plans_.push_back(std::move(up));
    }
    for (auto c = static_cast<int>(p.program_.size()) - 1; c >= 0; --c)
        for (int u : p.program_[static_cast<std::size_t>(c)].reads) {
            int first = -1;
            for (int k = 0; k < static_cast<int>(p.program_.size()) && first < 0; ++k)
                for (int v : p.program_[static_cast<std::size_t>(k)].reads)
                    if (v == u) first = k;
            if (first == c) p.grad_order_.push_back(u);
        }
    if (p.trainable_count().count() == 0)
        throw InputError(scenario.job.where("lora.targets") + ": no trainable parameter is left (allowed: targets that exist in " +
                         scenario.model.name + ")");
    p.engine_ = resolve_engine(scenario, *p.traits_);
    p.buffers_ = build_buffer_table(p);
    return plan;
}

model::BatchShape ShardingPlan::batch_shape() const {
    model::BatchShape b;
    b.batch = scenario_.job.micro_batch;
    b.enc_len = scenario_.encoder_len();
    b.dec_len = scenario_.decoder_len();
    b.fused_attention = scenario_.job.attention == config::AttentionKind::sdpa || scenario_.job.attention == config::AttentionKind::flash;
    return b;
}

Bytes ShardingPlan::param_shard_bytes(int u) const { return bytes_of(unit_plan(u).params.shard, precision_.params); }
Bytes ShardingPlan::gather_output_bytes(int u) const { return bytes_of(unit_plan(u).params.gathered(), precision_.params); }
Bytes ShardingPlan::unsharded_param_bytes(int u) const { return bytes_of(unit_plan(u).params.real, precision_.params); }
Bytes ShardingPlan::unsharded_grad_bytes(int u) const { return bytes_of(unit_plan(u).state.real, precision_.grads); }

Bytes ShardingPlan::reduce_input_bytes(int u) const {
    const FlatLayout& s = unit_plan(u).state;
    // Reduce-scatters take the rank-major padded arrangement; all-reduces the real gradients.
    return bytes_of(state_shards() > 1 ? s.gathered() : s.real, precision_.reduce);
}

Bytes ShardingPlan::grad_shard_bytes(int u) const {
    const FlatLayout& s = unit_plan(u).state;
    if (!shards_grads()) return bytes_of(s.real, precision_.grads);
    if (offload_optimizer()) return Bytes(0);  // the shard goes to the host after each reduction
    return bytes_of(s.shard, precision_.grads);
}

Bytes ShardingPlan::reduce_output_bytes(int u) const { return bytes_of(unit_plan(u).state.shard, precision_.reduce); }

Bytes ShardingPlan::master_bytes(int u) const {
    return precision_.master ? bytes_of(unit_plan(u).state.shard, DType::fp32) : Bytes(0);
}

Bytes ShardingPlan::optimizer_state_bytes(int u) const {
    return bytes_of(unit_plan(u).state.shard, precision_.moments) * precision_.moment_count;
}

// DeepSpeed ZeRO-3 keeps its offloaded gradient partition in the accumulation dtype (the model's
// by default) and converts a sub-group at a time at the step; ZeRO-1/2 (and the others) add into
// an fp32 partition (ENGINES.md §1-2).
DType ShardingPlan::host_grad_dtype() const {
    return engine_settings().zero_stage == 3 ? precision_.grads : DType::fp32;
}

Bytes ShardingPlan::host_grad_bytes(int u) const {
    return offload_optimizer() ? bytes_of(unit_plan(u).state.shard, host_grad_dtype()) : Bytes(0);
}

Bytes ShardingPlan::state_update_bytes(int u) const { return bytes_of(unit_plan(u).state.shard, precision_.params); }

Bytes ShardingPlan::optimizer_traffic_bytes(int u) const {
    const std::int64_t elems = unit_plan(u).state.shard.count();
    const Precision& p = precision_;
    return Bytes(elems * (2 * (p.master ? dtype_size(DType::fp32) : 0) + 2 * p.moment_count * dtype_size(p.moments) +
                          dtype_size(p.grads) + dtype_size(p.params)));
}

MemoryByCategory ShardingPlan::persistent() const {
    MemoryByCategory m = buffers_.persistent_bytes();
    m[MemCategory::runtime_overhead] += scenario_.topology.gpu.runtime_overhead_bytes;
    return m;
}

}  // namespace shardsim::plan
