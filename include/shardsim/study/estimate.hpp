#pragma once
// The plan search's fast stages ([Note: plan search]): for one setup, the plan's memory bound
// (plan/bound.hpp) and an estimate of the step, from the model's units, the plan's size rules and
// the simulator's own cost functions (sim/cost.hpp) — without a plan or a schedule. What depends
// on the micro-batch alone (activations, FLOPs) and on the sharding alone (collective times) is
// computed once and reused over the setups that share it.
//
// The step estimate, per micro-batch: forward and backward compute (recompute included) against
// the collectives each strategy issues in that phase, on their own stream (a phase takes the
// longer of the two when the engine prefetches, their sum when it does not); reductions made on
// the last micro-batch only (DDP, ZeRO-1, FSDP no-shard) are exposed beyond backward's compute; then
// the optimizer (on the device, or on the host with its copies) and ZeRO-1/2's post-step
// all-gather. It ranks; the full simulation decides.
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "shardsim/plan/bound.hpp"
#include "shardsim/plan/rules.hpp"
#include "shardsim/study/space.hpp"

namespace shardsim::study {

// One micro-batch on one rank: the activation terms of the bound and the work of the step.
struct MicroBatchWork {
    plan::ActivationSums activations;
    double forward_flops = 0, backward_flops = 0, recompute_flops = 0;  // GEMM FLOPs
    double forward_bytes = 0, backward_bytes = 0, recompute_bytes = 0;  // activation traffic, as the cost model counts it
    double model_flops = 0;  // forward + backward, no recompute: what MFU counts
};

// What activations and FLOPs depend on, as a key.
struct WorkKey {
    std::int32_t micro_batch = 1;
    config::Checkpointing checkpointing = config::Checkpointing::none;
    config::AttentionKind attention = config::AttentionKind::eager;
    config::LossKind loss = config::LossKind::eager;
    DType dtype = DType::bf16;
    bool lora = false;
    auto tie() const { return std::tie(micro_batch, checkpointing, attention, loss, dtype, lora); }
    bool operator<(const WorkKey& o) const { return tie() < o.tie(); }
};

// The models (with and without LoRA) laid out over every shard count of the space, and the work
// of every micro-batch the space uses: built once, then read by every thread.
class SearchTables {
public:
    explicit SearchTables(const Space& space, int threads);
    const plan::BoundModel& model(bool lora) const { return *models_[lora ? 1 : 0]; }
    const MicroBatchWork& work(const WorkKey& key) const { return work_.at(key); }

private:
    std::unique_ptr<plan::BoundModel> models_[2];
    std::map<WorkKey, MicroBatchWork> work_;
};

// The collectives, copies and optimizer work of one step, for a sharding (everything of a setup
// but its micro-batch split and its compute).
struct StepComm {
    double gather_forward = 0;  // all-gathers before forward, per micro-batch
    double gather_backward = 0; // all-gathers again in backward (resharded units; hpZ: in the secondary group)
    double reduce = 0;          // reduce-scatters, or all-reduces of unsharded gradients, per reducing micro-batch
    double replicate = 0;       // HSDP: all-reduce of the shards across replicas
    double post_gather = 0;     // ZeRO-1/2: all-gather of the updated shards after the step
    double upload = 0;          // offloaded parameters: host -> device per gather
    double offload = 0;         // gradients device -> host, per reducing micro-batch, and the update back
    double optimizer = 0;       // the optimizer step (device or host)
    int units = 1;
};
StepComm step_comm(const plan::BoundModel& model, const model::Scenario& scenario, const plan::ShardingRules& rules);

struct StepEstimate {
    double step_s = 0, compute_s = 0, comm_s = 0, exposed_s = 0;
};
StepEstimate estimate_step(const model::Scenario& scenario, const plan::ShardingRules& rules, const StepComm& comm,
                           const MicroBatchWork& work);

// What to add to the bound for a guess at the device peak, to order setups (not a bound): what it
// leaves out that is usually live at the peak (the next unit gathered, one reduction's buffers).
std::int64_t guess_extra(const plan::BoundModel& model, const plan::ShardingRules& rules);

}  // namespace shardsim::study
