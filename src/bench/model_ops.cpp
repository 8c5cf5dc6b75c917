#include "shardsim/bench/model_ops.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "shardsim/core/half.hpp"
#include "shardsim/device/memory.hpp"
#include "shardsim/nn/data.hpp"
#include "shardsim/nn/init.hpp"
#include "shardsim/nn/transformer.hpp"

namespace shardsim::bench {

namespace {

// One unit's parameters (initial values, in the parameter dtype) and the gradients of its
// trainable tensors, on `dev`.
struct UnitState {
    std::vector<device::Buffer> buffers;
    device::UnitTensors params, grads;
};

UnitState allocate(device::Device& dev, const plan::ShardingPlan& plan, const model::Unit& unit) {
    UnitState s;
    const auto& p = plan.precision();
    for (const auto& t : unit.tensors) {
        const std::int64_t n = t.numel().count();
        s.buffers.emplace_back(dev.allocator(), n * static_cast<std::int64_t>(dtype_size(p.params)), MemCategory::params, t.name);
        const device::Tensor param{s.buffers.back().data(), p.params, t.shape};
        const std::vector<float> init = nn::initial_values(plan.scenario().job.seed, t, 0, n);
        std::vector<unsigned char> raw(static_cast<std::size_t>(param.bytes()));
        for (std::int64_t i = 0; i < n; ++i) store_value(raw.data(), p.params, i, init[static_cast<std::size_t>(i)]);
        dev.copy_from_host(param.data, raw.data(), param.bytes());
        s.params.tensors.push_back(param);
        device::Tensor grad;
        if (t.trainable) {
            s.buffers.emplace_back(dev.allocator(), n * static_cast<std::int64_t>(dtype_size(p.grads)), MemCategory::grads, t.name + " grad");
            grad = {s.buffers.back().data(), p.grads, t.shape};
            dev.fill_zero(grad.data, grad.bytes());
        }
        s.grads.tensors.push_back(grad);
    }
    return s;
}

}  // namespace

std::vector<OpTime> time_compute_ops(device::Device& dev, const plan::ShardingPlan& plan, const plan::Schedule& schedule, int reps) {
    dev.set_stream(device::DeviceStream::compute);
    std::vector<UnitState> units;
    for (const auto& u : plan.units()) units.push_back(allocate(dev, plan, u));
    auto call_tensors = [&](int call, bool grads) {
        device::CallTensors c;
        for (int u : plan.program().at(static_cast<std::size_t>(call)).reads)
            c.units.push_back(grads ? &units[static_cast<std::size_t>(u)].grads : &units[static_cast<std::size_t>(u)].params);
        return c;
    };
    std::map<int, int> forward_op, backward_op;  // call -> op of micro-batch 0
    for (const auto& op : schedule.ops) {
        if (op.micro_batch != 0 || op.call < 0) continue;
        if (op.kind == plan::OpKind::forward) forward_op[op.call] = op.id;
        if (op.kind == plan::OpKind::backward) backward_op[op.call] = op.id;
    }
    const auto shape = plan.batch_shape();
    nn::Transformer model(plan, dev, 1.0 / static_cast<double>(std::max<std::int64_t>(1, shape.tokens(model::Stream::decoder))));
    const int calls = static_cast<int>(plan.program().size());
    std::map<int, std::vector<double>> times;
    auto timed = [&](int op, const std::function<void()>& f) {
        const device::Event a = dev.record();
        f();
        const device::Event b = dev.record();
        dev.synchronize();
        if (op >= 0) times[op].push_back(dev.event_seconds(b) - dev.event_seconds(a));
    };
    for (int rep = 0; rep <= reps; ++rep) {
        model.start_micro_batch(nn::make_batch(plan.scenario().job.seed, nn::first_sample(rep, 0, 0, 1, 1, shape.batch), shape.batch, shape,
                                               plan.scenario().model.vocab));
        for (int c = 0; c < calls; ++c) {
            const auto it = forward_op.find(c);
            timed(rep > 0 && it != forward_op.end() ? it->second : -1, [&] { model.forward(c, call_tensors(c, false)); });
        }
        for (int c = calls - 1; c >= 0; --c) {
            model.recompute(c, call_tensors(c, false));
            const auto it = backward_op.find(c);
            timed(rep > 0 && it != backward_op.end() ? it->second : -1,
                  [&] { model.backward(c, call_tensors(c, false), call_tensors(c, true)); });
        }
    }
    std::vector<OpTime> out;
    for (auto& [op, t] : times) {
        std::sort(t.begin(), t.end());
        const double median = t[t.size() / 2];
        OpTime o{op, median, {}};
        for (double x : t) o.deviations.push_back(median > 0 ? x / median - 1 : 0.0);
        out.push_back(o);
    }
    return out;
}

}  // namespace shardsim::bench
