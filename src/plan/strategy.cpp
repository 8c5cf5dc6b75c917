#include "shardsim/plan/strategy.hpp"

namespace shardsim::plan {

// The ZeRO paper (Rajbhandari et al. 2020) defines stages 1-3; PyTorch FSDP's sharding strategies
// map onto them (NO_SHARD ~ DDP, SHARD_GRAD_OP ~ ZeRO-2 with parameters gathered from forward to
// backward, FULL_SHARD ~ ZeRO-3, HYBRID_SHARD = FULL_SHARD inside a node + DDP across nodes).
// DDP and ZeRO-1 skip the gradient reduction on all but the last micro-batch (DDP no_sync);
// ZeRO-2, ZeRO-3 and sharded FSDP reduce every micro-batch into the gradient shard, as they do
// by default.
const StrategyTraits& traits(config::Strategy s) {
    using config::Strategy;
    static const StrategyTraits ddp{false, false, false, false, false, false, false, false,
                                    GradReduction::all_reduce_buckets,
                                    "replicated params/grads/optimizer; bucketed all-reduce of gradients"};
    // ZeRO-1 keeps full gradients but only needs its shard of their sum: a reduce-scatter (as
    // DeepSpeed's reduce_scatter=true default does), so it moves what DDP moves (2 Psi).
    static const StrategyTraits zero1{false, false, true, false, true, false, false, false,
                                      GradReduction::reduce_scatter_per_unit,
                                      "optimizer states sharded; reduce-scatter grads, all-gather params after the step"};
    static const StrategyTraits zero2{false, true, true, false, true, false, true, false,
                                      GradReduction::reduce_scatter_per_unit,
                                      "grads and optimizer states sharded; reduce-scatter grads, all-gather params after the step"};
    static const StrategyTraits zero3{true, true, true, true, false, false, true, true,
                                      GradReduction::reduce_scatter_per_unit,
                                      "everything sharded; all-gather per unit in forward and backward, live-parameter limit"};
    static const StrategyTraits full{true, true, true, true, false, false, true, false,
                                     GradReduction::reduce_scatter_per_unit,
                                     "everything sharded; all-gather per unit in forward and backward"};
    static const StrategyTraits grad_op{true, true, true, false, false, false, true, false,
                                        GradReduction::reduce_scatter_per_unit,
                                        "everything sharded; params stay gathered from forward to backward"};
    static const StrategyTraits no_shard{false, false, false, false, false, false, false, false,
                                         GradReduction::all_reduce_per_unit,
                                         "replicated like DDP; one all-reduce per unit"};
    static const StrategyTraits hybrid{true, true, true, true, false, true, true, false,
                                       GradReduction::reduce_scatter_per_unit,
                                       "full shard inside a shard group (parallel.shard_size; default the GPUs of a node), replicas all-reduce the shards"};
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
