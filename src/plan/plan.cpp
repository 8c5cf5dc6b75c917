#include "shardsim/plan/plan.hpp"

#include <algorithm>
#include <set>

#include "shardsim/core/format.hpp"

namespace shardsim::plan {

std::int64_t Groups::shard_nodes() const { return ceil_div(shard_size, gpus_per_node); }

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
    const std::string topo_factors = "topology " + topo.name + " has " + std::to_string(topo.nodes) + " node(s) x " +
                                     std::to_string(topo.gpus_per_node) + " GPUs";
    if (t.hybrid && topo.nodes < 2)
        problems.add(job.where("parallel.strategy") + ": bad value '" + strategy + "': " + topo_factors +
                     ", so there is nothing to replicate across nodes (allowed: fsdp-full-shard here, or a topology with nodes >= 2)");
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

    Groups& g = p.groups_;
    g.world = scenario.world_size();
    g.gpus_per_node = std::min(scenario.topology.gpus_per_node, g.world);
    if (p.traits_->hybrid)
        g.shard_size = g.gpus_per_node;
    else if (p.traits_->shard_params || p.traits_->shard_optimizer)
        g.shard_size = g.world;
    else
        g.shard_size = 1;
    g.replicate_size = g.world / g.shard_size;
    SHARDSIM_ASSERT(g.shard_size * g.replicate_size == g.world, "groups must tile the world");

    for (const auto& u : p.units_) {
        UnitPlan up;
        up.unit = u.index;
        up.params = make_layout(u, p.param_shards(), false);
        up.state = make_layout(u, p.state_shards(), true);
        up.full_params = make_layout(u, 1, false);
        up.full_state = make_layout(u, 1, true);
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
    return plan;
}

model::BatchShape ShardingPlan::batch_shape() const {
    model::BatchShape b;
    b.batch = scenario_.job.micro_batch;
    b.enc_len = scenario_.encoder_len();
    b.dec_len = scenario_.decoder_len();
    b.flash = scenario_.job.attention == config::AttentionKind::flash;
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

Bytes ShardingPlan::host_grad_bytes(int u) const {
    return offload_optimizer() ? bytes_of(unit_plan(u).state.shard, DType::fp32) : Bytes(0);
}

Bytes ShardingPlan::state_update_bytes(int u) const { return bytes_of(unit_plan(u).state.shard, precision_.params); }

MemoryByCategory ShardingPlan::persistent() const {
    MemoryByCategory m;
    for (const auto& u : units_) {
        const int i = u.index;
        if (offload_params())
            m[MemCategory::offloaded] += param_shard_bytes(i).count();
        else
            m[MemCategory::params] += param_shard_bytes(i).count();
        m[MemCategory::grads] += grad_shard_bytes(i).count();
        if (offload_optimizer()) {
            // Host: fp32 gradient shard, master weights, optimizer states, and (when the
            // parameters live on the device) the pinned 16-bit staging copy of the update.
            m[MemCategory::offloaded] += host_grad_bytes(i).count() + master_bytes(i).count() +
                                         optimizer_state_bytes(i).count();
            if (!offload_params()) m[MemCategory::offloaded] += state_update_bytes(i).count();
        } else {
            m[MemCategory::master_params] += master_bytes(i).count();
            m[MemCategory::optimizer_states] += optimizer_state_bytes(i).count();
        }
    }
    m[MemCategory::runtime_overhead] += scenario_.topology.gpu.runtime_overhead_bytes;
    return m;
}

}  // namespace shardsim::plan
