#pragma once
// The sharding plan: a pure function of (model, job, topology). It decides which rank owns which
// bytes of every unit, in which dtype, on which side (device or host). The schedule, the
// simulator and the executor read sizes from here and compute none of their own.
#include <cstdint>
#include <memory>
#include <vector>

#include "shardsim/core/dtype.hpp"
#include "shardsim/core/memory.hpp"
#include "shardsim/model/flops.hpp"
#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/buffers.hpp"
#include "shardsim/plan/engine.hpp"
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

// The layouts of one unit. `params` covers every tensor over the parameter shard group (1 shard
// when parameters are replicated); `state` covers the trainable tensors over the optimizer-state
// shard group: master weights, optimizer states and sharded gradients use it.
struct UnitPlan {
    int unit = 0;
    FlatLayout params;
    FlatLayout state;
    // The unsharded arrangements (one shard): every tensor, and the trainable ones, back to back.
    // Unsharded parameters, full gradients and one unit's gradient buffer use them.
    FlatLayout full_params;
    FlatLayout full_state;
    // ZeRO++ hpZ: every tensor over the secondary group (empty without a secondary partition).
    FlatLayout secondary;
};

class ShardingPlan {
public:
    // Refuses impossible plans (InputError, one line per problem with the factors printed).
    static std::shared_ptr<const ShardingPlan> build(const model::Scenario& scenario);

    const model::Scenario& scenario() const { return scenario_; }
    const StrategyTraits& traits() const { return *traits_; }
    const Groups& groups() const { return groups_; }
    const Precision& precision() const { return precision_; }
    const std::vector<model::Unit>& units() const { return units_; }
    const std::vector<model::ProgramStep>& program() const { return program_; }
    const std::vector<UnitPlan>& unit_plans() const { return unit_plans_; }
    const UnitPlan& unit_plan(int unit) const { return unit_plans_.at(static_cast<std::size_t>(unit)); }

    std::int64_t param_shards() const { return traits_->shard_params ? groups_.shard_size() : 1; }
    std::int64_t state_shards() const { return traits_->shard_optimizer ? groups_.shard_size() : 1; }
    bool offload_optimizer() const { return scenario_.job.offload_optimizer; }
    bool offload_params() const { return scenario_.job.offload_params; }
    // Parameters are gathered (or uploaded) per unit before use, and freed after.
    bool gathers_params() const { return traits_->shard_params && (param_shards() > 1 || offload_params()); }
    // Gradients leave backward as a per-unit buffer that a reduce-scatter consumes.
    bool shards_grads() const { return traits_->shard_grads; }
    // Backward writes a unit's gradients into a buffer of their own, freed when reduced (or sent
    // to the host); otherwise into persistent gradient storage.
    bool transient_grads() const { return shards_grads() && (state_shards() > 1 || offload_optimizer()); }

    // Sequences and tokens of one micro-batch on one rank.
    model::BatchShape batch_shape() const;

    // Units in the order their gradients become final in backward (reverse order of their
    // first forward call): the order of replicated gradient storage, buckets and optimizer steps.
    const std::vector<int>& grad_order() const { return grad_order_; }

    Elements param_count() const { return model::total_params(units_); }
    Elements trainable_count() const { return model::trainable_params(units_); }

    // Per-unit byte sizes (one rank), the only place they are computed. ---------------------
    Bytes param_shard_bytes(int unit) const;      // resident (or offloaded) parameter shard
    Bytes gather_output_bytes(int unit) const;    // all-gather output (padded, rank-major)
    Bytes unsharded_param_bytes(int unit) const;  // real parameters, unsharded
    Bytes unsharded_grad_bytes(int unit) const;   // real trainable gradients of a unit, grad dtype
    Bytes reduce_input_bytes(int unit) const;     // reduce-scatter / all-reduce buffer, reduce dtype
    Bytes grad_shard_bytes(int unit) const;       // persistent gradient storage of this rank
    Bytes reduce_output_bytes(int unit) const;    // reduce-scatter output (one shard), reduce dtype
    Bytes master_bytes(int unit) const;
    Bytes optimizer_state_bytes(int unit) const;
    Bytes host_grad_bytes(int unit) const;        // offload: the gradient shard on the host
    DType host_grad_dtype() const;                // its dtype
    Bytes state_update_bytes(int unit) const;     // the updated trainable shard in param dtype
    // What the optimizer step of one unit reads and writes: master and moments read and written,
    // the gradient read, the parameter written.
    Bytes optimizer_traffic_bytes(int unit) const;

    // Every buffer of a step ([Note: buffer table]).
    const BufferTable& buffers() const { return buffers_; }
    // The engine's knobs with their "auto" values resolved (plan/engine.hpp).
    const EngineSettings& engine_settings() const { return engine_; }

    // The persistent state of one rank before the step (model states, runtime overhead, and on
    // the host the offloaded states): the first memory sample of every timeline.
    MemoryByCategory persistent() const;

private:
    ShardingPlan() = default;
    model::Scenario scenario_;
    const StrategyTraits* traits_ = nullptr;
    Groups groups_;
    Precision precision_;
    std::vector<model::Unit> units_;
    std::vector<model::ProgramStep> program_;
    std::vector<UnitPlan> unit_plans_;
    std::vector<int> grad_order_;
    EngineSettings engine_;
    BufferTable buffers_;
};

using PlanPtr = std::shared_ptr<const ShardingPlan>;

}  // namespace shardsim::plan
