#pragma once
// The model against the plan's contracts on one device, for one configuration of a tiny model
// (shared by the unit tests on the CPU and the gpu tests on CUDA):
//   - activations: what each call keeps equals plan::call_activations term by term (name and
//     bytes), the tracking allocator's `activations` equal the contract's sum after the forward
//     pass, and nothing but the model states is left after backward;
//   - FLOPs: the device's GEMM FLOPs over a step equal model::call_flops summed over the calls
//     (plus, for recomputed blocks, what plan::recompute_work says the recompute computes);
//   - the model states the trainer allocates show up in their categories, exactly.
// Returns the largest transient within a call next to the plan's workspace estimates.
#include <doctest/doctest.h>

#include <algorithm>

#include "shardsim/plan/activations.hpp"
#include "train_helpers.hpp"

namespace shardsim::test {

using Terms = std::vector<std::pair<std::string, std::int64_t>>;

inline Terms sorted(Terms t) {
    std::sort(t.begin(), t.end());
    return t;
}

inline Terms contract_terms(const plan::CallActivations& a, bool kept_only) {
    Terms t;
    for (const auto& term : a.terms)
        if (!kept_only || term.kept) t.emplace_back(term.name, term.bytes);
    return sorted(t);
}

inline std::string describe(const Terms& t) {
    std::string s;
    for (const auto& [n, b] : t) s += n + "=" + std::to_string(b) + " ";
    return s;
}

struct Measured {
    std::int64_t fwd_transient = 0, fwd_estimate = 0, bwd_transient = 0, bwd_estimate = 0;
};

inline Measured check_contract(device::Device& dev_ref, const std::string& model, bool checkpointing, bool lora, DType dtype,
                               const std::vector<std::string>& extra = {}) {
    std::vector<std::string> sets = lora ? test::lora_all(model) : std::vector<std::string>{};
    sets.insert(sets.end(), extra.begin(), extra.end());
    // `extra` may name the checkpointing (selective); otherwise on / off as asked.
    const bool named = std::any_of(extra.begin(), extra.end(),
                                   [](const std::string& s) { return s.rfind("memory.activation_checkpointing=", 0) == 0; });
    if (!named) sets.push_back(std::string("memory.activation_checkpointing=") + (checkpointing ? "true" : "false"));
    sets.push_back(std::string("precision.params=") + std::string(dtype_name(dtype)));
    sets.push_back(std::string("precision.grads=") + std::string(dtype_name(dtype)));
    device::Device* dev = &dev_ref;
    MemoryByCategory states = dev->allocator().current();  // whatever the device held already
    test::Trainer tr(test::tiny_plan(model, sets), *dev);
    const plan::ShardingPlan& plan = tr.plan();
    const auto shape = plan.batch_shape();
    device::TrackingAllocator& alloc = dev->allocator();
    Measured m;

    // Model states, exactly as allocated by the trainer.
    for (const auto& u : plan.units()) {
        states[MemCategory::params] += plan.unsharded_param_bytes(u.index).count();
        states[MemCategory::grads] += plan.unsharded_grad_bytes(u.index).count();
        states[MemCategory::master_params] += plan.master_bytes(u.index).count();
        states[MemCategory::optimizer_states] += plan.optimizer_state_bytes(u.index).count();
    }
    CHECK(alloc.current() == states);

    tr.zero_grads();
    nn::Transformer& tf = tr.model();
    tf.start_micro_batch(tr.batch(0));
    const double flops0 = dev->gemm_flops();
    double expected_flops = 0;
    std::int64_t forward_bytes = 0;
    for (int c = 0; c < tr.calls(); ++c) {
        const plan::CallActivations a = plan::call_activations(plan, c);
        const auto& step = plan.program().at(static_cast<std::size_t>(c));
        const model::CallFlops f = model::call_flops(plan.scenario().model, plan.units(), step, shape);
        expected_flops += f.forward + f.backward + (a.checkpointed ? plan::recompute_work(plan::activation_inputs(plan), c, a).flops() : 0.0);
        const std::int64_t before = alloc.current().device_total();
        alloc.reset_peak();
        tf.forward(c, tr.params(c));
        const std::int64_t after = alloc.current().device_total();
        m.fwd_transient = std::max(m.fwd_transient, alloc.peak().device_total() - after);
        m.fwd_estimate = std::max(m.fwd_estimate, a.forward_workspace);
        (void)before;
        const Terms want = contract_terms(a, a.checkpointed), got = sorted(tf.saved_terms(c));
        CAPTURE(c);
        CAPTURE(describe(want));
        CAPTURE(describe(got));
        CHECK(got == want);
        forward_bytes += a.forward_bytes();
    }
    // After the forward pass the activations are exactly the contract's, and no workspace is left.
    CHECK(alloc.current()[MemCategory::activations] - states[MemCategory::activations] == forward_bytes);
    CHECK(alloc.current()[MemCategory::temporaries] == states[MemCategory::temporaries]);
    for (int c = tr.calls() - 1; c >= 0; --c) {
        const plan::CallActivations a = plan::call_activations(plan, c);
        CAPTURE(c);
        tf.recompute(c, tr.params(c));
        if (a.checkpointed) {
            const Terms want = contract_terms(a, false), got = sorted(tf.saved_terms(c));
            CAPTURE(describe(want));
            CAPTURE(describe(got));
            CHECK(got == want);
        }
        const std::int64_t before = alloc.current().device_total();
        alloc.reset_peak();
        tf.backward(c, tr.params(c), tr.grads(c));
        m.bwd_transient = std::max(m.bwd_transient, alloc.peak().device_total() - before);
        m.bwd_estimate = std::max(m.bwd_estimate, a.backward_workspace);
    }
    CHECK(alloc.current() == states);  // nothing leaks: only the model states are left
    // FLOPs: exactly the simulator's count (the executor's rule, 2 per multiply-add of each GEMM).
    const double flops = dev->gemm_flops() - flops0;
    CHECK(flops == doctest::Approx(expected_flops).epsilon(1e-12));
    CHECK(tf.flops() == doctest::Approx(flops).epsilon(1e-12));
    return m;
}

}  // namespace shardsim::test
