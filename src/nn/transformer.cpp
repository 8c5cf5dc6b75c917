// The Transformer: one call module per step of the forward program, dispatched by unit kind and
// architecture, and the bookkeeping around them (micro-batches, checkpointing, saved terms).
#include "shardsim/nn/transformer.hpp"

#include "model_parts.hpp"
#include "shardsim/core/error.hpp"

namespace shardsim::nn {

using device::Device;
using device::CallTensors;

using detail::CallModule;
using detail::Ctx;

struct Transformer::Impl {
    Impl(const plan::ShardingPlan& p, Device& d) : ctx(d, p) {}
    Ctx ctx;
    std::vector<std::unique_ptr<CallModule>> calls;
    std::vector<std::vector<std::pair<std::string, std::int64_t>>> saved;
    std::vector<bool> checkpointed;  // per call: plan::checkpointed of its unit
    std::vector<plan::CallActivations> acts;  // per call: what the plan says it keeps
    double flops_at_start = 0;
    int cross_blocks = 0;

    CallModule& call(int i) {
        SHARDSIM_ASSERT(i >= 0 && i < static_cast<int>(calls.size()), "call outside the forward program");
        return *calls[static_cast<std::size_t>(i)];
    }
};

namespace {

std::unique_ptr<CallModule> make_call(const Ctx& c, const model::Unit& u, const model::ProgramStep& step) {
    switch (u.kind) {
        case model::UnitKind::embedding: return detail::make_embedding_call(c, u, step.stream);
        case model::UnitKind::head: return detail::make_head_call(c, u, step);
        case model::UnitKind::encoder_block:
        case model::UnitKind::decoder_block: break;
    }
    switch (c.spec.arch) {
        case model::Arch::gpt2:
        case model::Arch::bloom: return detail::make_classic_block(c, u);
        case model::Arch::llama: return detail::make_llama_block(c, u);
        case model::Arch::t5: return detail::make_t5_block(c, u);
        case model::Arch::codet5p: return detail::make_codet5p_block(c, u);
    }
    throw Error("unknown architecture");
}

}  // namespace

Transformer::Transformer(const plan::ShardingPlan& plan, Device& device, double loss_scale)
    : impl_(std::make_unique<Impl>(plan, device)) {
    impl_->ctx.loss_scale = loss_scale;
    impl_->flops_at_start = device.gemm_flops();
    for (const auto& step : plan.program()) {
        const auto& u = plan.units().at(static_cast<std::size_t>(step.unit));
        impl_->calls.push_back(make_call(impl_->ctx, u, step));
        impl_->checkpointed.push_back(plan::checkpointed(plan, u));
        impl_->acts.push_back(plan::call_activations(plan, static_cast<int>(impl_->acts.size())));
        if (u.cross_attention && step.unit == u.index) ++impl_->cross_blocks;
    }
    impl_->saved.resize(impl_->calls.size());
}

Transformer::~Transformer() = default;

void Transformer::start_micro_batch(const Batch& batch) {
    Ctx& c = impl_->ctx;
    const auto& s = c.shape;
    SHARDSIM_ASSERT(batch.batch == s.batch && static_cast<std::int64_t>(batch.input_ids.size()) == s.tokens(model::Stream::decoder) &&
                        static_cast<std::int64_t>(batch.targets.size()) == s.tokens(model::Stream::decoder) &&
                        static_cast<std::int64_t>(batch.encoder_ids.size()) == s.tokens(model::Stream::encoder),
                    "micro-batch of another shape than the plan's");
    c.batch = batch;
    c.cross_left = impl_->cross_blocks;
    for (auto& h : c.hidden) h.reset();
    for (auto& g : c.grad) g.reset();
    for (auto& g : c.dposition_bias) g.reset();
    c.encoder_in_flight.reset();
    c.dencoder_out.reset();
}

void Transformer::forward(int call, const CallTensors& params) {
    CallModule& m = impl_->call(call);
    m.terms.clear();
    impl_->ctx.call = call;
    impl_->ctx.acts = &impl_->acts[static_cast<std::size_t>(call)];
    m.forward(impl_->ctx, params, false);
    if (impl_->checkpointed[static_cast<std::size_t>(call)]) m.terms.drop_transient();
    impl_->saved[static_cast<std::size_t>(call)] = m.terms.list();
}

void Transformer::recompute(int call, const CallTensors& params) {
    CallModule& m = impl_->call(call);
    if (!impl_->checkpointed[static_cast<std::size_t>(call)]) return;
    Ctx& c = impl_->ctx;
    c.call = call;
    c.acts = &impl_->acts[static_cast<std::size_t>(call)];
    c.recomputing = true;
    m.forward(c, params, true);
    c.recomputing = false;
    impl_->saved[static_cast<std::size_t>(call)] = m.terms.list();
}

void Transformer::backward(int call, const CallTensors& params, const CallTensors& grads) {
    CallModule& m = impl_->call(call);
    impl_->ctx.call = call;
    impl_->ctx.acts = &impl_->acts[static_cast<std::size_t>(call)];
    m.backward(impl_->ctx, params, grads);
    m.terms.clear();
}

double Transformer::last_loss() const { return impl_->ctx.last_loss; }

double Transformer::flops() const { return impl_->ctx.dev.gemm_flops() - impl_->flops_at_start; }

std::vector<std::pair<std::string, std::int64_t>> Transformer::saved_terms(int call) const {
    return impl_->saved.at(static_cast<std::size_t>(call));
}

}  // namespace shardsim::nn
