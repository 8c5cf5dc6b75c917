// DeepSpeed ZeRO-3's parameter coordinator (schedule_builder.hpp; ENGINES.md §2, after
// deepspeed/runtime/zero/partitioned_param_coordinator.py), in units: shardsim's units stand for
// DeepSpeed's modules (a block's several modules as one).
//   The trace: one micro-batch's forward calls, then its backward calls. DeepSpeed records it on
//   the first micro-batch and follows it from then on; a step of a run under way (what shardsim
//   predicts) follows it throughout.
//   Fetch: before a call, every unit it reads that is not gathered is all-gathered on demand
//   (whatever the live-parameter limit); with more than two all-gathers not yet waited for, the
//   host waits for the oldest (__max_ongoing_fetch_events = 2).
//   Prefetch: then the units of the calls that follow in the trace, in order, until
//   min(stage3_max_live_parameters - n_available, stage3_prefetch_bucket_size) elements are on
//   their way (the last unit may overshoot). n_available counts what was gathered since the
//   forward began (reset at each forward, as reset_step does).
//   Release: after a call, a unit it read stays gathered when its next use in the trace comes
//   within stage3_max_reuse_distance elements (the units of the calls in between, repeats
//   counted); otherwise it is freed. So a model's last blocks stay gathered from forward to
//   backward. Persistent parameters (stage3_param_persistence_threshold) are not modelled: under
//   DeepSpeed's default (1e5 elements) and Hugging Face's (10 x hidden) only norm weights and
//   biases qualify, a small fraction of any shipped model.
#include "schedule_builder.hpp"

#include <algorithm>

namespace shardsim::plan {

int ScheduleBuilder::trace_call(int pos) const { return pos < K_ ? pos : K_ - 1 - (pos - K_); }

void ScheduleBuilder::zero3_start_forward() { available_ = 0; }

void ScheduleBuilder::zero3_fetch(int pos) {
    for (int u : prog_[static_cast<std::size_t>(trace_call(pos))].reads) {
        if (avail_[static_cast<std::size_t>(u)] >= 0) continue;
        gather(u);
        available_ += unit_numel(u);
    }
    zero3_prefetch(pos);
}

void ScheduleBuilder::zero3_prefetch(int pos) {
    const EngineSettings& e = p_.engine_settings();
    const std::int64_t budget = std::min(e.max_live_parameters - available_, e.prefetch_bucket_elements);
    std::int64_t queued = 0;
    for (int q = pos + 1; q < 2 * K_ && queued < budget; ++q)
        for (int u : prog_[static_cast<std::size_t>(trace_call(q))].reads) {
            if (queued >= budget) break;
            if (avail_[static_cast<std::size_t>(u)] >= 0) continue;
            gather(u);
            queued += unit_numel(u);
            available_ += unit_numel(u);
        }
}

// After the call at `pos`: each unit it read is freed unless it is used again soon.
void ScheduleBuilder::zero3_release(int pos, int after) {
    const std::int64_t reuse = p_.engine_settings().max_reuse_distance;
    for (int u : prog_[static_cast<std::size_t>(trace_call(pos))].reads) {
        if (avail_[static_cast<std::size_t>(u)] < 0) continue;
        std::int64_t distance = 0;
        bool kept = false;
        for (int q = pos + 1; q < 2 * K_ && distance < reuse; ++q) {
            const auto& reads = prog_[static_cast<std::size_t>(trace_call(q))].reads;
            if (std::find(reads.begin(), reads.end(), u) != reads.end()) {
                kept = true;
                break;
            }
            for (int v : reads) distance += unit_numel(v);
        }
        if (kept) continue;
        reshard(u, after);
        available_ -= unit_numel(u);
    }
}

}  // namespace shardsim::plan
