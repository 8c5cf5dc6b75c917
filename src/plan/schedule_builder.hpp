#pragma once
// The schedule builder: one optimizer step as ops that name their buffers ([Note: buffer table]).
// Every engine behaviour — when a unit is gathered and freed, where gradients go and when they are
// reduced, what the optimizer reads — is decided here, once; the simulator and the executor follow.
// Private to src/plan/; its parts:
//   schedule_builder.cpp  the phases and the compute ops (forward, recompute, backward)
//   schedule_gather.cpp   gathering and freeing parameters (FSDP's rate limiter and prefetch,
//                         DeepSpeed's ZeRO-3 coordinator, ZeRO++ hpZ, offloaded parameters)
//   schedule_reduce.cpp   gradient reduction (DDP buckets, DeepSpeed buckets, FSDP per unit,
//                         replicas, offload) and each engine's end of backward
//   schedule_step.cpp     the optimizer step and what follows it
#include <deque>
#include <vector>

#include "shardsim/plan/activations.hpp"
#include "shardsim/plan/schedule.hpp"

namespace shardsim::plan {

// Access flags of a buffer use.
enum Access : unsigned { kRead = 1, kWrite = 2, kAlloc = 4, kFree = 8 };

class ScheduleBuilder {
public:
    explicit ScheduleBuilder(const ShardingPlan& plan);
    Schedule build();

private:
    // --- ops and their buffers (schedule_builder.cpp) -----------------------------------------
    Op make(OpKind kind, OpStream stream, int unit, std::vector<int> deps = {}) const;
    int add(Op op);
    // Records what `op` does with `buffer` (nothing when the strategy has no such buffer).
    static void use(Op& op, int buffer, Role role, unsigned access, int instance = 0, Phase alloc_phase = Phase::start,
                    Phase free_phase = Phase::end);
    // A model-owned buffer allocated, freed, or both by `op` (this micro-batch's instance).
    void memory(Op& op, int buffer, unsigned access) const { use(op, buffer, Role::memory, access, mb_); }
    std::int64_t bytes(int buffer) const { return buffer < 0 ? 0 : t_[buffer].bytes; }
    const UnitBuffers& B(int u) const { return t_.unit(u); }
    const std::vector<int>& uses(int u) const { return uses_[static_cast<std::size_t>(u)]; }
    bool trainable(int u) const { return p_.unit_plan(u).state.real.count() > 0; }
    const config::JobConfig& job() const { return p_.scenario().job; }
    Engine engine() const { return p_.traits().engine; }

    // --- compute (schedule_builder.cpp) ---------------------------------------------------------
    Op compute(OpKind kind, int c);
    void cross_calls(Op& op, int c, bool backward) const;
    void forward_phase(int m);
    int forward_call(int c);
    void recompute(int c);
    void gradient_use(Op& b, int u, int c) const;
    void backward_phase(int m, bool last_micro_batch);
    int backward_call(int c);

    // --- gathering (schedule_gather.cpp) ----------------------------------------------------------
    bool reshards_after_forward(int u) const;
    bool reshards_in_backward(int u) const;
    void gather(int u);
    void gather_secondary(int u, std::vector<int> deps);
    void made_available(int u, int op);
    void reshard(int u, int after);
    std::vector<int> gather_deps();
    // Gathers what the calls at order[pos .. pos+depth] read (the current call's units always).
    void ensure_window(const std::vector<int>& order, std::size_t pos, std::size_t depth);
    std::size_t forward_depth() const;
    std::size_t backward_depth() const;
    bool runs_ahead_in_forward() const;
    bool prefetches_after_reshard() const;

    // --- DeepSpeed ZeRO-3's parameter coordinator (schedule_zero3.cpp) ------------------------------
    bool zero3_coordinates() const { return gathers_ && engine() == Engine::deepspeed; }
    int trace_call(int pos) const;  // the call at a position of the trace (forward calls, then backward)
    void zero3_start_forward();
    void zero3_fetch(int pos);
    void zero3_prefetch(int pos);
    void zero3_release(int pos, int after);
    std::int64_t unit_numel(int u) const { return p_.unit_plan(u).params.real.count(); }

    // --- reduction (schedule_reduce.cpp) -------------------------------------------------------
    bool syncs_this_micro_batch() const;
    int reduce_scatter(int u, int after, int input, bool free_input);
    int offload_grads(int u, int after, int input);
    void end_chain(int op_id, int carried, int result);
    int all_reduce(int unit, const std::vector<int>& units, int group, std::int64_t ranks, int buffer, int cast, int after);
    void reduce_sharded(int u, int after, bool last_micro_batch);
    void reduce(int u, int after, bool last_micro_batch);
    void finish(int u, int end, int after);
    void end_backward(bool last_micro_batch);
    // DeepSpeed ZeRO's buckets
    void zero_reduce(int u, int after);
    int zero_bucket(int k, int after);
    void zero_inputs(Op& op, const ZeroBucket& z) const;
    void zero_results(Op& op, const ZeroBucket& z);
    int zero_offload(int k, int after);

    // --- the step (schedule_step.cpp) ------------------------------------------------------------
    int optimizer_step(int u, int sync);
    const StepGroup* step_group(int u) const;  // DeepSpeed's optimizer group of a unit (nullptr: none)
    void post_step_gather(int u, int after);
    void optimizer_phase();

    const ShardingPlan& p_;
    const BufferTable& t_;
    const std::vector<model::ProgramStep>& prog_;
    const int K_;
    Schedule s_;
    std::vector<std::vector<int>> uses_;
    std::vector<CallActivations> acts_;
    std::vector<model::CallFlops> flops_;
    std::vector<model::ComputeWork> recompute_work_;  // checkpointed calls: what their recompute computes
    std::int64_t forward_bytes_written(int c) const;
    std::vector<int> avail_;      // per unit: the op that made its unsharded parameters available (-1: not gathered)
    std::vector<int> chain_;      // per unit: the last op of its gradient reduction in this step
    std::vector<std::vector<int>> buckets_ending_;  // per unit: the buckets its backward completes
    std::vector<bool> secondary_live_;  // per unit: hpZ's secondary copy exists (made after a forward)
    std::vector<int> forward_order_, backward_order_;
    std::vector<int> pending_;    // reductions issued in this backward that its end waits for
    std::vector<int> compute_waits_;  // what the next compute op waits for (DeepSpeed's stream waits)
    std::vector<int> zero_issued_;    // DeepSpeed bucket reductions issued in this backward, in order
    std::vector<bool> partition_live_;  // per unit: zero2's partition of this micro-batch is allocated
    bool ipg_live_ = false;           // zero1/2's IPG buffers are allocated (this backward)
    std::deque<int> free_events_;  // FSDP's rate limiter: reshards not yet waited for
    bool gathers_ = false;
    bool in_backward_ = false;
    bool last_micro_batch_ = false;
    int mb_ = 0;
    int last_reshard_ = -1;
    int last_sync_ = -1;  // the last end of backward: the optimizer and the next forward follow it
    std::int64_t available_ = 0;     // ZeRO-3's n_available: elements gathered since the forward began
    std::deque<int> fetch_events_;   // ZeRO-3: all-gathers not yet waited for (at most two)
    int host_op_ = -1;               // the last forward or backward call issued (where the host stands)
};

}  // namespace shardsim::plan
