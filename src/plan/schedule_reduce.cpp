// Gradient reduction and each engine's end of backward (schedule_builder.hpp).
//   FSDP: one reduce-scatter per unit when its backward is done, in place of DeepSpeed's buckets;
//         HYBRID_SHARD all-reduces the shard across replicas; inside no_sync (Accelerate's
//         accumulation) nothing is reduced before the last micro-batch.
//   DDP:  buckets of the replicated gradients, all-reduced on the last micro-batch (no_sync).
//   Every engine ends a backward by waiting for what it reduced (FSDP's final callback waits for
//   the post-backward stream, DeepSpeed's epilogue synchronizes, DDP's finalize waits for every
//   bucket): the next micro-batch's forward and the optimizer step come after.
#include "schedule_builder.hpp"

#include <algorithm>

namespace shardsim::plan {

// Whether this micro-batch's backward reduces: FSDP's no_sync defers to the last micro-batch.
bool ScheduleBuilder::syncs_this_micro_batch() const {
    return !(engine() == Engine::fsdp && job().fsdp.no_sync) || last_micro_batch_;
}

// Reduce-scatter of a unit's gradients into this rank's shard: packs `input` rank-major into the
// reduce-scatter input, sums into the output (this micro-batch's instance).
int ScheduleBuilder::reduce_scatter(int u, int after, int input, bool free_input) {
    const UnitBuffers& b = B(u);
    Op rs = make(OpKind::reduce_scatter, OpStream::comm, u, {after});
    const bool carried = engine() == Engine::fsdp && job().fsdp.no_sync;  // one instance across micro-batches
    const int inst = t_[input].persistent || t_[input].is_view() || carried ? 0 : mb_;
    use(rs, input, Role::input, kRead | (free_input ? kFree : 0u), inst, Phase::start, Phase::start);
    use(rs, b.rs_input, Role::stage, kWrite | kAlloc | kFree);
    use(rs, b.rs_output, Role::output, kWrite | kAlloc, mb_);
    rs.collective = CollectiveOp{CollectiveKind::reduce_scatter, kShardGroup, p_.state_shards(), bytes(b.rs_input),
                                 p_.precision().reduce};
    return add(std::move(rs));
}

// Device -> host copy of `input` through the pinned bounce buffer, added into the fp32 host
// gradient shard.
int ScheduleBuilder::offload_grads(int u, int after, int input) {
    const UnitBuffers& b = B(u);
    Op d2h = make(OpKind::offload_grads, OpStream::copy, u, {after});
    const bool carried = engine() == Engine::fsdp && job().fsdp.no_sync;
    use(d2h, input, Role::input, kRead, t_[input].persistent || t_[input].is_view() || carried ? 0 : mb_);
    use(d2h, b.bounce, Role::stage, kWrite | kAlloc | kFree);
    use(d2h, b.host_grads, Role::result, kRead | kWrite);
    d2h.copy_bytes = bytes(b.bounce);
    return add(std::move(d2h));
}

// The end of a unit's reduction chain: the op that last touches the carried buffer frees it, and
// (if given) lands the reduced values in `result`.
void ScheduleBuilder::end_chain(int op_id, int carried, int result) {
    Op& op = s_.ops[static_cast<std::size_t>(op_id)];
    if (carried >= 0)
        for (auto& u : op.buffers)
            if (u.buffer == carried && (u.role == Role::input || u.role == Role::output)) u.free = true, u.free_phase = Phase::end;
    use(op, result, Role::result, kRead | kWrite);
}

int ScheduleBuilder::all_reduce(int unit, const std::vector<int>& units, int group, std::int64_t ranks, int buffer, int cast,
                                int after) {
    Op ar = make(OpKind::all_reduce, OpStream::comm, unit, {after});
    ar.units = units;
    const bool carried = engine() == Engine::fsdp && job().fsdp.no_sync;
    use(ar, buffer, Role::input, kRead | kWrite, t_[buffer].persistent || t_[buffer].is_view() || carried ? 0 : mb_);
    // Gradients reduced in another dtype travel through a cast copy.
    use(ar, cast, Role::stage, kWrite | kAlloc | kFree);
    ar.collective = CollectiveOp{CollectiveKind::all_reduce, group, ranks, bytes(cast >= 0 ? cast : buffer), p_.precision().reduce};
    return add(std::move(ar));
}

void ScheduleBuilder::reduce_sharded(int u, int after, bool last_micro_batch) {
    const UnitBuffers& b = B(u);
    const bool offload = p_.offload_optimizer();
    const bool replicas = p_.traits().hybrid && p_.groups().replicate_size() > 1;
    int end = after;
    int carried = -1;  // the buffer the chain carries; its last op frees it
    if (p_.state_shards() > 1) {
        end = reduce_scatter(u, after, b.unit_grads, true);
        carried = b.rs_output;
    } else if (offload) {
        carried = b.unit_grads;  // one shard: the unit's gradients leave for the host as they are
    } else if (!replicas || !last_micro_batch) {
        return;  // accumulated in place; replicas (if any) sum them on the last micro-batch
    }
    if (replicas) {
        const int buffer = carried >= 0 ? carried : b.grad_shard;
        end = all_reduce(u, {u}, kReplicateGroup, p_.groups().replicate_size(), buffer,
                         carried >= 0 && carried == b.rs_output ? -1 : b.cast, end);
    }
    if (offload) end = offload_grads(u, end, carried);
    const bool lands_on_device = !offload && carried == b.rs_output && carried >= 0;
    end_chain(end, carried, lands_on_device ? b.grad_shard : -1);
    finish(u, end, after);
}

void ScheduleBuilder::reduce(int u, int after, bool last_micro_batch) {
    if (!trainable(u) || !syncs_this_micro_batch()) return;
    if (p_.shards_grads()) return reduce_sharded(u, after, last_micro_batch);
    // Replicated gradients: reduced once, on the last micro-batch (no_sync before it).
    if (!last_micro_batch) return;
    const UnitBuffers& b = B(u);
    const auto& t = p_.traits();
    if (t.reduction == GradReduction::reduce_scatter_per_unit && (p_.state_shards() > 1 || p_.offload_optimizer())) {
        // ZeRO-1: the full gradients are packed rank-major and reduce-scattered; this rank's
        // summed shard is written back over its rows (or, offloaded, sent to the host; on one
        // rank the full gradients go to the host as they are).
        int end = after;
        if (p_.state_shards() > 1) {
            end = reduce_scatter(u, after, b.grads, false);
            if (p_.offload_optimizer()) end = offload_grads(u, end, b.rs_output);
            end_chain(end, b.rs_output, p_.offload_optimizer() ? -1 : b.grads);
        } else {
            end = offload_grads(u, end, b.grads);
        }
        return finish(u, end, after);
    }
    if (p_.groups().world() == 1) return;
    if (t.reduction == GradReduction::all_reduce_per_unit)
        return finish(u, all_reduce(u, {u}, kWorldGroup, p_.groups().world(), b.grads, b.cast, after), after);
    // A bucket is all-reduced once its last gradient is ready (plan/buffers.cpp): the backward of
    // this unit completes every bucket whose last tensor it holds; there is no cap on how many are
    // in flight (DDP's reducer launches each as soon as it is ready).
    for (int k : buckets_ending_[static_cast<std::size_t>(u)]) {
        const Bucket& bucket = t_.buckets()[static_cast<std::size_t>(k)];
        const int unit = bucket.units.size() == 1 ? bucket.units.front() : -1;
        const int id = all_reduce(unit, bucket.units, kWorldGroup, p_.groups().world(), bucket.grads, bucket.cast, after);
        for (int v : bucket.units) chain_[static_cast<std::size_t>(v)] = id;
        pending_.push_back(id);
    }
}

void ScheduleBuilder::finish(int u, int end, int after) {
    chain_[static_cast<std::size_t>(u)] = end;
    if (end != after) pending_.push_back(end);
}

// The end of a micro-batch's backward: a point on the compute stream after every reduction this
// backward issued, which the next forward and the optimizer step follow.
void ScheduleBuilder::end_backward(bool) {
    Op end = make(OpKind::backward_end, OpStream::compute, -1, pending_);
    if (last_sync_ >= 0) end.deps.push_back(last_sync_);
    last_sync_ = add(std::move(end));
    pending_.clear();
}

}  // namespace shardsim::plan
