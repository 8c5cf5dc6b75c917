// The schedule's ops, one function per kind. Each does what its ledger says, in that order.
#include <cstring>

#include "executor_impl.hpp"
#include "shardsim/nn/data.hpp"

namespace shardsim::exec {

using device::Device;
using device::Tensor;
using device::Buffer;
using device::SgdOp;
using device::AdamWOp;
using device::Copy2dOp;
using nn::make_batch;
using device::CallTensors;
using nn::first_sample;

namespace {

const plan::ChunkLayout& chunk_for(const plan::FlatLayout& l, int tensor) {
    for (const auto& c : l.chunks)
        if (c.tensor == tensor) return c;
    throw Error("internal: tensor " + std::to_string(tensor) + " has no chunk in this layout");
}

// n elements from src (sdt) to dst (ddt), converting.
void copy_elements(Device& dev, const void* src, DType sdt, void* dst, DType ddt, std::int64_t n) {
    if (n <= 0) return;
    Copy2dOp op;
    op.src = src;
    op.src_dtype = sdt;
    op.dst = dst;
    op.dst_dtype = ddt;
    op.rows = 1;
    op.cols = n;
    op.src_ld = n;
    op.dst_ld = n;
    if (sdt == ddt)
        dev.copy(dst, src, n * dtype_size(sdt));
    else
        dev.copy2d(op);
}

char* at(void* base, std::int64_t elements, DType dt) { return static_cast<char*>(base) + elements * dtype_size(dt); }
const char* at(const void* base, std::int64_t elements, DType dt) {
    return static_cast<const char*>(base) + elements * dtype_size(dt);
}

// Unsharded -> rank-major padded (the reduce-scatter input, the all-gather input of ZeRO-1/2).
// `full` and `sharded` lay out the same tensors; rows [from_rank, to_rank) are copied.
void pack(Device& dev, const void* src, DType sdt, const plan::FlatLayout& full, void* dst, DType ddt,
          const plan::FlatLayout& sharded, std::int64_t from_rank, std::int64_t to_rank, bool zero_first) {
    if (zero_first) dev.fill_zero(dst, sharded.shard.count() * (to_rank - from_rank) * dtype_size(ddt));
    for (std::size_t i = 0; i < sharded.chunks.size(); ++i) {
        const auto& c = sharded.chunks[i];
        const auto& f = full.chunks[i];
        for (std::int64_t k = from_rank; k < to_rank; ++k) {
            const std::int64_t n = c.owned_rows(k) * c.row_elements;
            copy_elements(dev, at(src, f.offset + k * c.rows_per_rank * c.row_elements, sdt), sdt,
                          at(dst, (k - from_rank) * sharded.shard.count() + c.offset, ddt), ddt, n);
        }
    }
}

// Rank-major padded -> unsharded (the all-gather copy-out).
void unpack(Device& dev, const void* src, DType sdt, const plan::FlatLayout& sharded, void* dst, DType ddt,
            const plan::FlatLayout& full) {
    for (std::size_t i = 0; i < sharded.chunks.size(); ++i) {
        const auto& c = sharded.chunks[i];
        const auto& f = chunk_for(full, c.tensor);
        for (std::int64_t k = 0; k < sharded.shards; ++k) {
            const std::int64_t n = c.owned_rows(k) * c.row_elements;
            copy_elements(dev, at(src, k * sharded.shard.count() + c.offset, sdt), sdt,
                          at(dst, f.offset + k * c.rows_per_rank * c.row_elements, ddt), ddt, n);
        }
    }
}

Tensor flat(void* data, DType dt, std::int64_t n) { return Tensor{data, dt, {n}}; }

// In-place all-reduce of `count` values held in `dt`, summed in `rd` (through a copy when the
// two differ, as the ledger's cast buffer).
void all_reduce_as(comm::Communicator& c, void* buf, DType dt, std::int64_t count, DType rd, const std::string& name,
                   Device& dev) {
    if (dt == rd) {
        c.all_reduce(buf, buf, count, rd);
        return;
    }
    Buffer cast(dev.allocator(), count * dtype_size(rd), MemCategory::comm_buffers, name + " gradients in the reduce dtype");
    copy_elements(dev, buf, dt, cast.data(), rd, count);
    c.all_reduce(cast.data(), cast.data(), count, rd);
    copy_elements(dev, cast.data(), rd, buf, dt, count);
}

}  // namespace

CallTensors Executor::Impl::call_params(int call) {
    CallTensors t;
    for (int v : plan->program()[static_cast<std::size_t>(call)].reads) t.units.push_back(&units[static_cast<std::size_t>(v)].param_views);
    return t;
}

CallTensors Executor::Impl::call_grads(int call, int mb) {
    const auto& p = *plan;
    const DType gd = p.precision().grads;
    const bool transient = p.shards_grads() && (p.state_shards() > 1 || p.offload_optimizer());
    CallTensors t;
    for (int v : p.program()[static_cast<std::size_t>(call)].reads) {
        UnitState& s = units[static_cast<std::size_t>(v)];
        const auto& up = p.unit_plan(v);
        const auto& unit = p.units()[static_cast<std::size_t>(v)];
        void* base = nullptr;
        if (transient) {
            if (!s.unit_grads.data(mb) && p.unsharded_grad_bytes(v).count() > 0) {
                Buffer b(dev.allocator(), p.unsharded_grad_bytes(v).count(), MemCategory::grads, unit.name + " gradients");
                dev.fill_zero(b.data(), b.bytes());
                s.unit_grads.put(mb, std::move(b));
            }
            base = s.unit_grads.data(mb);
        } else if (p.shards_grads()) {
            base = s.grads.data();  // one shard: the shard is the whole gradient
        } else if (s.full_grads_offset >= 0) {
            base = static_cast<char*>(full_grads.data()) + s.full_grads_offset;
        }
        s.grad_views.tensors.assign(unit.tensors.size(), Tensor{});
        if (base)
            for (const auto& c : up.full_state.chunks)
                s.grad_views.tensors[static_cast<std::size_t>(c.tensor)] =
                    Tensor{at(base, c.offset, gd), gd, unit.tensors[static_cast<std::size_t>(c.tensor)].shape};
        t.units.push_back(&s.grad_views);
    }
    return t;
}

void Executor::Impl::run_op(const plan::Op& op) {
    const auto& p = *plan;
    const auto& prec = p.precision();
    const DType pd = prec.params, gd = prec.grads, rd = prec.reduce;
    const int u = op.unit;
    UnitState* s = u >= 0 ? &units[static_cast<std::size_t>(u)] : nullptr;
    const plan::UnitPlan* up = u >= 0 ? &p.unit_plan(u) : nullptr;
    const std::string name = u >= 0 ? p.units()[static_cast<std::size_t>(u)].name : std::string("bucket");
    const int mb = op.micro_batch;
    auto finish_reduction = [&] {
        Buffer reduced = s->reduced.take(mb);
        dev.accumulate(flat(s->grads.data(), gd, up->state.shard.count()), flat(reduced.data(), rd, up->state.shard.count()));
    };
    const bool chain_ends_at_rs = !(p.traits().hybrid && p.groups().replicate_size() > 1) && !p.offload_optimizer();

    switch (op.kind) {
        case plan::OpKind::upload_params: {
            if (p.param_shards() > 1) {
                s->upload = Buffer(dev.allocator(), s->params.bytes(), MemCategory::comm_buffers, name + " uploaded shard");
                dev.copy_from_host(s->upload.data(), s->params.data(), s->params.bytes());
            } else {
                s->gathered = Buffer(dev.allocator(), s->params.bytes(), MemCategory::gathered_params, name + " unsharded params");
                dev.copy_from_host(s->gathered.data(), s->params.data(), s->params.bytes());
                s->param_views.tensors.clear();
                for (const auto& c : up->full_params.chunks)
                    s->param_views.tensors.push_back(Tensor{at(s->gathered.data(), c.offset, pd), pd,
                                                            p.units()[static_cast<std::size_t>(u)].tensors[static_cast<std::size_t>(c.tensor)].shape});
            }
            return;
        }
        case plan::OpKind::all_gather: {
            if (op.micro_batch >= 0) {  // gather a unit's parameters for use
                Buffer out(dev.allocator(), p.gather_output_bytes(u).count(), MemCategory::gathered_params, name + " all-gather output");
                const void* send = p.offload_params() ? s->upload.data() : s->params.data();
                group(plan::kShardGroup).all_gather(send, out.data(), up->params.shard.count(), pd);
                measured_size[static_cast<std::size_t>(op.id)] = out.bytes();
                Buffer unsharded(dev.allocator(), p.unsharded_param_bytes(u).count(), MemCategory::gathered_params, name + " unsharded params");
                unpack(dev, out.data(), pd, up->params, unsharded.data(), pd, up->full_params);
                out.reset();
                s->upload.reset();
                s->gathered = std::move(unsharded);
                s->param_views.tensors.clear();
                for (const auto& c : up->full_params.chunks)
                    s->param_views.tensors.push_back(Tensor{at(s->gathered.data(), c.offset, pd), pd,
                                                            p.units()[static_cast<std::size_t>(u)].tensors[static_cast<std::size_t>(c.tensor)].shape});
                return;
            }
            // ZeRO-1/2 after the step: every rank's updated rows into the full parameters.
            const std::int64_t r = shard_rank();
            Buffer send;
            if (p.offload_optimizer()) {
                send = std::move(s->update);
            } else {
                send = Buffer(dev.allocator(), p.state_update_bytes(u).count(), MemCategory::comm_buffers, name + " updated shard");
                dev.fill_zero(send.data(), send.bytes());
                for (std::size_t i = 0; i < up->state.chunks.size(); ++i) {
                    const auto& c = up->state.chunks[i];
                    const auto& f = chunk_for(up->full_params, c.tensor);
                    copy_elements(dev, at(s->params.data(), f.offset + r * c.rows_per_rank * c.row_elements, pd), pd,
                                  at(send.data(), c.offset, pd), pd, c.owned_rows(r) * c.row_elements);
                }
            }
            Buffer out(dev.allocator(), op.collective->size_bytes, MemCategory::comm_buffers, name + " all-gather output");
            group(plan::kShardGroup).all_gather(send.data(), out.data(), up->state.shard.count(), pd);
            measured_size[static_cast<std::size_t>(op.id)] = out.bytes();
            unpack(dev, out.data(), pd, up->state, s->params.data(), pd, up->full_params);
            return;
        }
        case plan::OpKind::reshard:
            s->gathered.reset();
            s->param_views.tensors.clear();
            return;
        case plan::OpKind::forward: {
            if (op.call == 0) {
                const auto& job = p.scenario().job;
                const std::int64_t world = p.groups().world();
                model->start_micro_batch(make_batch(job.seed, first_sample(step, op.micro_batch, rank, world, job.grad_accum, job.micro_batch),
                                                    job.micro_batch, p.batch_shape(), p.scenario().model.vocab));
            }
            model->forward(op.call, call_params(op.call));
            if (op.call == static_cast<int>(p.program().size()) - 1) micro_losses.push_back(model->last_loss());
            return;
        }
        case plan::OpKind::recompute:
            model->recompute(op.call, call_params(op.call));
            return;
        case plan::OpKind::backward: {
            const CallTensors grads = call_grads(op.call, op.micro_batch);
            model->backward(op.call, call_params(op.call), grads);
            return;
        }
        case plan::OpKind::reduce_scatter: {
            Buffer in(dev.allocator(), p.reduce_input_bytes(u).count(), MemCategory::comm_buffers, name + " reduce-scatter input");
            Buffer out(dev.allocator(), p.reduce_output_bytes(u).count(), MemCategory::comm_buffers, name + " reduce-scatter output");
            const std::int64_t n_shards = up->state.shards;
            if (p.shards_grads()) {
                Buffer grads = s->unit_grads.take(mb);
                pack(dev, grads.data(), gd, up->full_state, in.data(), rd, up->state, 0, n_shards, true);
            } else {  // ZeRO-1: the replicated gradients
                pack(dev, static_cast<char*>(full_grads.data()) + s->full_grads_offset, gd, up->full_state, in.data(), rd,
                     up->state, 0, n_shards, true);
            }
            group(plan::kShardGroup).reduce_scatter(in.data(), out.data(), up->state.shard.count(), rd);
            measured_size[static_cast<std::size_t>(op.id)] = in.bytes();
            in.reset();
            if (!p.shards_grads() && !p.offload_optimizer()) {
                // This rank's summed rows go back over its rows of the replicated gradients.
                const std::int64_t r = shard_rank();
                for (std::size_t i = 0; i < up->state.chunks.size(); ++i) {
                    const auto& c = up->state.chunks[i];
                    const auto& f = up->full_state.chunks[i];
                    copy_elements(dev, at(out.data(), c.offset, rd), rd,
                                  at(static_cast<char*>(full_grads.data()) + s->full_grads_offset, f.offset + r * c.rows_per_rank * c.row_elements, gd),
                                  gd, c.owned_rows(r) * c.row_elements);
                }
                return;
            }
            s->reduced.put(mb, std::move(out));
            if (chain_ends_at_rs && p.shards_grads()) finish_reduction();
            return;
        }
        case plan::OpKind::all_reduce: {
            if (op.collective->group == plan::kReplicateGroup) {
                // The shard (reduce dtype), or with one rank per shard group the unit's own
                // gradients (grad dtype, cast through a copy when the dtypes differ).
                const bool sharded = up->state.shards > 1;
                void* buf = sharded ? s->reduced.data(mb) : (p.offload_optimizer() ? s->unit_grads.data(mb) : s->grads.data());
                const std::int64_t count = sharded ? up->state.shard.count() : up->state.real.count();
                all_reduce_as(group(plan::kReplicateGroup), buf, sharded ? rd : gd, count, rd, name, dev);
                measured_size[static_cast<std::size_t>(op.id)] = count * dtype_size(rd);
                if (sharded && !p.offload_optimizer()) finish_reduction();
                return;
            }
            // Replicated gradients of one unit or a bucket of consecutive units (grad_order).
            const std::int64_t offset = units[static_cast<std::size_t>(op.units.front())].full_grads_offset;
            std::int64_t bytes = 0;
            for (int v : op.units) {
                SHARDSIM_ASSERT(units[static_cast<std::size_t>(v)].full_grads_offset == offset + bytes, "bucket units must be contiguous");
                bytes += p.grad_shard_bytes(v).count();
            }
            const std::int64_t count = bytes / dtype_size(gd);
            all_reduce_as(group(plan::kWorldGroup), static_cast<char*>(full_grads.data()) + offset, gd, count, rd, name, dev);
            measured_size[static_cast<std::size_t>(op.id)] = count * dtype_size(rd);
            return;
        }
        case plan::OpKind::offload_grads: {
            // The reduced shard, a one-rank unit's gradient buffer, or (ZeRO-1 on one rank) the
            // replicated gradients themselves, which stay.
            Buffer owned = p.state_shards() > 1 ? s->reduced.take(mb) : (p.shards_grads() ? s->unit_grads.take(mb) : Buffer());
            const void* src = owned ? owned.data() : static_cast<const char*>(full_grads.data()) + s->full_grads_offset;
            const DType sdt = p.state_shards() > 1 ? rd : gd;
            const std::int64_t n = up->state.shard.count();
            Buffer bounce(dev.allocator(), op.copy_bytes, MemCategory::offloaded, name + " gradient bounce buffer");
            dev.copy_to_host(bounce.data(), src, op.copy_bytes);
            host.accumulate(flat(s->host_grads.data(), DType::fp32, n), flat(bounce.data(), sdt, n));
            return;
        }
        case plan::OpKind::optimizer_step: {
            const bool on_host = op.stream == plan::OpStream::host;
            Device& math = on_host ? host : dev;
            const auto& job = p.scenario().job;
            const std::int64_t r = p.state_shards() > 1 ? shard_rank() : 0;
            for (std::size_t i = 0; i < up->state.chunks.size(); ++i) {
                const auto& c = up->state.chunks[i];
                const std::int64_t n = c.owned_rows(r) * c.row_elements;
                if (n == 0) continue;
                Tensor grad, target;
                if (on_host) {
                    grad = flat(at(s->host_grads.data(), c.offset, DType::fp32), DType::fp32, n);
                    target = p.offload_params()
                                 ? flat(at(s->params.data(), chunk_for(up->params, c.tensor).offset, pd), pd, n)
                                 : flat(at(s->staging.data(), c.offset, pd), pd, n);
                } else {
                    grad = p.shards_grads()
                               ? flat(at(s->grads.data(), c.offset, gd), gd, n)
                               : flat(at(static_cast<char*>(full_grads.data()) + s->full_grads_offset,
                                         up->full_state.chunks[i].offset + r * c.rows_per_rank * c.row_elements, gd), gd, n);
                    target = p.traits().shard_params
                                 ? flat(at(s->params.data(), chunk_for(up->params, c.tensor).offset, pd), pd, n)
                                 : flat(at(s->params.data(), chunk_for(up->full_params, c.tensor).offset + r * c.rows_per_rank * c.row_elements, pd), pd, n);
                }
                const Tensor master = s->master ? flat(at(s->master.data(), c.offset, DType::fp32), DType::fp32, n) : Tensor{};
                auto moment = [&](int m) {
                    return s->moments[m] ? flat(at(s->moments[m].data(), c.offset, prec.moments), prec.moments, n) : Tensor{};
                };
                if (job.optimizer == config::OptimizerKind::adamw) {
                    AdamWOp a;
                    a.param = master.empty() ? target : master;
                    a.param_copy = master.empty() ? Tensor{} : target;
                    a.grad = grad;
                    a.exp_avg = moment(0);
                    a.exp_avg_sq = moment(1);
                    a.lr = static_cast<float>(job.lr);
                    a.beta1 = static_cast<float>(job.beta1);
                    a.beta2 = static_cast<float>(job.beta2);
                    a.eps = static_cast<float>(job.eps);
                    a.weight_decay = static_cast<float>(job.weight_decay);
                    a.step = step + 1;
                    math.adamw(a);
                } else {
                    SgdOp g;
                    g.param = master.empty() ? target : master;
                    g.param_copy = master.empty() ? Tensor{} : target;
                    g.grad = grad;
                    g.momentum_buf = moment(0);
                    g.lr = static_cast<float>(job.lr);
                    g.momentum = static_cast<float>(job.momentum);
                    g.weight_decay = static_cast<float>(job.weight_decay);
                    math.sgd(g);
                }
            }
            // Gradients start from zero for the next step.
            if (on_host) std::memset(s->host_grads.data(), 0, static_cast<std::size_t>(s->host_grads.bytes()));
            if (p.shards_grads() && s->grads)
                dev.fill_zero(s->grads.data(), s->grads.bytes());
            else if (!p.shards_grads())
                dev.fill_zero(static_cast<char*>(full_grads.data()) + s->full_grads_offset, p.grad_shard_bytes(u).count());
            return;
        }
        case plan::OpKind::upload_update: {
            if (p.traits().gather_after_step && p.state_shards() > 1) {
                s->update = Buffer(dev.allocator(), s->staging.bytes(), MemCategory::comm_buffers, name + " uploaded update");
                dev.copy_from_host(s->update.data(), s->staging.data(), s->staging.bytes());
                return;
            }
            for (const auto& c : up->state.chunks)
                dev.copy_from_host(at(s->params.data(), chunk_for(up->params, c.tensor).offset, pd), at(s->staging.data(), c.offset, pd),
                                   c.chunk_elements() * dtype_size(pd));
            return;
        }
    }
}

}  // namespace shardsim::exec
