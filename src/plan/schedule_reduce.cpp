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
    if (engine() == Engine::deepspeed) return zero_reduce(u, after);
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

// --- DeepSpeed ZeRO (ENGINES.md §1-2) -------------------------------------------------------------
// Buckets of whole tensors (plan/buffers.cpp). Stage 2 and 3 reduce a bucket once backward has
// produced its last gradient; stage 1 reduces every bucket at the accumulation boundary, after the
// last micro-batch's backward. A bucket's gradients are copied into the IPG buffer, then
//   stage 1, 2  flattened and all-reduced (allreduce_bucket), this rank's rows copied out: into its
//               gradient partition (stage 2: the first micro-batch's; later ones into a partition
//               of their own, added into the first at the end of their backward), or over its
//               rows of the full gradients (stage 1);
//   stage 3     copied rank-major with padding and reduce-scattered, the shard added into the
//               persistent gradient partition;
// or, offloaded, copied to the host through a pinned buffer and added into the fp32 gradients.
// overlap_comm reduces on the communication stream with compute waiting for the previous bucket
// (stage 3: for the one before, as the host blocks on more than two pending reductions); without
// it the reduction runs on the compute stream.

void ScheduleBuilder::zero_reduce(int u, int after) {
    if (p_.engine_settings().zero_stage == 1) return;  // at the boundary (end_backward)
    const auto& zb = t_.zero_buckets();
    for (std::size_t k = 0; k < zb.size(); ++k)
        if (zb[k].units.back() == u) zero_bucket(static_cast<int>(k), after);
}

void ScheduleBuilder::zero_inputs(Op& op, const ZeroBucket& z) const {
    const bool stage1 = p_.engine_settings().zero_stage == 1;
    for (int v : z.units) {
        const UnitBuffers& b = B(v);
        const bool last = std::find(z.last_of.begin(), z.last_of.end(), v) != z.last_of.end();
        if (stage1)
            use(op, b.grads, Role::input, kRead);
        else
            use(op, b.unit_grads, Role::input, kRead | (last ? kFree : 0u), mb_);
    }
}

void ScheduleBuilder::zero_results(Op& op, const ZeroBucket& z) {
    const int stage = p_.engine_settings().zero_stage;
    for (int v : z.units) {
        const UnitBuffers& b = B(v);
        if (stage == 1) {
            use(op, b.grads, Role::result, kRead | kWrite);
        } else if (stage == 2 && mb_ > 0 && b.partition >= 0) {
            const bool first = !partition_live_[static_cast<std::size_t>(v)];
            partition_live_[static_cast<std::size_t>(v)] = true;
            use(op, b.partition, Role::result, kRead | kWrite | (first ? kAlloc : 0u), mb_);
        } else {
            use(op, b.grad_shard, Role::result, kRead | kWrite);
        }
    }
}

int ScheduleBuilder::zero_bucket(int k, int after) {
    const ZeroBucket& z = t_.zero_buckets()[static_cast<std::size_t>(k)];
    const EngineSettings& e = p_.engine_settings();
    const bool offload = p_.offload_optimizer();
    const bool stage3 = e.zero_stage == 3;
    Op r = make(stage3 ? OpKind::reduce_scatter : OpKind::all_reduce, e.overlap_comm ? OpStream::comm : OpStream::compute,
                z.units.size() == 1 ? z.units.front() : -1, {after});
    r.units = z.units;
    zero_inputs(r, z);
    if (!stage3 && !ipg_live_) {
        for (int slot = 0; slot < 2; ++slot) use(r, t_.ipg(slot), Role::memory, kAlloc);
        ipg_live_ = true;
    }
    use(r, z.ipg, Role::stage, kWrite);
    if (stage3) {
        use(r, z.flat, Role::stage, kWrite | kAlloc | kFree);
        use(r, z.rs_output, Role::output, kWrite | kAlloc | (offload ? 0u : kFree));
    } else {
        use(r, z.flat, Role::output, kWrite | kAlloc | (offload ? 0u : kFree));
    }
    if (!offload) zero_results(r, z);
    r.collective = CollectiveOp{stage3 ? CollectiveKind::reduce_scatter : CollectiveKind::all_reduce, kShardGroup,
                                p_.state_shards(), bytes(z.flat), p_.precision().reduce};
    int id = add(std::move(r));
    if (offload) id = zero_offload(k, id);
    for (int v : z.units) chain_[static_cast<std::size_t>(v)] = id;
    pending_.push_back(id);
    zero_issued_.push_back(id);
    // The stream waits of overlap_comm (see above).
    const std::size_t lag = stage3 ? 3 : 2;
    if (e.overlap_comm && zero_issued_.size() >= lag) compute_waits_.push_back(zero_issued_[zero_issued_.size() - lag]);
    return id;
}

// Offloaded: what the bucket's reduction left goes to the host through a pinned buffer; this rank's
// rows are added into the fp32 host gradients of each unit.
int ScheduleBuilder::zero_offload(int k, int after) {
    const ZeroBucket& z = t_.zero_buckets()[static_cast<std::size_t>(k)];
    Op d2h = make(OpKind::offload_grads, OpStream::copy, z.units.size() == 1 ? z.units.front() : -1, {after});
    d2h.units = z.units;
    use(d2h, z.rs_output >= 0 ? z.rs_output : z.flat, Role::input, kRead | kFree);
    use(d2h, z.bounce, Role::stage, kWrite | kAlloc | kFree);
    for (int v : z.units) use(d2h, B(v).host_grads, Role::result, kRead | kWrite);
    d2h.copy_bytes = bytes(z.bounce);
    return add(std::move(d2h));
}

// The end of a micro-batch's backward: a point on the compute stream after every reduction this
// backward issued, which the next forward and the optimizer step follow. DeepSpeed's epilogue
// also reduces stage 1's buckets (at the boundary), adds stage 2's later partitions into the
// first and drops the IPG buffers.
void ScheduleBuilder::end_backward(bool last_micro_batch) {
    if (engine() == Engine::deepspeed && p_.engine_settings().zero_stage == 1 && last_micro_batch) {
        const int after = s_.ops.empty() ? -1 : s_.ops.back().id;
        for (std::size_t k = 0; k < t_.zero_buckets().size(); ++k) zero_bucket(static_cast<int>(k), after);
    }
    Op end = make(OpKind::backward_end, OpStream::compute, -1, pending_);
    if (last_sync_ >= 0) end.deps.push_back(last_sync_);
    for (std::size_t u = 0; u < partition_live_.size(); ++u) {
        if (!partition_live_[u]) continue;
        use(end, B(static_cast<int>(u)).partition, Role::input, kRead | kFree, mb_);
        use(end, B(static_cast<int>(u)).grad_shard, Role::result, kRead | kWrite);
        partition_live_[u] = false;
    }
    if (ipg_live_)
        for (int slot = 0; slot < 2; ++slot) use(end, t_.ipg(slot), Role::memory, kFree);
    ipg_live_ = false;
    last_sync_ = add(std::move(end));
    pending_.clear();
    zero_issued_.clear();
    compute_waits_.clear();
}

}  // namespace shardsim::plan
