#include "shardsim/plan/strategy.hpp"

namespace shardsim::plan {

const char* engine_name(Engine e) {
    switch (e) {
        case Engine::ddp: return "PyTorch DDP";
        case Engine::deepspeed: return "DeepSpeed ZeRO";
        case Engine::fsdp: return "PyTorch FSDP";
    }
    return "?";
}

// The ZeRO paper (Rajbhandari et al. 2020) defines stages 1-3; PyTorch FSDP's sharding strategies
// map onto them (NO_SHARD ~ DDP, SHARD_GRAD_OP ~ ZeRO-2 with parameters gathered from forward to
// backward, FULL_SHARD ~ ZeRO-3, HYBRID_SHARD = FULL_SHARD inside a shard group + DDP across
// replicas). DDP and ZeRO-1 skip the gradient reduction on all but the last micro-batch (DDP
// no_sync; DeepSpeed stage 1 reduces at the accumulation boundary); ZeRO-2, ZeRO-3 and sharded
// FSDP reduce every micro-batch into the gradient shard, as they do by default.
const StrategyTraits& traits(config::Strategy s) {
    using config::Strategy;
    static const StrategyTraits ddp{
        .engine = Engine::ddp,
        .reduction = GradReduction::all_reduce_buckets,
        .summary = "replicated params/grads/optimizer; bucketed all-reduce of gradients"};
    // ZeRO-1 keeps full gradients but only needs its shard of their sum.
    static const StrategyTraits zero1{
        .engine = Engine::deepspeed,
        .shard_optimizer = true,
        .gather_after_step = true,
        .reduction = GradReduction::reduce_scatter_per_unit,
        .summary = "optimizer states sharded; reduce-scatter grads, all-gather params after the step"};
    static const StrategyTraits zero2{
        .engine = Engine::deepspeed,
        .shard_grads = true,
        .shard_optimizer = true,
        .gather_after_step = true,
        .reduce_every_micro_batch = true,
        .reduction = GradReduction::reduce_scatter_per_unit,
        .summary = "grads and optimizer states sharded; reduce-scatter grads, all-gather params after the step"};
    static const StrategyTraits zero3{
        .engine = Engine::deepspeed,
        .shard_params = true,
        .shard_grads = true,
        .shard_optimizer = true,
        .reshard_after_forward = true,
        .reduce_every_micro_batch = true,
        .reduction = GradReduction::reduce_scatter_per_unit,
        .summary = "everything sharded; all-gather per unit in forward and backward as DeepSpeed's coordinator decides"};
    static const StrategyTraits full{
        .engine = Engine::fsdp,
        .shard_params = true,
        .shard_grads = true,
        .shard_optimizer = true,
        .reshard_after_forward = true,
        .reduce_every_micro_batch = true,
        .reduction = GradReduction::reduce_scatter_per_unit,
        .summary = "everything sharded; all-gather per unit in forward and backward"};
    static const StrategyTraits grad_op{
        .engine = Engine::fsdp,
        .shard_params = true,
        .shard_grads = true,
        .shard_optimizer = true,
        .reduce_every_micro_batch = true,
        .reduction = GradReduction::reduce_scatter_per_unit,
        .summary = "everything sharded; params stay gathered from forward to backward"};
    static const StrategyTraits no_shard{
        .engine = Engine::fsdp,
        .reduction = GradReduction::all_reduce_per_unit,
        .summary = "replicated like DDP; one all-reduce per unit"};
    static const StrategyTraits hybrid{
        .engine = Engine::fsdp,
        .shard_params = true,
        .shard_grads = true,
        .shard_optimizer = true,
        .reshard_after_forward = true,
        .hybrid = true,
        .reduce_every_micro_batch = true,
        .reduction = GradReduction::reduce_scatter_per_unit,
        .summary = "full shard inside a shard group (parallel.shard_size; default the GPUs of a node), replicas all-reduce the shards"};
    switch (s) {
        case Strategy::ddp: return ddp;
        case Strategy::zero1: return zero1;
        case Strategy::zero2: return zero2;
        case Strategy::zero3: return zero3;
        case Strategy::fsdp_full_shard: return full;
        case Strategy::fsdp_shard_grad_op: return grad_op;
        case Strategy::fsdp_no_shard: return no_shard;
        case Strategy::fsdp_hybrid_shard: return hybrid;
    }
    return ddp;
}

}  // namespace shardsim::plan
