#include "shardsim/plan/rules.hpp"

namespace shardsim::plan {

UnitSizes unit_sizes(const FlatLayout& params, const FlatLayout& state) {
    return {params.shard, params.gathered(), params.real, state.shard, state.gathered(), state.real};
}

Bytes ShardingRules::reduce_input_bytes(const UnitSizes& u) const {
    // Reduce-scatters take the rank-major padded arrangement; all-reduces the real gradients.
    return bytes_of(state_shards() > 1 ? u.state_gathered : u.state_real, precision.reduce);
}

Bytes ShardingRules::grad_shard_bytes(const UnitSizes& u) const {
    if (!shards_grads()) return bytes_of(u.state_real, precision.grads);
    if (offload_optimizer) return Bytes(0);  // the shard goes to the host after each reduction
    return bytes_of(u.state_shard, precision.grads);
}

Bytes ShardingRules::master_bytes(const UnitSizes& u) const {
    return precision.master ? bytes_of(u.state_shard, DType::fp32) : Bytes(0);
}

Bytes ShardingRules::optimizer_state_bytes(const UnitSizes& u) const {
    return bytes_of(u.state_shard, precision.moments) * precision.moment_count;
}

Bytes ShardingRules::host_grad_bytes(const UnitSizes& u) const {
    return offload_optimizer ? bytes_of(u.state_shard, host_grad_dtype) : Bytes(0);
}

Bytes ShardingRules::optimizer_traffic_bytes(const UnitSizes& u) const {
    const std::int64_t elems = u.state_shard.count();
    const Precision& p = precision;
    return Bytes(elems * (2 * (p.master ? dtype_size(DType::fp32) : 0) + 2 * p.moment_count * dtype_size(p.moments) +
                          dtype_size(p.grads) + dtype_size(p.params)));
}

ShardingRules sharding_rules(const model::Scenario& scenario, const ParallelDims& dims) {
    ShardingRules r;
    r.traits = &traits(scenario.job.strategy);
    r.dims = dims;
    r.precision = precision_of(scenario.job);
    r.offload_optimizer = scenario.job.offload_optimizer;
    r.offload_params = scenario.job.offload_params;
    r.host_grad_dtype = scenario.job.strategy == config::Strategy::zero3 ? r.precision.grads : DType::fp32;
    return r;
}

}  // namespace shardsim::plan
