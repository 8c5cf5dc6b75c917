#pragma once
// What a strategy, its rank groups, the precision and offload decide for every unit before any
// buffer exists: into how many shards parameters and optimizer states are split, which per-unit
// state a rank keeps, and its size from the unit's layouts. ShardingPlan answers through these
// rules, and the plan search's memory bound (plan/bound.hpp) uses the same rules on cached layouts
// without building a plan, so that every size has one formula.
#include <cstdint>

#include "shardsim/config/job.hpp"
#include "shardsim/core/dtype.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/model/flops.hpp"
#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/groups.hpp"
#include "shardsim/plan/layout.hpp"
#include "shardsim/plan/strategy.hpp"

namespace shardsim::plan {

struct Precision {
    DType params = DType::bf16;
    DType grads = DType::bf16;
    DType reduce = DType::bf16;
    bool master = false;          // fp32 master copy of the trainable parameters
    DType moments = DType::fp32;  // optimizer state dtype
    int moment_count = 2;         // AdamW 2, SGD with momentum 1
};

// The precision a job asks for: master weights only for 16-bit parameters, optimizer states in
// fp32 whenever updates happen in fp32.
Precision precision_of(const config::JobConfig& job);

// The element counts of a unit's two layouts that sizes are made of: `params` covers every tensor
// over the parameter shard group, `state` the trainable tensors over the optimizer-state group.
struct UnitSizes {
    Elements param_shard, param_gathered, param_real;
    Elements state_shard, state_gathered, state_real;
};
UnitSizes unit_sizes(const FlatLayout& params, const FlatLayout& state);

struct ShardingRules {
    const StrategyTraits* traits = nullptr;
    ParallelDims dims;
    Precision precision;
    bool offload_optimizer = false;
    bool offload_params = false;
    // DeepSpeed ZeRO-3 keeps its offloaded gradient partition in the accumulation dtype (the
    // model's by default) and converts a sub-group at a time at the step; ZeRO-1/2 (and the
    // others) add into an fp32 partition (ENGINES.md §1-2).
    DType host_grad_dtype = DType::fp32;

    std::int64_t param_shards() const { return traits->shard_params ? dims.shard : 1; }
    std::int64_t state_shards() const { return traits->shard_optimizer ? dims.shard : 1; }
    // Parameters are gathered (or uploaded) per unit before use, and freed after.
    bool gathers_params() const { return traits->shard_params && (param_shards() > 1 || offload_params); }
    // Gradients leave backward as a per-unit buffer that a reduce-scatter consumes.
    bool shards_grads() const { return traits->shard_grads; }
    // Backward writes a unit's gradients into a buffer of their own, freed when reduced (or sent
    // to the host); otherwise into persistent gradient storage.
    bool transient_grads() const { return shards_grads() && (state_shards() > 1 || offload_optimizer); }

    // Per-unit byte sizes on one rank (ShardingPlan's accessors of the same names).
    Bytes param_shard_bytes(const UnitSizes& u) const { return bytes_of(u.param_shard, precision.params); }
    Bytes gather_output_bytes(const UnitSizes& u) const { return bytes_of(u.param_gathered, precision.params); }
    Bytes unsharded_param_bytes(const UnitSizes& u) const { return bytes_of(u.param_real, precision.params); }
    Bytes unsharded_grad_bytes(const UnitSizes& u) const { return bytes_of(u.state_real, precision.grads); }
    Bytes reduce_input_bytes(const UnitSizes& u) const;
    Bytes grad_shard_bytes(const UnitSizes& u) const;
    Bytes reduce_output_bytes(const UnitSizes& u) const { return bytes_of(u.state_shard, precision.reduce); }
    Bytes master_bytes(const UnitSizes& u) const;
    Bytes optimizer_state_bytes(const UnitSizes& u) const;
    Bytes host_grad_bytes(const UnitSizes& u) const;
    Bytes state_update_bytes(const UnitSizes& u) const { return bytes_of(u.state_shard, precision.params); }
    Bytes optimizer_traffic_bytes(const UnitSizes& u) const;
};

// replicate x shard (x secondary inside shard) for a job, every factor checked against the world
// and the strategy: an InputError prints each problem with all the factors.
ParallelDims parallel_dims(const model::Scenario& scenario, const StrategyTraits& traits);

// The job's choices that the strategy or the topology cannot honour (offload without a sharded
// optimizer, LoRA targets the model lacks, offload without host memory), one line each.
void check_job(const model::Scenario& scenario, const StrategyTraits& traits, const std::vector<model::Unit>& units,
               Problems& problems);

// Sequences and tokens of one micro-batch on one rank.
model::BatchShape micro_batch_shape(const model::Scenario& scenario);

// The rules of a scenario whose dimensions are known to be valid (parallel_dims checks them).
ShardingRules sharding_rules(const model::Scenario& scenario, const ParallelDims& dims);

}  // namespace shardsim::plan
