// The schedule builder: one optimizer step as ops that name their buffers ([Note: buffer table]).
// Every engine behaviour — when a unit is gathered and freed, where gradients go and when they are
// reduced, what the optimizer reads — is decided here, once; the simulator and the executor follow.
#include <algorithm>

#include "shardsim/plan/activations.hpp"
#include "shardsim/plan/schedule.hpp"

namespace shardsim::plan {

namespace {

// Access flags of a buffer use.
enum Access : unsigned { kRead = 1, kWrite = 2, kAlloc = 4, kFree = 8 };

class ScheduleBuilder {
public:
    explicit ScheduleBuilder(const ShardingPlan& plan)
        : p_(plan), t_(plan.buffers()), prog_(plan.program()), K_(static_cast<int>(prog_.size())) {
        const std::size_t n = plan.units().size();
        uses_.resize(n);
        for (int c = 0; c < K_; ++c)
            for (int u : prog_[static_cast<std::size_t>(c)].reads) uses_[static_cast<std::size_t>(u)].push_back(c);
        avail_.assign(n, -1);
        chain_.assign(n, -1);
        secondary_live_.assign(n, false);
        bucket_of_.assign(n, -1);
        for (std::size_t k = 0; k < t_.buckets().size(); ++k)
            for (int u : t_.buckets()[k].units) bucket_of_[static_cast<std::size_t>(u)] = static_cast<int>(k);
        gathers_ = plan.gathers_params();
        for (int c = K_ - 1; c >= 0; --c) backward_order_.push_back(c);
        for (int c = 0; c < K_; ++c) {
            acts_.push_back(call_activations(plan, c));
            flops_.push_back(model::call_flops(plan.scenario().model, plan.units(), prog_[static_cast<std::size_t>(c)],
                                               plan.batch_shape()));
        }
    }

    Schedule build() {
        s_.initial = p_.persistent();
        s_.micro_batches = static_cast<int>(p_.scenario().job.grad_accum);
        for (int m = 0; m < s_.micro_batches; ++m) {
            forward_phase(m);
            backward_phase(m, m == s_.micro_batches - 1);
        }
        optimizer_phase();
        for (auto& op : s_.ops) op.ledger = derive_ledger(op, t_);
        return std::move(s_);
    }

private:
    // --- ops and their buffers -------------------------------------------------------------
    Op make(OpKind kind, OpStream stream, int unit, std::vector<int> deps = {}) const {
        Op op;
        op.kind = kind;
        op.stream = stream;
        op.unit = unit;
        op.micro_batch = mb_;
        op.deps = std::move(deps);
        return op;
    }
    int add(Op op) {
        op.id = static_cast<int>(s_.ops.size());
        if (op.units.empty() && op.unit >= 0) op.units = {op.unit};
        s_.ops.push_back(std::move(op));
        return s_.ops.back().id;
    }
    // Records what `op` does with `buffer` (nothing when the strategy has no such buffer).
    static void use(Op& op, int buffer, Role role, unsigned access, int instance = 0, Phase alloc_phase = Phase::start,
                    Phase free_phase = Phase::end) {
        if (buffer < 0) return;
        BufferUse u;
        u.buffer = buffer;
        u.instance = instance;
        u.role = role;
        u.read = access & kRead;
        u.write = access & kWrite;
        u.alloc = access & kAlloc;
        u.free = access & kFree;
        u.alloc_phase = alloc_phase;
        u.free_phase = free_phase;
        op.buffers.push_back(u);
    }
    // A model-owned buffer allocated, freed, or both by `op` (this micro-batch's instance).
    void memory(Op& op, int buffer, unsigned access) const { use(op, buffer, Role::memory, access, mb_); }
    std::int64_t bytes(int buffer) const { return buffer < 0 ? 0 : t_[buffer].bytes; }
    const UnitBuffers& B(int u) const { return t_.unit(u); }

    const std::vector<int>& uses(int u) const { return uses_[static_cast<std::size_t>(u)]; }
    bool trainable(int u) const { return p_.unit_plan(u).state.real.count() > 0; }
    bool reshards_after_forward(int u) const { return p_.traits().reshard_after_forward && uses(u).size() == 1; }

    // --- gathering -------------------------------------------------------------------------
    void gather(int u) {
        const UnitBuffers& b = B(u);
        std::vector<int> deps;
        if (last_reshard_ >= 0) deps.push_back(last_reshard_);
        if (in_backward_ && secondary_live_[static_cast<std::size_t>(u)]) return gather_secondary(u, deps);
        if (p_.offload_params()) {
            // The host shard goes up first; with one shard the upload is the gather.
            Op up = make(OpKind::upload_params, OpStream::copy, u, deps);
            use(up, b.params, Role::input, kRead);
            const int dst = b.upload >= 0 ? b.upload : b.unsharded;
            use(up, dst, Role::output, kWrite | kAlloc);
            up.copy_bytes = bytes(b.params);
            const int id = add(std::move(up));
            if (b.upload < 0) return made_available(u, id);
            deps = {id};
        }
        Op ag = make(OpKind::all_gather, OpStream::comm, u, deps);
        use(ag, b.upload >= 0 ? b.upload : b.params, Role::input, kRead | (b.upload >= 0 ? kFree : 0u));
        use(ag, b.gather_output, Role::output, kWrite | kAlloc | kFree);
        // Copy-out: the unsharded tensors are allocated after the collective, then its output is freed.
        use(ag, b.unsharded, Role::result, kWrite | kAlloc, 0, Phase::end);
        ag.collective = CollectiveOp{CollectiveKind::all_gather, kShardGroup, p_.param_shards(), bytes(b.gather_output),
                                     p_.precision().params};
        made_available(u, add(std::move(ag)));
    }
    // ZeRO++ hpZ in backward: from the secondary copy, inside the secondary group.
    void gather_secondary(int u, std::vector<int> deps) {
        const UnitBuffers& b = B(u);
        Op ag = make(OpKind::all_gather, OpStream::comm, u, std::move(deps));
        use(ag, b.secondary, Role::input, kRead);
        use(ag, b.secondary_gather, Role::output, kWrite | kAlloc | kFree);
        use(ag, b.unsharded, Role::result, kWrite | kAlloc, 0, Phase::end);
        ag.collective = CollectiveOp{CollectiveKind::all_gather, kSecondaryGroup, p_.groups().secondary_size(), bytes(b.secondary_gather),
                                     p_.precision().params};
        made_available(u, add(std::move(ag)));
    }

    void made_available(int u, int op) {
        avail_[static_cast<std::size_t>(u)] = op;
        live_elements_ += p_.unit_plan(u).params.real.count();
    }

    void reshard(int u, int after) {
        const UnitBuffers& b = B(u);
        Op r = make(OpKind::reshard, OpStream::compute, u, {after});
        // hpZ: the first reshard after forward keeps this rank's rows of the secondary copy.
        const bool keep_secondary = b.secondary >= 0 && !in_backward_ && !secondary_live_[static_cast<std::size_t>(u)];
        use(r, b.unsharded, keep_secondary ? Role::input : Role::memory, keep_secondary ? kRead | kFree : kFree);
        if (keep_secondary) {
            use(r, b.secondary, Role::output, kWrite | kAlloc);
            secondary_live_[static_cast<std::size_t>(u)] = true;
        }
        // ... and the reshard after the unit's last backward use of the step frees it: the update
        // makes it stale, and the next step's forward makes a new one.
        if (in_backward_ && last_micro_batch_ && secondary_live_[static_cast<std::size_t>(u)]) {
            use(r, b.secondary, Role::memory, kFree);
            secondary_live_[static_cast<std::size_t>(u)] = false;
        }
        last_reshard_ = add(std::move(r));
        avail_[static_cast<std::size_t>(u)] = -1;
        live_elements_ -= p_.unit_plan(u).params.real.count();
    }

    // Gathers what the calls at order[pos .. pos+prefetch] read. The current call's units are
    // always gathered; prefetches stop at the first one the live-parameter limit refuses.
    void ensure_window(const std::vector<int>& order, std::size_t pos) {
        const std::size_t last = std::min(order.size() - 1, pos + static_cast<std::size_t>(p_.scenario().job.prefetch));
        for (std::size_t j = pos; j <= last; ++j) {
            for (int u : prog_[static_cast<std::size_t>(order[j])].reads) {
                if (avail_[static_cast<std::size_t>(u)] >= 0) continue;
                const bool forced = j == pos;
                if (!forced && p_.traits().live_param_limit &&
                    live_elements_ + p_.unit_plan(u).params.real.count() > p_.scenario().job.max_live_params)
                    return;
                gather(u);
            }
        }
    }

    // --- forward / backward ----------------------------------------------------------------
    // A compute op reads the parameters of every unit its call reads, gathered or resident.
    Op compute(OpKind kind, int c) const {
        const auto& step = prog_[static_cast<std::size_t>(c)];
        std::vector<int> deps;
        for (int u : step.reads)
            if (gathers_) deps.push_back(avail_[static_cast<std::size_t>(u)]);
        Op op = make(kind, OpStream::compute, step.unit, deps);
        op.call = c;
        for (int u : step.reads) use(op, gathers_ ? B(u).unsharded : B(u).params, Role::params, kRead);
        return op;
    }

    void cross_calls(Op& op, int c, bool backward) const {
        for (const auto& x : t_.cross_calls()) {
            if (x.alloc_call == c && x.alloc_in_backward == backward) memory(op, x.buffer, kAlloc);
            if (x.free_call == c && x.free_in_backward == backward) memory(op, x.buffer, kFree);
        }
    }

    void forward_phase(int m) {
        mb_ = m;
        in_backward_ = false;
        std::vector<int> order;
        for (int c = 0; c < K_; ++c) order.push_back(c);
        for (std::size_t pos = 0; pos < order.size(); ++pos) {
            const int c = order[pos];
            if (gathers_) ensure_window(order, pos);
            const CallBuffers& cb = t_.call(c);
            Op f = compute(OpKind::forward, c);
            f.flops = flops_[static_cast<std::size_t>(c)].forward;
            f.activation_bytes = acts_[static_cast<std::size_t>(c)].saved_bytes();
            memory(f, cb.saved, kAlloc);
            memory(f, cb.output, kAlloc);  // the hidden state the next call keeps as its input
            memory(f, cb.forward_workspace, kAlloc | kFree);
            cross_calls(f, c, false);
            const int id = add(std::move(f));
            if (!gathers_) continue;
            for (int u : prog_[static_cast<std::size_t>(c)].reads)
                if (reshards_after_forward(u) && uses(u).back() == c) reshard(u, id);
        }
    }

    void recompute(int c) {
        Op r = compute(OpKind::recompute, c);
        r.flops = flops_[static_cast<std::size_t>(c)].forward;
        r.activation_bytes = acts_[static_cast<std::size_t>(c)].recompute_bytes();
        memory(r, t_.call(c).recomputed, kAlloc);
        memory(r, t_.call(c).forward_workspace, kAlloc | kFree);
        add(std::move(r));
    }

    // Where backward puts a unit's gradients: its own buffer for this micro-batch (the first
    // backward use allocates it), or persistent storage (a one-rank shard, replicated gradients).
    void gradient_use(Op& b, int u, int c) const {
        if (!trainable(u)) return;
        const UnitBuffers& ub = B(u);
        if (ub.unit_grads >= 0)
            use(b, ub.unit_grads, Role::grads, kRead | kWrite | (uses(u).back() == c ? kAlloc : 0u), mb_);
        else
            use(b, ub.grad_shard >= 0 ? ub.grad_shard : ub.grads, Role::grads, kRead | kWrite);
    }

    void backward_phase(int m, bool last_micro_batch) {
        mb_ = m;
        in_backward_ = true;
        last_micro_batch_ = last_micro_batch;
        for (int c = K_ - 1; c >= 0; --c) {
            const auto& step = prog_[static_cast<std::size_t>(c)];
            if (gathers_) ensure_window(backward_order_, static_cast<std::size_t>(K_ - 1 - c));
            if (acts_[static_cast<std::size_t>(c)].checkpointed) recompute(c);
            const CallBuffers& cb = t_.call(c);
            Op b = compute(OpKind::backward, c);
            b.flops = flops_[static_cast<std::size_t>(c)].backward;
            b.activation_bytes = acts_[static_cast<std::size_t>(c)].saved_bytes();
            for (int u : step.reads) gradient_use(b, u, c);
            memory(b, cb.backward_workspace, kAlloc | kFree);
            memory(b, cb.saved, kFree);
            memory(b, cb.recomputed, kFree);
            if (c > 0) memory(b, t_.call(c - 1).output, kFree);  // this call's input
            // The gradient of this call's input goes to the previous call's backward, which frees
            // it; the gradient of its own output came from the next call.
            memory(b, cb.input_grad, kAlloc);
            if (c + 1 < K_) memory(b, t_.call(c + 1).input_grad, kFree);
            cross_calls(b, c, true);
            const int id = add(std::move(b));
            for (int u : step.reads) {
                if (uses(u).front() != c) continue;  // more backward uses of u follow
                if (gathers_) reshard(u, id);
                reduce(u, id, last_micro_batch);
            }
        }
    }

    // --- gradient reduction ------------------------------------------------------------------
    // Reduce-scatter of a unit's gradients into this rank's shard: packs `input` rank-major into
    // the reduce-scatter input, sums into the output (this micro-batch's instance).
    int reduce_scatter(int u, int after, int input, bool free_input) {
        const UnitBuffers& b = B(u);
        Op rs = make(OpKind::reduce_scatter, OpStream::comm, u, {after});
        const int inst = t_[input].persistent ? 0 : mb_;
        use(rs, input, Role::input, kRead | (free_input ? kFree : 0u), inst, Phase::start, Phase::start);
        use(rs, b.rs_input, Role::stage, kWrite | kAlloc | kFree);
        use(rs, b.rs_output, Role::output, kWrite | kAlloc, mb_);
        rs.collective = CollectiveOp{CollectiveKind::reduce_scatter, kShardGroup, p_.state_shards(), bytes(b.rs_input),
                                     p_.precision().reduce};
        return add(std::move(rs));
    }

    // Device -> host copy of `input` through the pinned bounce buffer, added into the fp32 host
    // gradient shard.
    int offload_grads(int u, int after, int input) {
        const UnitBuffers& b = B(u);
        Op d2h = make(OpKind::offload_grads, OpStream::copy, u, {after});
        use(d2h, input, Role::input, kRead, t_[input].persistent ? 0 : mb_);
        use(d2h, b.bounce, Role::stage, kWrite | kAlloc | kFree);
        use(d2h, b.host_grads, Role::result, kRead | kWrite);
        d2h.copy_bytes = bytes(b.bounce);
        return add(std::move(d2h));
    }

    // The end of a unit's reduction chain: the op that last touches the carried buffer frees it,
    // and (if given) lands the reduced values in `result`.
    void end_chain(int op_id, int carried, int result) {
        Op& op = s_.ops[static_cast<std::size_t>(op_id)];
        if (carried >= 0)
            for (auto& u : op.buffers)
                if (u.buffer == carried && (u.role == Role::input || u.role == Role::output)) u.free = true, u.free_phase = Phase::end;
        use(op, result, Role::result, kRead | kWrite);
    }

    int all_reduce(int unit, const std::vector<int>& units, int group, std::int64_t ranks, int buffer, int cast, int after) {
        Op ar = make(OpKind::all_reduce, OpStream::comm, unit, {after});
        ar.units = units;
        use(ar, buffer, Role::input, kRead | kWrite, t_[buffer].persistent || t_[buffer].is_view() ? 0 : mb_);
        // Gradients reduced in another dtype travel through a cast copy.
        use(ar, cast, Role::stage, kWrite | kAlloc | kFree);
        ar.collective = CollectiveOp{CollectiveKind::all_reduce, group, ranks, bytes(cast >= 0 ? cast : buffer), p_.precision().reduce};
        return add(std::move(ar));
    }

    void reduce_sharded(int u, int after, bool last_micro_batch) {
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
            end = all_reduce(u, {u}, kReplicateGroup, p_.groups().replicate_size(), buffer, carried >= 0 && carried == b.rs_output ? -1 : b.cast, end);
        }
        if (offload) end = offload_grads(u, end, carried);
        const bool lands_on_device = !offload && carried == b.rs_output && carried >= 0;
        end_chain(end, carried, lands_on_device ? b.grad_shard : -1);
        finish(u, end, after);
    }

    void reduce(int u, int after, bool last_micro_batch) {
        if (!trainable(u)) return;
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
        // Buckets close at their last unit (plan/buffers.cpp).
        const int k = bucket_of_[static_cast<std::size_t>(u)];
        const Bucket& bucket = t_.buckets()[static_cast<std::size_t>(k)];
        if (bucket.units.back() != u) return;
        const int unit = bucket.units.size() == 1 ? bucket.units.front() : -1;
        const int id = all_reduce(unit, bucket.units, kWorldGroup, p_.groups().world(), bucket.grads, bucket.cast, after);
        for (int v : bucket.units) chain_[static_cast<std::size_t>(v)] = id;
        last_reduction_ = id;
    }

    void finish(int u, int end, int after) {
        chain_[static_cast<std::size_t>(u)] = end;
        if (end != after) last_reduction_ = end;
    }

    // --- optimizer -----------------------------------------------------------------------------
    int optimizer_step(int u, int sync) {
        const UnitBuffers& b = B(u);
        const bool offload = p_.offload_optimizer();
        Op opt = make(OpKind::optimizer_step, offload ? OpStream::host : OpStream::compute, u);
        opt.micro_batch = -1;
        // The update kernels read 16-bit gradients as they are (converting per element), so the
        // step needs no fp32 copy of the gradient shard. Gradients are zeroed after it.
        const int device_grads = b.grad_shard >= 0 ? b.grad_shard : b.grads;
        use(opt, offload ? b.host_grads : device_grads, Role::grads, kRead);
        use(opt, offload ? b.host_grads : -1, Role::cleared, kWrite);
        use(opt, device_grads, Role::cleared, kWrite);  // offloaded ZeRO-1 accumulated on the device too
        use(opt, offload && !p_.offload_params() ? b.staging : b.params, Role::params, kRead | kWrite);
        use(opt, b.master, Role::master, kRead | kWrite);
        use(opt, b.moments[0], Role::moment0, kRead | kWrite);
        use(opt, b.moments[1], Role::moment1, kRead | kWrite);
        opt.optimizer_elements = p_.unit_plan(u).state.shard.count();
        opt.optimizer_bytes = p_.optimizer_traffic_bytes(u).count();
        if (sync >= 0) opt.deps.push_back(sync);
        if (chain_[static_cast<std::size_t>(u)] >= 0) opt.deps.push_back(chain_[static_cast<std::size_t>(u)]);
        return add(std::move(opt));
    }

    // ZeRO-1/2 after the step: every rank's updated rows into the full parameters.
    void post_step_gather(int u, int after) {
        const UnitBuffers& b = B(u);
        Op ag = make(OpKind::all_gather, OpStream::comm, u, {after});
        ag.micro_batch = -1;
        if (b.update >= 0) {
            use(ag, b.update, Role::input, kRead | kFree);
        } else {
            use(ag, b.params, Role::input, kRead);
            use(ag, b.packed_update, Role::stage, kWrite | kAlloc | kFree);  // this rank's rows, packed for sending
        }
        use(ag, b.post_gather, Role::output, kWrite | kAlloc | kFree);
        use(ag, b.params, Role::result, kWrite);
        ag.collective = CollectiveOp{CollectiveKind::all_gather, kShardGroup, p_.state_shards(), bytes(b.post_gather),
                                     p_.precision().params};
        add(std::move(ag));
    }

    void optimizer_phase() {
        mb_ = -1;
        // The step starts when backward has returned: every reduction issued (as PyTorch's
        // optimizer.step() runs after backward's final hooks).
        const int sync = last_reduction_;
        for (int u : p_.grad_order()) {
            if (!trainable(u)) continue;
            const UnitBuffers& b = B(u);
            int last = optimizer_step(u, sync);
            if (b.staging >= 0) {
                // The updated 16-bit shard goes back to the device: into the parameters, or into
                // the buffer the post-step all-gather sends.
                Op up = make(OpKind::upload_update, OpStream::copy, u, {last});
                up.micro_batch = -1;
                use(up, b.staging, Role::input, kRead);
                if (b.update >= 0)
                    use(up, b.update, Role::output, kWrite | kAlloc);
                else
                    use(up, b.params, Role::result, kWrite);
                up.copy_bytes = bytes(b.staging);
                last = add(std::move(up));
            }
            if (b.post_gather >= 0) post_step_gather(u, last);
        }
    }

    const ShardingPlan& p_;
    const BufferTable& t_;
    const std::vector<model::ProgramStep>& prog_;
    const int K_;
    Schedule s_;
    std::vector<std::vector<int>> uses_;
    std::vector<CallActivations> acts_;
    std::vector<model::CallFlops> flops_;
    std::vector<int> avail_;      // per unit: the op that made its unsharded parameters available (-1: not gathered)
    std::vector<int> chain_;      // per unit: the last op of its gradient reduction in this step
    std::vector<int> bucket_of_;  // per unit: its bucket (-1: none)
    std::vector<int> backward_order_;
    std::vector<bool> secondary_live_;  // per unit: hpZ's secondary copy exists (made after a forward)
    bool gathers_ = false;
    bool in_backward_ = false;
    bool last_micro_batch_ = false;
    int mb_ = 0;
    int last_reshard_ = -1;
    int last_reduction_ = -1;
    std::int64_t live_elements_ = 0;
};

}  // namespace

Schedule build_schedule(const ShardingPlan& plan) { return ScheduleBuilder(plan).build(); }

}  // namespace shardsim::plan
