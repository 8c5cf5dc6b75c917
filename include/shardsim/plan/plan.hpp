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
#include "shardsim/plan/rules.hpp"
#include "shardsim/plan/strategy.hpp"

namespace shardsim::plan {

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
    const Precision& precision() const { return rules_.precision; }
    const std::vector<model::Unit>& units() const { return units_; }
    const std::vector<model::ProgramStep>& program() const { return program_; }
    const std::vector<UnitPlan>& unit_plans() const { return unit_plans_; }
    const UnitPlan& unit_plan(int unit) const { return unit_plans_.at(static_cast<std::size_t>(unit)); }

    // What the strategy, groups, precision and offload decide per unit (plan/rules.hpp).
    const ShardingRules& rules() const { return rules_; }
    std::int64_t param_shards() const { return rules_.param_shards(); }
    std::int64_t state_shards() const { return rules_.state_shards(); }
    bool offload_optimizer() const { return rules_.offload_optimizer; }
    bool offload_params() const { return rules_.offload_params; }
    bool gathers_params() const { return rules_.gathers_params(); }
    bool shards_grads() const { return rules_.shards_grads(); }
    bool transient_grads() const { return rules_.transient_grads(); }

    // Sequences and tokens of one micro-batch on one rank.
    model::BatchShape batch_shape() const;

    // Units in the order their gradients become final in backward (reverse order of their
    // first forward call): the order of replicated gradient storage, buckets and optimizer steps.
    const std::vector<int>& grad_order() const { return grad_order_; }

    Elements param_count() const { return model::total_params(units_); }
    Elements trainable_count() const { return model::trainable_params(units_); }

    // Per-unit byte sizes (one rank), the only place they are computed (ShardingRules' formulas
    // on this plan's layouts). ---------------------------------------------------------------
    UnitSizes sizes(int unit) const;
    Bytes param_shard_bytes(int u) const { return rules_.param_shard_bytes(sizes(u)); }      // resident (or offloaded) parameter shard
    Bytes gather_output_bytes(int u) const { return rules_.gather_output_bytes(sizes(u)); }  // all-gather output (padded, rank-major)
    Bytes unsharded_param_bytes(int u) const { return rules_.unsharded_param_bytes(sizes(u)); }  // real parameters, unsharded
    Bytes unsharded_grad_bytes(int u) const { return rules_.unsharded_grad_bytes(sizes(u)); }    // real trainable gradients, grad dtype
    Bytes reduce_input_bytes(int u) const { return rules_.reduce_input_bytes(sizes(u)); }    // reduce-scatter / all-reduce buffer, reduce dtype
    Bytes grad_shard_bytes(int u) const { return rules_.grad_shard_bytes(sizes(u)); }        // persistent gradient storage of this rank
    Bytes reduce_output_bytes(int u) const { return rules_.reduce_output_bytes(sizes(u)); }  // reduce-scatter output (one shard), reduce dtype
    Bytes master_bytes(int u) const { return rules_.master_bytes(sizes(u)); }
    Bytes optimizer_state_bytes(int u) const { return rules_.optimizer_state_bytes(sizes(u)); }
    Bytes host_grad_bytes(int u) const { return rules_.host_grad_bytes(sizes(u)); }          // offload: the gradient shard on the host
    DType host_grad_dtype() const { return rules_.host_grad_dtype; }                         // its dtype
    Bytes state_update_bytes(int u) const { return rules_.state_update_bytes(sizes(u)); }    // the updated trainable shard in param dtype
    // What the optimizer step of one unit reads and writes: master and moments read and written,
    // the gradient read, the parameter written.
    Bytes optimizer_traffic_bytes(int u) const { return rules_.optimizer_traffic_bytes(sizes(u)); }

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
    ShardingRules rules_;
    std::vector<model::Unit> units_;
    std::vector<model::ProgramStep> program_;
    std::vector<UnitPlan> unit_plans_;
    std::vector<int> grad_order_;
    EngineSettings engine_;
    BufferTable buffers_;
};

using PlanPtr = std::shared_ptr<const ShardingPlan>;

}  // namespace shardsim::plan
