#pragma once
// What each strategy shards, when it gathers, and how it reduces gradients: one row per strategy,
// read by the plan and the schedule builder. Nothing else switches on the strategy.
#include <string>

#include "shardsim/config/job.hpp"

namespace shardsim::plan {

enum class GradReduction {
    all_reduce_buckets,       // DDP: bucketed all-reduce of full gradients
    all_reduce_per_unit,      // FSDP NO_SHARD: one all-reduce per unit
    reduce_scatter_per_unit,  // ZeRO-1/2/3, FSDP sharded: one reduce-scatter per unit
};

// The framework whose behaviour a strategy follows (ENGINES.md): PyTorch DDP, DeepSpeed ZeRO,
// PyTorch FSDP (FSDP1, as Hugging Face's Trainer and Accelerate wrap it by default).
enum class Engine { ddp, deepspeed, fsdp };
const char* engine_name(Engine e);

struct StrategyTraits {
    Engine engine = Engine::ddp;
    bool shard_params = false;           // resident parameters are shards (gathered per unit)
    bool shard_grads = false;            // gradients are kept as shards after reduction
    bool shard_optimizer = false;        // master weights and optimizer states are shards
    bool reshard_after_forward = false;  // free gathered parameters after forward (gather again in backward)
    bool gather_after_step = false;      // ZeRO-1/2: all-gather the updated shards into the full parameters
    bool hybrid = false;                 // shard inside a node, replicate across nodes
    bool reduce_every_micro_batch = false;  // false: gradients are reduced on the last micro-batch only (no_sync)
    GradReduction reduction = GradReduction::all_reduce_buckets;
    const char* summary = "";
};

const StrategyTraits& traits(config::Strategy s);

}  // namespace shardsim::plan
