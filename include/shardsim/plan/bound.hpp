#pragma once
// [Note: memory bound] Lower bounds of what `simulate` reports for a job — the device peak of its
// fullest rank and the host memory of its fullest node — computed from the model's units and the
// plan's own formulas (plan/rules.hpp, plan/activations.hpp) without building a plan or a
// schedule, so that the plan search can set aside a million setups in seconds and never one that
// the simulation would accept.
//
//   device >= persistent + T + allocator_fragmentation x T
// `persistent` is the plan's persistent state (ShardingPlan::persistent(): model states, runtime
// overhead, the buffers the engines keep for the run), less what DeepSpeed adds per optimizer
// sub-group and for offload (its fp32 gradient buffers and temporaries: plan/buffers.cpp), which
// only raises the simulated peak. T is what is certainly live besides at one
// instant every schedule has: the start of the last call's backward (the head's) in the first
// micro-batch. There every call's forward has kept its activations (a checkpointed block its kept
// terms), the head's backward has allocated its workspace and its input's gradient, the units the
// head reads are gathered (strategies that gather parameters; every unit when they are not resharded
// after forward), and the gradient buffers that the
// head's backward allocates for those units exist. The simulator keeps a fraction of the largest
// transient footprint reserved as allocator slack, and that footprint is at least T.
//   host per node >= the offloaded persistent states of the fullest node's ranks.
// Everything left out (units prefetched, reductions in flight, other calls' workspaces, recompute)
// only adds to the simulated peak. tests/unit/test_bound.cpp holds the bound below the simulated
// peak over thousands of random setups, and its persistent part within the plan's, category by category.
#include <cstdint>
#include <map>
#include <vector>

#include "shardsim/core/memory.hpp"
#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/activations.hpp"
#include "shardsim/plan/rules.hpp"

namespace shardsim::plan {

// A model with its LoRA adapters as the search sees it, once per search: units, program, and the
// element counts of every unit's layouts over each shard count the search asks for.
class BoundModel {
public:
    BoundModel(const model::ModelSpec& spec, const model::LoraSpec& lora);
    // Lays every unit out over `shards` ranks. Call for each shard count before searching: the
    // lookups below are then read-only, so threads may share the model.
    void prepare(std::int64_t shards);
    UnitSizes sizes(int unit, std::int64_t param_shards, std::int64_t state_shards) const;

    const model::ModelSpec& spec() const { return spec_; }
    const std::vector<model::Unit>& units() const { return units_; }
    const std::vector<model::ProgramStep>& program() const { return program_; }
    // The activations of one micro-batch computed the way this scenario's plan would.
    ActivationInputs activation_inputs(const model::Scenario& scenario, DType compute) const;

private:
    struct Counts {
        Elements shard, real;
    };
    model::ModelSpec spec_;
    std::vector<model::Unit> units_;
    std::vector<model::ProgramStep> program_;
    std::map<std::int64_t, std::vector<Counts>> params_, state_;  // by shard count, per unit
};

// The activation terms the bound needs, summed over the calls of one micro-batch.
struct ActivationSums {
    std::int64_t kept = 0;           // every call's forward keeps: sum of forward_bytes, less call 0's input
    std::int64_t head_backward = 0;  // the last call's backward workspace and its input's gradient
};
ActivationSums activation_sums(const ActivationInputs& inputs);

struct MemoryBound {
    MemoryByCategory persistent;       // ShardingPlan::persistent() less DeepSpeed's step-group and offload extras
    std::int64_t head_units = 0;       // T's gathered parameters and gradient buffers at the head
    std::int64_t transient = 0;        // T above
    std::int64_t device_bytes = 0;     // lower bound of the simulated device peak
    std::int64_t host_bytes_per_node = 0;
};

// `scenario` is the job as the plan would see it (its dimensions checked by parallel_dims, which
// gave `rules`).
MemoryBound memory_bound(const BoundModel& model, const model::Scenario& scenario, const ShardingRules& rules,
                         const ActivationSums& activations);
// The same setup with other activations (another micro-batch, checkpointing, attention or loss):
// what the search varies fastest, without summing the units again.
MemoryBound with_activations(MemoryBound bound, const ActivationSums& activations, double allocator_fragmentation);

}  // namespace shardsim::plan
