// The schedule's ops, one short function per kind. Each takes the buffers its op names, by role
// (plan/schedule.hpp), and does what the op says with them; which buffers those are, and whether
// they exist at all, the plan and the schedule decided. Allocation and release follow the op's
// buffer list and its phases: start-phase allocations before the function runs, its
// start-phase frees and end-phase allocations when the function says its inputs are consumed
// (end_phase), the end-phase frees after it.
#include <array>
#include <cstring>

#include "movement.hpp"
#include "shardsim/nn/data.hpp"

namespace shardsim::exec {

namespace {

class OpRun {
public:
    OpRun(Executor::Impl& m, const plan::Op& op) : m_(m), op_(op) {
        for (const auto& u : op_.buffers)
            if (owned(u) && u.alloc && u.alloc_phase == plan::Phase::start) m_.arena->allocate(u.buffer, u.instance);
    }
    // The buffer in `role`; an empty Resolved when the op has none.
    Resolved get(plan::Role role) const {
        const plan::BufferUse* u = op_.use(role);
        return u ? m_.arena->get(u->buffer, u->instance) : Resolved{};
    }
    bool has(plan::Role role) const { return op_.use(role) != nullptr; }
    // Every use in `role`, in the op's order (compute ops name one per unit).
    std::vector<Resolved> all(plan::Role role) const {
        std::vector<Resolved> out;
        for (const auto& u : op_.buffers)
            if (u.role == role) out.push_back(m_.arena->get(u.buffer, u.instance));
        return out;
    }
    // The op's start phase is over: its inputs are consumed.
    void end_phase() {
        if (ended_) return;
        ended_ = true;
        for (const auto& u : op_.buffers) {
            if (!owned(u)) continue;
            if (u.free && u.free_phase == plan::Phase::start) m_.arena->release(u.buffer, u.instance);
            if (u.alloc && u.alloc_phase == plan::Phase::end) m_.arena->allocate(u.buffer, u.instance);
        }
    }
    void finish() {
        end_phase();
        for (const auto& u : op_.buffers)
            if (owned(u) && u.free && u.free_phase == plan::Phase::end) m_.arena->release(u.buffer, u.instance);
    }
    const plan::Op& op() const { return op_; }
    Executor::Impl& impl() const { return m_; }
    comm::Communicator& group() const { return m_.group(op_.collective->group); }
    // This rank's index in the state partition of the op's unit (or of `unit`).
    std::int64_t state_rank() const { return state_rank_of(op_.unit); }
    std::int64_t state_rank_of(int unit) const { return m_.arena->rank_in(m_.plan->unit_plan(unit).state, plan::kShardGroup); }

private:
    bool owned(const plan::BufferUse& u) const {
        const auto& b = m_.plan->buffers()[u.buffer];
        return b.owner == plan::Owner::executor && b.has_memory() && !b.persistent;
    }
    Executor::Impl& m_;
    const plan::Op& op_;
    bool ended_ = false;
};

using plan::Role;

void upload_params(OpRun& r) {
    const Resolved in = r.get(Role::input), out = r.get(Role::output);
    transfer(r.impl().dev, out.data, out.spec->side, in.data, in.spec->side, in.spec->bytes);
}

// Parameters into unsharded tensors: this rank's shard (or its rows, packed first) is gathered,
// then copied out. Serves both the per-unit gather and ZeRO-1/2's post-step gather.
void all_gather(OpRun& r) {
    Executor::Impl& m = r.impl();
    Resolved send = r.get(Role::input);
    if (r.has(Role::stage)) {
        const Resolved stage = r.get(Role::stage);
        copy_own_rows(m.dev, *m.plan, send, stage, r.state_rank());
        send = stage;
    }
    const Resolved out = r.get(Role::output);
    r.group().all_gather(send.data, out.data, send.spec->elements(), send.spec->dtype);
    r.end_phase();
    unpack_all(m.dev, *m.plan, out, r.get(Role::result));
}

// Every input packed into the stages in turn (a bucket's gradients into its buffer, then
// rank-major for a reduce-scatter); returns what the collective runs on.
Resolved pack_stages(OpRun& r) {
    Executor::Impl& m = r.impl();
    std::vector<Resolved> cur = r.all(Role::input);
    for (const Resolved& stage : r.all(Role::stage)) {
        pack_into(m.dev, *m.plan, cur, stage);
        cur = {stage};
    }
    return cur.front();
}

void reduce_scatter(OpRun& r) {
    Executor::Impl& m = r.impl();
    const Resolved send = pack_stages(r);
    r.end_phase();
    const Resolved out = r.get(Role::output);
    r.group().reduce_scatter(send.data, out.data, out.spec->elements(), out.spec->dtype);
    const auto results = r.all(Role::result);
    if (!results.empty()) land(m.dev, *m.plan, out, results, r.state_rank_of(results.front().spec->unit));
}

// In place, on the last stage (or the input itself, or the output that carries it on); the sum
// lands in the results, or goes back into the input when a stage only held it for the collective.
void all_reduce(OpRun& r) {
    Executor::Impl& m = r.impl();
    Resolved target = pack_stages(r);
    const bool staged = r.has(Role::stage);
    if (r.has(Role::output)) {
        const Resolved out = r.get(Role::output);
        pack_into(m.dev, *m.plan, {target}, out);
        target = out;
    }
    r.end_phase();
    r.group().all_reduce(target.data, target.data, target.spec->elements(), target.spec->dtype);
    const auto results = r.all(Role::result);
    if (!results.empty())
        land(m.dev, *m.plan, target, results, r.state_rank_of(results.front().spec->unit));
    else if (staged && !r.has(Role::output))
        pack_into(m.dev, *m.plan, {target}, r.get(Role::input));
}

// Device -> pinned host copy, whose rows are added into the host's fp32 gradient shards.
void offload_grads(OpRun& r) {
    Executor::Impl& m = r.impl();
    const Resolved in = r.get(Role::input), bounce = r.get(Role::stage);
    transfer(m.dev, bounce.data, bounce.spec->side, in.data, in.spec->side, in.spec->bytes);
    const auto results = r.all(Role::result);
    land(m.host, *m.plan, bounce, results, r.state_rank_of(results.front().spec->unit));
}

void upload_update(OpRun& r) {
    Executor::Impl& m = r.impl();
    const Resolved in = r.get(Role::input);
    if (r.has(Role::stage)) {
        // Up as it is, then converted into this rank's rows of the parameters on the device.
        const Resolved stage = r.get(Role::stage);
        transfer(m.dev, stage.data, stage.spec->side, in.data, in.spec->side, in.spec->bytes);
        return copy_own_rows(m.dev, *m.plan, stage, r.get(Role::result), r.state_rank());
    }
    if (r.has(Role::output)) {
        const Resolved out = r.get(Role::output);
        return transfer(m.dev, out.data, out.spec->side, in.data, in.spec->side, in.spec->bytes);
    }
    copy_own_rows(m.dev, *m.plan, in, r.get(Role::result), r.state_rank());
}

// Views of each unit's tensors in the buffers of `role` (parameters: every tensor; gradients: the
// trainable ones), in the order of the units the call reads.
device::CallTensors call_tensors(const OpRun& r, Role role, std::vector<device::UnitTensors>& store) {
    const plan::ShardingPlan& p = *r.impl().plan;
    const auto& reads = p.program()[static_cast<std::size_t>(r.op().call)].reads;
    const auto resolved = r.all(role);
    store.assign(reads.size(), {});
    device::CallTensors t;
    for (std::size_t i = 0; i < reads.size(); ++i) {
        const model::Unit& unit = p.units()[static_cast<std::size_t>(reads[i])];
        store[i].tensors.assign(unit.tensors.size(), Tensor{});
        for (const auto& b : resolved) {
            if (b.spec->unit != reads[i]) continue;
            for (const auto& c : plan::layout_of(p, *b.spec).chunks)
                store[i].tensors[static_cast<std::size_t>(c.tensor)] =
                    Tensor{static_cast<char*>(b.data) + c.offset * dtype_size(b.spec->dtype), b.spec->dtype,
                           unit.tensors[static_cast<std::size_t>(c.tensor)].shape};
        }
        t.units.push_back(&store[i]);
    }
    return t;
}

void forward(OpRun& r) {
    Executor::Impl& m = r.impl();
    const plan::Op& op = r.op();
    const auto& job = m.plan->scenario().job;
    if (op.call == 0)
        m.model->start_micro_batch(nn::make_batch(job.seed, nn::first_sample(m.step, op.micro_batch, m.rank, m.plan->groups().world(),
                                                                             job.grad_accum, job.micro_batch),
                                                  job.micro_batch, m.plan->batch_shape(), m.plan->scenario().model.vocab));
    std::vector<device::UnitTensors> params;
    m.model->forward(op.call, call_tensors(r, Role::params, params));
    if (op.call == static_cast<int>(m.plan->program().size()) - 1) m.micro_losses.push_back(m.model->last_loss());
}

void recompute(OpRun& r) {
    std::vector<device::UnitTensors> params;
    r.impl().model->recompute(r.op().call, call_tensors(r, Role::params, params));
}

void backward(OpRun& r) {
    std::vector<device::UnitTensors> params, grads;
    r.impl().model->backward(r.op().call, call_tensors(r, Role::params, params), call_tensors(r, Role::grads, grads));
}

// Its buffer list frees the unsharded parameters; with ZeRO++ hpZ it first keeps this rank's
// rows of them as its shard of the secondary copy.
void reshard(OpRun& r) {
    if (r.has(Role::output)) pack_shard(r.impl().dev, *r.impl().plan, r.get(Role::input), r.get(Role::output));
}

// One unit's update, tensor by tensor over this rank's rows; the gradients start from zero after.
void optimizer_step(OpRun& r) {
    Executor::Impl& m = r.impl();
    const plan::ShardingPlan& p = *m.plan;
    Device& math = r.op().stream == plan::OpStream::host ? m.host : m.dev;
    const Resolved grad = r.get(Role::grads), target = r.get(Role::params), master = r.get(Role::master);
    const std::array<Resolved, 2> moments = {r.get(Role::moment0), r.get(Role::moment1)};
    const std::int64_t rank = r.state_rank();
    const auto& chunks = p.unit_plan(r.op().unit).state.chunks;
    const int unit = r.op().unit;
    auto view = [&](const Resolved& b, std::size_t i, std::int64_t n) {
        return b ? flat(static_cast<char*>(b.data) + own_rows_offset(p, *b.spec, unit, chunks[i].tensor, rank) * dtype_size(b.spec->dtype),
                        b.spec->dtype, n)
                 : Tensor{};
    };
    if (r.has(Role::input)) {
        // The gradients flattened (and converted to fp32) first, as the plan's step group says.
        const Resolved in = r.get(Role::input);
        if (r.has(Role::stage)) {
            copy_own_rows(m.dev, p, in, r.get(Role::stage), rank);
            copy_own_rows(m.dev, p, r.get(Role::stage), grad, rank);
        } else {
            copy_own_rows(m.dev, p, in, grad, rank);
        }
    }
    const auto& job = p.scenario().job;
    for (std::size_t i = 0; i < chunks.size(); ++i) {
        const std::int64_t n = chunks[i].owned_rows(rank) * chunks[i].row_elements;
        if (n == 0) continue;
        const Tensor param = master ? view(master, i, n) : view(target, i, n);
        const Tensor copy = master ? view(target, i, n) : Tensor{};
        if (job.optimizer == config::OptimizerKind::adamw) {
            device::AdamWOp a{param, view(grad, i, n), view(moments[0], i, n), view(moments[1], i, n), copy};
            a.lr = static_cast<float>(job.lr);
            a.beta1 = static_cast<float>(job.beta1);
            a.beta2 = static_cast<float>(job.beta2);
            a.eps = static_cast<float>(job.eps);
            a.weight_decay = static_cast<float>(job.weight_decay);
            a.step = m.step + 1;
            math.adamw(a);
        } else {
            device::SgdOp g{param, view(grad, i, n), view(moments[0], i, n), copy};
            g.lr = static_cast<float>(job.lr);
            g.momentum = static_cast<float>(job.momentum);
            g.weight_decay = static_cast<float>(job.weight_decay);
            math.sgd(g);
        }
    }
    for (const Resolved& g : r.all(Role::cleared)) {
        if (g.spec->side == plan::Side::host)
            std::memset(g.data, 0, static_cast<std::size_t>(g.spec->bytes));
        else
            m.dev.fill_zero(g.data, g.spec->bytes);
    }
}

// The end of a micro-batch's backward: its dependencies are the wait; what it names it lands.
void backward_end(OpRun& r) {
    const auto results = r.all(Role::result);
    for (const auto& in : r.all(Role::input)) land(r.impl().dev, *r.impl().plan, in, results, r.state_rank_of(in.spec->unit));
}

using OpFunction = void (*)(OpRun&);
// By plan::OpKind.
constexpr std::array<OpFunction, plan::kOpKindCount> kOps = {
    all_gather, upload_params, reshard,       forward,        recompute,    backward,
    reduce_scatter, all_reduce, offload_grads, optimizer_step, upload_update, backward_end};

}  // namespace

void Executor::Impl::run_op(const plan::Op& op) {
    OpRun r(*this, op);
    kOps[static_cast<std::size_t>(op.kind)](r);
    r.finish();
}

}  // namespace shardsim::exec
