#include "shardsim/plan/schedule.hpp"

#include <algorithm>
#include <array>

#include "shardsim/plan/activations.hpp"

namespace shardsim::plan {

namespace {
constexpr std::array<const char*, kOpKindCount> kOpKindNames = {
    "all_gather", "upload_params", "reshard",       "forward",        "recompute",    "backward",
    "reduce_scatter", "all_reduce", "offload_grads", "optimizer_step", "upload_update"};
constexpr std::array<const char*, kOpStreamCount> kStreamNames = {"compute", "comm", "copy", "host"};
}  // namespace

std::string op_kind_name(OpKind k) { return kOpKindNames[static_cast<int>(k)]; }
std::optional<OpKind> parse_op_kind(const std::string& s) {
    for (int i = 0; i < kOpKindCount; ++i)
        if (s == kOpKindNames[i]) return static_cast<OpKind>(i);
    return std::nullopt;
}
std::string op_stream_name(OpStream s) { return kStreamNames[static_cast<int>(s)]; }

std::int64_t Op::bytes() const {
    if (collective) return collective->size_bytes;
    return copy_bytes;
}

std::int64_t Op::net(MemCategory c) const {
    std::int64_t n = 0;
    for (const auto& e : ledger)
        if (e.category == c) n += e.bytes;
    return n;
}

std::int64_t Schedule::collective_size_bytes(CollectiveKind k) const {
    std::int64_t n = 0;
    for (const auto& op : ops)
        if (op.collective && op.collective->kind == k) n += op.collective->size_bytes;
    return n;
}

double Schedule::collective_wire_bytes(CollectiveKind k) const {
    double n = 0;
    for (const auto& op : ops)
        if (op.collective && op.collective->kind == k) n += wire_bytes(k, op.collective->size_bytes, op.collective->ranks);
    return n;
}

double Schedule::total_flops() const {
    double f = 0;
    for (const auto& op : ops) f += op.flops;
    return f;
}

namespace {

class ScheduleBuilder {
public:
    explicit ScheduleBuilder(const ShardingPlan& plan)
        : p_(plan), prog_(plan.program()), K_(static_cast<int>(prog_.size())) {
        const std::size_t n = plan.units().size();
        uses_.resize(n);
        for (int c = 0; c < K_; ++c)
            for (int u : prog_[static_cast<std::size_t>(c)].reads) uses_[static_cast<std::size_t>(u)].push_back(c);
        avail_.assign(n, -1);
        chain_.assign(n, -1);
        gathers_ = plan.gathers_params();
        transient_grads_ = plan.shards_grads() && (plan.state_shards() > 1 || plan.offload_optimizer());
        for (int c = 0; c < K_; ++c) acts_.push_back(call_activations(plan, c));
        cross_ = cross_call_buffers(plan);
        for (int c = 0; c < K_; ++c)
            flops_.push_back(model::call_flops(plan.scenario().model, plan.units(), prog_[static_cast<std::size_t>(c)],
                                               plan.batch_shape()));
    }

    Schedule build() {
        s_.initial = p_.persistent();
        s_.micro_batches = static_cast<int>(p_.scenario().job.grad_accum);
        for (int m = 0; m < s_.micro_batches; ++m) {
            forward_phase(m);
            backward_phase(m, m == s_.micro_batches - 1);
        }
        optimizer_phase();
        return std::move(s_);
    }

private:
    int add(Op op) {
        op.id = static_cast<int>(s_.ops.size());
        if (op.units.empty() && op.unit >= 0) op.units = {op.unit};
        s_.ops.push_back(std::move(op));
        return s_.ops.back().id;
    }
    static void alloc(Op& op, MemCategory c, std::int64_t bytes, Phase ph = Phase::start) {
        if (bytes != 0) op.ledger.push_back({c, bytes, ph});
    }
    static void release(Op& op, MemCategory c, std::int64_t bytes, Phase ph = Phase::end) {
        if (bytes != 0) op.ledger.push_back({c, -bytes, ph});
    }
    const std::vector<int>& uses(int u) const { return uses_[static_cast<std::size_t>(u)]; }
    bool trainable(int u) const { return p_.unit_plan(u).state.real.count() > 0; }
    bool reshards_after_forward(int u) const { return p_.traits().reshard_after_forward && uses(u).size() == 1; }

    // --- gathering -------------------------------------------------------------------------
    void gather(int u) {
        const std::int64_t shard = p_.param_shard_bytes(u).count();
        const bool gathered_by_upload = p_.param_shards() == 1;  // offloaded, unsharded: the upload is the gather
        std::vector<int> deps;
        if (last_reshard_ >= 0) deps.push_back(last_reshard_);
        if (p_.offload_params()) {
            Op up;
            up.kind = OpKind::upload_params;
            up.stream = OpStream::copy;
            up.unit = u;
            up.micro_batch = mb_;
            up.copy_bytes = shard;
            up.deps = deps;
            alloc(up, gathered_by_upload ? MemCategory::gathered_params : MemCategory::comm_buffers, shard);
            const int id = add(std::move(up));
            if (gathered_by_upload) {
                avail_[static_cast<std::size_t>(u)] = id;
                live_elements_ += p_.unit_plan(u).params.real.count();
                return;
            }
            deps = {id};
        }
        Op ag;
        ag.kind = OpKind::all_gather;
        ag.stream = OpStream::comm;
        ag.unit = u;
        ag.micro_batch = mb_;
        ag.deps = deps;
        ag.collective = CollectiveOp{CollectiveKind::all_gather, kShardGroup, p_.param_shards(),
                                     p_.gather_output_bytes(u).count(), p_.precision().params};
        alloc(ag, MemCategory::gathered_params, p_.gather_output_bytes(u).count());
        // Copy-out: the unsharded tensors are allocated, then the all-gather output is freed.
        alloc(ag, MemCategory::gathered_params, p_.unsharded_param_bytes(u).count(), Phase::end);
        release(ag, MemCategory::gathered_params, p_.gather_output_bytes(u).count());
        if (p_.offload_params()) release(ag, MemCategory::comm_buffers, shard);
        avail_[static_cast<std::size_t>(u)] = add(std::move(ag));
        live_elements_ += p_.unit_plan(u).params.real.count();
    }

    void reshard(int u, int after) {
        Op r;
        r.kind = OpKind::reshard;
        r.stream = OpStream::compute;
        r.unit = u;
        r.micro_batch = mb_;
        r.deps = {after};
        release(r, MemCategory::gathered_params, p_.unsharded_param_bytes(u).count());
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

    std::vector<int> param_deps(int call) const {
        std::vector<int> deps;
        if (!gathers_) return deps;
        for (int u : prog_[static_cast<std::size_t>(call)].reads) deps.push_back(avail_[static_cast<std::size_t>(u)]);
        return deps;
    }

    // --- forward / backward ----------------------------------------------------------------
    // Buffers one call makes and another frees (plan/activations.hpp).
    void cross_call(Op& op, int call, bool backward) {
        for (const auto& x : cross_) {
            if (x.alloc_call == call && x.alloc_in_backward == backward) alloc(op, x.category, x.bytes);
            if (x.free_call == call && x.free_in_backward == backward) release(op, x.category, x.bytes);
        }
    }

    void forward_phase(int m) {
        mb_ = m;
        std::vector<int> order;
        for (int c = 0; c < K_; ++c) order.push_back(c);
        for (std::size_t pos = 0; pos < order.size(); ++pos) {
            const int c = order[pos];
            if (gathers_) ensure_window(order, pos);
            const CallActivations& a = acts_[static_cast<std::size_t>(c)];
            Op f;
            f.kind = OpKind::forward;
            f.stream = OpStream::compute;
            f.unit = prog_[static_cast<std::size_t>(c)].unit;
            f.call = c;
            f.micro_batch = m;
            f.deps = param_deps(c);
            f.flops = flops_[static_cast<std::size_t>(c)].forward;
            f.activation_bytes = a.saved_bytes();
            // Each call allocates the hidden state it hands on; the next call keeps it as input.
            const std::int64_t next_input = c + 1 < K_ ? acts_[static_cast<std::size_t>(c + 1)].input_bytes() : 0;
            alloc(f, MemCategory::activations, a.forward_allocated(next_input));
            alloc(f, MemCategory::temporaries, a.forward_workspace);
            release(f, MemCategory::temporaries, a.forward_workspace);
            cross_call(f, c, false);
            const int id = add(std::move(f));
            if (!gathers_) continue;
            for (int u : prog_[static_cast<std::size_t>(c)].reads)
                if (reshards_after_forward(u) && uses(u).back() == c) reshard(u, id);
        }
    }

    void backward_phase(int m, bool last_micro_batch) {
        mb_ = m;
        std::vector<int> order;
        for (int c = K_ - 1; c >= 0; --c) order.push_back(c);
        for (std::size_t pos = 0; pos < order.size(); ++pos) {
            const int c = order[pos];
            const auto& step = prog_[static_cast<std::size_t>(c)];
            if (gathers_) ensure_window(order, pos);
            const CallActivations& a = acts_[static_cast<std::size_t>(c)];
            if (a.checkpointed) {
                Op r;
                r.kind = OpKind::recompute;
                r.stream = OpStream::compute;
                r.unit = step.unit;
                r.call = c;
                r.micro_batch = m;
                r.deps = param_deps(c);
                r.flops = flops_[static_cast<std::size_t>(c)].forward;
                r.activation_bytes = a.recompute_bytes();
                alloc(r, MemCategory::activations, a.recompute_bytes());
                alloc(r, MemCategory::temporaries, a.forward_workspace);
                release(r, MemCategory::temporaries, a.forward_workspace);
                add(std::move(r));
            }
            Op b;
            b.kind = OpKind::backward;
            b.stream = OpStream::compute;
            b.unit = step.unit;
            b.call = c;
            b.micro_batch = m;
            b.deps = param_deps(c);
            b.flops = flops_[static_cast<std::size_t>(c)].backward;
            b.activation_bytes = a.saved_bytes();
            // The first backward use of a unit brings its (unsharded) gradient buffer.
            if (transient_grads_)
                for (int u : step.reads)
                    if (uses(u).back() == c) alloc(b, MemCategory::grads, p_.unsharded_grad_bytes(u).count());
            alloc(b, MemCategory::temporaries, a.backward_workspace);
            release(b, MemCategory::temporaries, a.backward_workspace);
            release(b, MemCategory::activations, a.saved_bytes());
            // The gradient of this call's input is handed to the previous call's backward, which
            // frees it; the gradient of its own output came from the next call.
            alloc(b, MemCategory::temporaries, a.input_bytes());
            const std::int64_t output_grad = c + 1 < K_ ? acts_[static_cast<std::size_t>(c + 1)].input_bytes() : 0;
            release(b, MemCategory::temporaries, output_grad);
            cross_call(b, c, true);
            const int id = add(std::move(b));
            for (int u : step.reads) {
                if (uses(u).front() != c) continue;  // more backward uses of u follow
                if (gathers_) reshard(u, id);
                reduce(u, id, last_micro_batch);
            }
        }
        if (last_micro_batch) flush_bucket();
    }

    // --- gradient reduction ------------------------------------------------------------------
    // Reduce-scatter of a unit's gradients into this rank's shard: allocates the rank-major
    // input and the output; frees the input (and, for transient gradients, the unit's buffer).
    int reduce_scatter(int u, int after, bool transient) {
        Op rs;
        rs.kind = OpKind::reduce_scatter;
        rs.stream = OpStream::comm;
        rs.unit = u;
        rs.micro_batch = mb_;
        rs.deps = {after};
        rs.collective = CollectiveOp{CollectiveKind::reduce_scatter, kShardGroup, p_.state_shards(),
                                     p_.reduce_input_bytes(u).count(), p_.precision().reduce};
        alloc(rs, MemCategory::comm_buffers, p_.reduce_input_bytes(u).count());
        alloc(rs, MemCategory::comm_buffers, p_.reduce_output_bytes(u).count());
        if (transient) release(rs, MemCategory::grads, p_.unsharded_grad_bytes(u).count(), Phase::start);
        release(rs, MemCategory::comm_buffers, p_.reduce_input_bytes(u).count());
        return add(std::move(rs));
    }

    // Device -> host copy of `bytes` of gradients, through a pinned bounce buffer, added into the
    // fp32 host gradients.
    int offload_grads(int u, int after, std::int64_t bytes) {
        Op d2h;
        d2h.kind = OpKind::offload_grads;
        d2h.stream = OpStream::copy;
        d2h.unit = u;
        d2h.micro_batch = mb_;
        d2h.deps = {after};
        d2h.copy_bytes = bytes;
        alloc(d2h, MemCategory::offloaded, bytes);
        release(d2h, MemCategory::offloaded, bytes);
        return add(std::move(d2h));
    }

    void reduce(int u, int after, bool last_micro_batch) {
        if (!trainable(u)) return;
        const auto& t = p_.traits();
        const std::int64_t world = p_.groups().world();
        const bool offload = p_.offload_optimizer();
        const bool replicas = t.hybrid && p_.groups().replicate_size() > 1;
        if (p_.shards_grads()) {
            int end = after;
            std::int64_t out = 0;  // the buffer the chain carries and its last op frees
            MemCategory out_category = MemCategory::comm_buffers;
            if (p_.state_shards() > 1) {
                end = reduce_scatter(u, after, true);
                out = p_.reduce_output_bytes(u).count();
            } else if (offload) {
                // One shard: the unit's gradients leave for the host as they are.
                out = p_.unsharded_grad_bytes(u).count();
                out_category = MemCategory::grads;
            } else if (!replicas || !last_micro_batch) {
                return;  // accumulated in place; replicas (if any) sum them on the last micro-batch
            }
            if (replicas) {
                Op ar;
                ar.kind = OpKind::all_reduce;
                ar.stream = OpStream::comm;
                ar.unit = u;
                ar.micro_batch = mb_;
                ar.deps = {end};
                const std::int64_t size = p_.state_shards() > 1 ? out : p_.reduce_input_bytes(u).count();
                ar.collective = CollectiveOp{CollectiveKind::all_reduce, kReplicateGroup, p_.groups().replicate_size(), size,
                                             p_.precision().reduce};
                // Unsharded gradients reduced in another dtype travel through a cast copy.
                if (p_.state_shards() == 1 && p_.precision().reduce != p_.precision().grads) {
                    alloc(ar, MemCategory::comm_buffers, size);
                    release(ar, MemCategory::comm_buffers, size);
                }
                end = add(std::move(ar));
            }
            if (offload) end = offload_grads(u, end, out);
            if (out > 0) release(s_.ops[static_cast<std::size_t>(end)], out_category, out);
            chain_[static_cast<std::size_t>(u)] = end;
            if (end != after) last_reduction_ = end;
            return;
        }
        // Replicated gradients: reduced once, on the last micro-batch (no_sync before it).
        if (!last_micro_batch) return;
        if (t.reduction == GradReduction::reduce_scatter_per_unit && (p_.state_shards() > 1 || offload)) {
            // ZeRO-1: the full gradient buffer is packed rank-major and reduce-scattered; this
            // rank's summed shard is written back over its rows (or, offloaded, sent to the host;
            // on one rank the full gradients go to the host as they are).
            int end = after;
            if (p_.state_shards() > 1) {
                end = reduce_scatter(u, after, false);
                const std::int64_t out = p_.reduce_output_bytes(u).count();
                if (offload) end = offload_grads(u, end, out);
                release(s_.ops[static_cast<std::size_t>(end)], MemCategory::comm_buffers, out);
            } else {
                end = offload_grads(u, end, p_.grad_shard_bytes(u).count());
            }
            chain_[static_cast<std::size_t>(u)] = last_reduction_ = end;
            return;
        }
        if (world == 1) return;
        if (t.reduction == GradReduction::all_reduce_per_unit) {
            chain_[static_cast<std::size_t>(u)] = last_reduction_ = all_reduce({u}, p_.reduce_input_bytes(u).count(), after);
            return;
        }
        bucket_.push_back(u);
        bucket_bytes_ += p_.reduce_input_bytes(u).count();
        bucket_after_ = after;
        if (bucket_bytes_ >= static_cast<std::int64_t>(p_.scenario().job.bucket_mib * kMiB)) flush_bucket();
    }

    int all_reduce(const std::vector<int>& units, std::int64_t bytes, int after) {
        Op ar;
        ar.kind = OpKind::all_reduce;
        ar.stream = OpStream::comm;
        ar.unit = units.size() == 1 ? units.front() : -1;
        ar.units = units;
        ar.micro_batch = mb_;
        ar.deps = {after};
        ar.collective = CollectiveOp{CollectiveKind::all_reduce, kWorldGroup, p_.groups().world(), bytes,
                                     p_.precision().reduce};
        // Gradients reduced in another dtype travel through a cast copy.
        if (p_.precision().reduce != p_.precision().grads) {
            alloc(ar, MemCategory::comm_buffers, bytes);
            release(ar, MemCategory::comm_buffers, bytes);
        }
        return add(std::move(ar));
    }

    void flush_bucket() {
        if (bucket_.empty()) return;
        const int id = all_reduce(bucket_, bucket_bytes_, bucket_after_);
        for (int u : bucket_) chain_[static_cast<std::size_t>(u)] = id;
        last_reduction_ = id;
        bucket_.clear();
        bucket_bytes_ = 0;
    }

    // --- optimizer -----------------------------------------------------------------------------
    void optimizer_phase() {
        mb_ = -1;
        const bool offload = p_.offload_optimizer();
        const bool gather_after = p_.traits().gather_after_step && p_.state_shards() > 1;
        std::vector<int> order;
        for (int u : p_.grad_order())
            if (trainable(u)) order.push_back(u);
        // The step starts when backward has returned: every reduction issued (as PyTorch's
        // optimizer.step() runs after backward's final hooks).
        const int sync = last_reduction_;
        for (int u : order) {
            const std::int64_t elems = p_.unit_plan(u).state.shard.count();
            Op opt;
            opt.kind = OpKind::optimizer_step;
            opt.stream = offload ? OpStream::host : OpStream::compute;
            opt.unit = u;
            opt.optimizer_elements = elems;
            const Precision& prec = p_.precision();
            opt.optimizer_bytes = elems * (2 * (prec.master ? dtype_size(DType::fp32) : 0) +
                                           2 * prec.moment_count * dtype_size(prec.moments) + dtype_size(prec.grads) +
                                           dtype_size(prec.params));
            if (sync >= 0) opt.deps.push_back(sync);
            if (chain_[static_cast<std::size_t>(u)] >= 0) opt.deps.push_back(chain_[static_cast<std::size_t>(u)]);
            // The update kernels read 16-bit gradients as they are (converting per element), so
            // the step needs no fp32 copy of the gradient shard.
            int last = add(std::move(opt));
            const std::int64_t update = p_.state_update_bytes(u).count();
            if (offload && !p_.offload_params()) {
                Op up;
                up.kind = OpKind::upload_update;
                up.stream = OpStream::copy;
                up.unit = u;
                up.deps = {last};
                up.copy_bytes = update;
                if (gather_after) alloc(up, MemCategory::comm_buffers, update);
                last = add(std::move(up));
            }
            if (gather_after) {
                Op ag;
                ag.kind = OpKind::all_gather;
                ag.stream = OpStream::comm;
                ag.unit = u;
                ag.deps = {last};
                const std::int64_t gathered = bytes_of(p_.unit_plan(u).state.gathered(), p_.precision().params).count();
                ag.collective = CollectiveOp{CollectiveKind::all_gather, kShardGroup, p_.state_shards(), gathered,
                                             p_.precision().params};
                if (!offload) alloc(ag, MemCategory::comm_buffers, update);  // the shard packed for sending
                alloc(ag, MemCategory::comm_buffers, gathered);
                release(ag, MemCategory::comm_buffers, gathered + update);
                add(std::move(ag));
            }
        }
    }

    const ShardingPlan& p_;
    const std::vector<model::ProgramStep>& prog_;
    const int K_;
    Schedule s_;
    std::vector<std::vector<int>> uses_;
    std::vector<CallActivations> acts_;
    std::vector<CrossCallBuffer> cross_;
    std::vector<model::CallFlops> flops_;
    std::vector<int> avail_;  // per unit: the op that made its unsharded parameters available (-1: not gathered)
    std::vector<int> chain_;  // per unit: the last op of its gradient reduction in this step
    bool gathers_ = false;
    bool transient_grads_ = false;
    int mb_ = 0;
    int last_reshard_ = -1;
    int last_reduction_ = -1;
    std::int64_t live_elements_ = 0;
    std::vector<int> bucket_;
    std::int64_t bucket_bytes_ = 0;
    int bucket_after_ = -1;
};

}  // namespace

Schedule build_schedule(const ShardingPlan& plan) { return ScheduleBuilder(plan).build(); }

std::string op_label(const ShardingPlan& plan, const Op& op) {
    std::string s = op_kind_name(op.kind);
    if (op.unit >= 0) {
        s += " " + plan.units().at(static_cast<std::size_t>(op.unit)).name;
    } else if (!op.units.empty()) {
        s += " bucket[" + plan.units().at(static_cast<std::size_t>(op.units.front())).name + ".." +
             plan.units().at(static_cast<std::size_t>(op.units.back())).name + "]";
    }
    if (op.micro_batch >= 0 && plan.scenario().job.grad_accum > 1) s += " mb" + std::to_string(op.micro_batch);
    return s;
}

}  // namespace shardsim::plan
