// The schedule builder's frame: the phases of a step and the compute ops (schedule_builder.hpp).
#include "schedule_builder.hpp"

#include <algorithm>

namespace shardsim::plan {

ScheduleBuilder::ScheduleBuilder(const ShardingPlan& plan)
    : p_(plan), t_(plan.buffers()), prog_(plan.program()), K_(static_cast<int>(prog_.size())) {
    const std::size_t n = plan.units().size();
    uses_.resize(n);
    for (int c = 0; c < K_; ++c)
        for (int u : prog_[static_cast<std::size_t>(c)].reads) uses_[static_cast<std::size_t>(u)].push_back(c);
    avail_.assign(n, -1);
    chain_.assign(n, -1);
    secondary_live_.assign(n, false);
    partition_live_.assign(n, false);
    buckets_ending_.resize(n);
    for (std::size_t k = 0; k < t_.buckets().size(); ++k)
        buckets_ending_[static_cast<std::size_t>(t_.buckets()[k].units.back())].push_back(static_cast<int>(k));
    gathers_ = plan.gathers_params();
    for (int c = 0; c < K_; ++c) forward_order_.push_back(c);
    for (int c = K_ - 1; c >= 0; --c) backward_order_.push_back(c);
    const ActivationInputs inputs = activation_inputs(plan);
    for (int c = 0; c < K_; ++c) {
        acts_.push_back(call_activations(inputs, c));
        flops_.push_back(model::call_flops(plan.scenario().model, plan.units(), prog_[static_cast<std::size_t>(c)], plan.batch_shape()));
        recompute_work_.push_back(acts_.back().checkpointed ? recompute_work(inputs, c, acts_.back()) : model::ComputeWork{});
    }
}

Schedule ScheduleBuilder::build() {
    s_.initial = p_.persistent();
    s_.micro_batches = static_cast<int>(job().grad_accum);
    for (int m = 0; m < s_.micro_batches; ++m) {
        forward_phase(m);
        backward_phase(m, m == s_.micro_batches - 1);
    }
    optimizer_phase();
    for (auto& op : s_.ops) op.ledger = derive_ledger(op, t_);
    return std::move(s_);
}

Schedule build_schedule(const ShardingPlan& plan) { return ScheduleBuilder(plan).build(); }

// --- ops and their buffers ---------------------------------------------------------------------

Op ScheduleBuilder::make(OpKind kind, OpStream stream, int unit, std::vector<int> deps) const {
    Op op;
    op.kind = kind;
    op.stream = stream;
    op.unit = unit;
    op.micro_batch = mb_;
    op.deps = std::move(deps);
    return op;
}

int ScheduleBuilder::add(Op op) {
    op.id = static_cast<int>(s_.ops.size());
    if (op.units.empty() && op.unit >= 0) op.units = {op.unit};
    if (op.stream == OpStream::compute && (op.kind == OpKind::forward || op.kind == OpKind::backward)) host_op_ = op.id;
    s_.ops.push_back(std::move(op));
    return s_.ops.back().id;
}

void ScheduleBuilder::use(Op& op, int buffer, Role role, unsigned access, int instance, Phase alloc_phase, Phase free_phase) {
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

// --- compute -----------------------------------------------------------------------------------

// A compute op reads the parameters of every unit its call reads, gathered or resident.
Op ScheduleBuilder::compute(OpKind kind, int c) {
    const auto& step = prog_[static_cast<std::size_t>(c)];
    std::vector<int> deps = std::move(compute_waits_);
    compute_waits_.clear();
    for (int u : step.reads)
        if (gathers_) deps.push_back(avail_[static_cast<std::size_t>(u)]);
    Op op = make(kind, OpStream::compute, step.unit, deps);
    op.call = c;
    for (int u : step.reads) use(op, gathers_ ? B(u).unsharded : B(u).params, Role::params, kRead);
    return op;
}

void ScheduleBuilder::cross_calls(Op& op, int c, bool backward) const {
    for (const auto& x : t_.cross_calls()) {
        if (x.alloc_call == c && x.alloc_in_backward == backward) memory(op, x.buffer, kAlloc);
        if (x.free_call == c && x.free_in_backward == backward) memory(op, x.buffer, kFree);
    }
}

void ScheduleBuilder::forward_phase(int m) {
    mb_ = m;
    in_backward_ = false;
    if (zero3_coordinates()) zero3_start_forward();
    for (std::size_t pos = 0; pos < forward_order_.size(); ++pos) {
        if (zero3_coordinates()) {
            zero3_fetch(static_cast<int>(pos));
            zero3_release(static_cast<int>(pos), forward_call(forward_order_[pos]));
            continue;
        }
        if (gathers_) ensure_window(forward_order_, pos, forward_depth());
        const int c = forward_order_[pos];
        const int id = forward_call(c);
        for (int u : prog_[static_cast<std::size_t>(c)].reads)
            if (gathers_ && reshards_after_forward(u) && uses(u).back() == c) reshard(u, id);
        // FSDP without forward_prefetch: the CPU runs ahead to the next unit's pre-forward and
        // issues its all-gather once this call (and its reshard) are issued.
        if (gathers_ && runs_ahead_in_forward() && pos + 1 < forward_order_.size()) ensure_window(forward_order_, pos + 1, 0);
    }
}

int ScheduleBuilder::forward_call(int c) {
    const CallBuffers& cb = t_.call(c);
    Op f = compute(OpKind::forward, c);
    f.flops = flops_[static_cast<std::size_t>(c)].forward;
    f.work = flops_[static_cast<std::size_t>(c)].forward_work;
    f.activation_bytes = forward_bytes_written(c);
    memory(f, cb.saved, kAlloc);
    memory(f, cb.output, kAlloc);  // the hidden state the next call keeps as its input
    memory(f, cb.forward_workspace, kAlloc | kFree);
    cross_calls(f, c, false);
    return add(std::move(f));
}

std::int64_t ScheduleBuilder::forward_bytes_written(int c) const {
    const std::int64_t next = c + 1 < K_ ? acts_[static_cast<std::size_t>(c + 1)].input_bytes() : 0;
    return acts_[static_cast<std::size_t>(c)].forward_written(next);
}

void ScheduleBuilder::recompute(int c) {
    Op r = compute(OpKind::recompute, c);
    r.work = recompute_work_[static_cast<std::size_t>(c)];
    r.flops = r.work.flops();
    r.activation_bytes = acts_[static_cast<std::size_t>(c)].recompute_bytes();
    memory(r, t_.call(c).recomputed, kAlloc);
    memory(r, t_.call(c).forward_workspace, kAlloc | kFree);
    add(std::move(r));
}

// Where backward puts a unit's gradients: its own buffer for this micro-batch (the first backward
// use allocates it), or persistent storage (a one-rank shard, replicated gradients). Inside FSDP's
// no_sync the unit's unsharded gradients carry over from micro-batch to micro-batch (instance 0,
// allocated once, reduced on the last).
void ScheduleBuilder::gradient_use(Op& b, int u, int c) const {
    if (!trainable(u)) return;
    const UnitBuffers& ub = B(u);
    if (ub.unit_grads < 0) return use(b, ub.grad_shard >= 0 ? ub.grad_shard : ub.grads, Role::grads, kRead | kWrite);
    const bool carried = engine() == Engine::fsdp && job().fsdp.no_sync;
    const bool first = uses(u).back() == c && (!carried || mb_ == 0);
    use(b, ub.unit_grads, Role::grads, kRead | kWrite | (first ? kAlloc : 0u), carried ? 0 : mb_);
}

void ScheduleBuilder::backward_phase(int m, bool last_micro_batch) {
    mb_ = m;
    in_backward_ = true;
    last_micro_batch_ = last_micro_batch;
    for (std::size_t pos = 0; pos < backward_order_.size(); ++pos) {
        const int c = backward_order_[pos];
        const int trace = K_ + static_cast<int>(pos);  // ZeRO-3's trace: forward calls, then backward
        if (zero3_coordinates())
            zero3_fetch(trace);
        else if (gathers_)
            ensure_window(backward_order_, pos, backward_depth());
        if (acts_[static_cast<std::size_t>(c)].checkpointed) recompute(c);
        const int id = backward_call(c);
        const auto& reads = prog_[static_cast<std::size_t>(c)].reads;
        if (zero3_coordinates()) zero3_release(trace, id);
        for (int u : reads)  // a unit is done after its last backward use (the first, going backward)
            if (!zero3_coordinates() && uses(u).front() == c && gathers_ && reshards_in_backward(u)) reshard(u, id);
        // FSDP's BACKWARD_POST: the next unit's all-gather goes before this unit's reduce-scatter.
        if (gathers_ && prefetches_after_reshard() && pos + 1 < backward_order_.size()) ensure_window(backward_order_, pos + 1, 0);
        for (int u : reads)
            if (uses(u).front() == c) reduce(u, id, last_micro_batch);
    }
    end_backward(last_micro_batch);
}

int ScheduleBuilder::backward_call(int c) {
    const auto& step = prog_[static_cast<std::size_t>(c)];
    const CallBuffers& cb = t_.call(c);
    Op b = compute(OpKind::backward, c);
    b.flops = flops_[static_cast<std::size_t>(c)].backward;
    b.work = flops_[static_cast<std::size_t>(c)].backward_work;
    b.activation_bytes = acts_[static_cast<std::size_t>(c)].saved_bytes();
    for (int u : step.reads) gradient_use(b, u, c);
    memory(b, cb.backward_workspace, kAlloc | kFree);
    memory(b, cb.saved, kFree);
    memory(b, cb.recomputed, kFree);
    if (c > 0) memory(b, t_.call(c - 1).output, kFree);  // this call's input
    // The gradient of this call's input goes to the previous call's backward, which frees it; the
    // gradient of its own output came from the next call.
    memory(b, cb.input_grad, kAlloc);
    if (c + 1 < K_) memory(b, t_.call(c + 1).input_grad, kFree);
    cross_calls(b, c, true);
    return add(std::move(b));
}

}  // namespace shardsim::plan
