#include "shardsim/plan/activations.hpp"

#include <algorithm>

#include "activation_terms.hpp"
#include "shardsim/model/flops.hpp"

namespace shardsim::plan {

using namespace detail;  // the Builder, the family functions, kWhat

std::int64_t CallActivations::saved_bytes() const {
    std::int64_t n = 0;
    for (const auto& t : terms) n = checked_add(n, t.bytes, kWhat);
    return n;
}

std::int64_t CallActivations::kept_bytes() const {
    std::int64_t n = 0;
    for (const auto& t : terms)
        if (t.kept) n = checked_add(n, t.bytes, kWhat);
    return n;
}

std::int64_t CallActivations::input_bytes() const {
    for (const auto& t : terms)
        if (t.input) return t.bytes;
    return 0;
}

std::int64_t CallActivations::recompute_bytes() const { return saved_bytes() - kept_bytes(); }

CallActivations call_activations(const ActivationInputs& in, int call) {
    const auto& step = in.program->at(static_cast<std::size_t>(call));
    const Unit& u = in.units->at(static_cast<std::size_t>(step.unit));
    const auto& m = *in.model;
    Builder b(in.behaviour, u, in.shape);
    const auto attn = model::attention_shapes(m, u);
    switch (u.kind) {
        case model::UnitKind::embedding: embedding_call(b, in, u, step.stream); break;
        case model::UnitKind::head: head_call(b, in, u, step); break;
        case model::UnitKind::encoder_block:
        case model::UnitKind::decoder_block:
            switch (m.arch) {
                case Arch::gpt2:
                case Arch::bloom: classic_block(b, m, attn[0]); break;
                case Arch::llama: llama_block(b, m, attn[0]); break;
                case Arch::t5: t5_block(b, in, u, attn); break;
                case Arch::codet5p: codet5p_block(b, in, u, attn); break;
            }
            b.out().checkpointed = checkpointed(in.checkpointing != config::Checkpointing::none, in.checkpoint_every, *in.units, u);
            break;
    }
    b.finish();
    if (b.out().checkpointed && in.checkpointing == config::Checkpointing::selective) b.select();
    return b.out();
}

bool checkpointed(bool checkpointing, std::int64_t every, const std::vector<model::Unit>& units, const model::Unit& unit) {
    const bool block = unit.kind == model::UnitKind::encoder_block || unit.kind == model::UnitKind::decoder_block;
    if (!checkpointing || !block) return false;
    std::int64_t ordinal = 0;  // 1 for the first block
    for (const auto& u : units) {
        if (u.kind == model::UnitKind::encoder_block || u.kind == model::UnitKind::decoder_block) ++ordinal;
        if (u.index == unit.index) break;
    }
    return ordinal % every == 0;
}

bool checkpointed(const ShardingPlan& plan, const model::Unit& unit) {
    const auto& job = plan.scenario().job;
    return checkpointed(job.checkpointing(), job.checkpoint_every, plan.units(), unit);
}

CallActivations call_activations(const ShardingPlan& plan, int call) { return call_activations(activation_inputs(plan), call); }

model::ComputeWork recompute_work(const ActivationInputs& in, int call, const CallActivations& acts) {
    std::vector<std::string> kept;
    for (const auto& k : acts.kept_outputs) kept.push_back(k.module);
    return model::forward_work_without(*in.model, *in.units, in.program->at(static_cast<std::size_t>(call)), in.shape, kept,
                                       acts.attention_kept);
}

ActivationInputs activation_inputs(const ShardingPlan& plan) {
    ActivationInputs in;
    in.model = &plan.scenario().model;
    in.units = &plan.units();
    in.program = &plan.program();
    in.behaviour = model_behaviour(plan);
    in.shape = plan.batch_shape();
    in.checkpointing = plan.scenario().job.activation_checkpointing;
    in.checkpoint_every = plan.scenario().job.checkpoint_every;
    return in;
}

ModelBehaviour model_behaviour(const ShardingPlan& plan) { return model_behaviour(plan.scenario(), plan.precision().params); }

ModelBehaviour model_behaviour(const model::Scenario& s, DType compute) {
    ModelBehaviour r;
    r.compute = compute;
    r.fused_attention = s.job.attention == config::AttentionKind::sdpa || s.job.attention == config::AttentionKind::flash;
    r.softmax = s.model.softmax_fp32 ? DType::fp32 : r.compute;
    r.attention_dropout = s.model.attention_dropout;
    r.hidden_dropout = s.model.hidden_dropout;
    r.fused_loss = s.job.loss == config::LossKind::fused;
    r.loss_fp32 = s.model.loss_fp32;
    return r;
}

std::vector<CrossCallBuffer> cross_call_buffers(const ShardingPlan& plan) {
    std::vector<CrossCallBuffer> out;
    const auto& m = plan.scenario().model;
    if (!m.encoder_decoder()) return out;
    const auto shape = plan.batch_shape();
    const std::int64_t dt = dtype_size(plan.precision().params);
    int last_encoder = -1, last_cross = -1;
    int stack_first[2] = {-1, -1}, stack_last[2] = {-1, -1};
    for (int c = 0; c < static_cast<int>(plan.program().size()); ++c) {
        const auto& u = plan.units()[static_cast<std::size_t>(plan.program()[static_cast<std::size_t>(c)].unit)];
        if (u.kind != model::UnitKind::encoder_block && u.kind != model::UnitKind::decoder_block) continue;
        const int s = u.stream == Stream::encoder ? 0 : 1;
        if (u.layer == 0) stack_first[s] = c;
        stack_last[s] = c;
        if (s == 0) last_encoder = c;
        if (u.cross_attention) last_cross = c;
    }
    if (last_encoder < 0 || last_cross < 0) return out;
    const std::int64_t enc_width = m.decoder.hidden;  // T5: the same width; CodeT5+: projected to the decoder's
    const std::int64_t enc_bytes = checked_product({shape.tokens(Stream::encoder), enc_width, dt}, kWhat);
    out.push_back({"encoder output gradient", MemCategory::temporaries, enc_bytes, last_cross, true, last_encoder, true});
    if (!encoder_output_saved(activation_inputs(plan)))
        out.push_back({"encoder output in flight", MemCategory::activations, enc_bytes, last_encoder, false, last_cross, false});
    if (m.arch == Arch::t5) {
        for (int s = 0; s < 2; ++s) {
            if (stack_first[s] < 0) continue;
            const auto& block0 = plan.units()[static_cast<std::size_t>(plan.program()[static_cast<std::size_t>(stack_first[s])].unit)];
            if (!any_trainable(block0, {"relative_attention_bias"})) continue;
            const auto& stack = s == 0 ? m.encoder : m.decoder;
            const std::int64_t len = shape.len(s == 0 ? Stream::encoder : Stream::decoder);
            out.push_back({"position bias gradient", MemCategory::temporaries, checked_product({stack.heads, len, len, kStat}, kWhat), stack_last[s], true,
                           stack_first[s], true});
        }
    }
    return out;
}

}  // namespace shardsim::plan
