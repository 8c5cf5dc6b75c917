#include "shardsim/model/flops.hpp"

namespace shardsim::model {

const StackSpec& stack_of(const ModelSpec& spec, const Unit& unit) {
    return unit.stream == Stream::encoder ? spec.encoder : spec.decoder;
}

std::vector<AttentionShape> attention_shapes(const ModelSpec& spec, const Unit& unit) {
    std::vector<AttentionShape> out;
    if (unit.kind != UnitKind::encoder_block && unit.kind != UnitKind::decoder_block) return out;
    const StackSpec& s = stack_of(spec, unit);
    AttentionShape self{s.heads, s.kv_heads, s.head_dim, unit.stream, unit.stream, unit.kind == UnitKind::decoder_block};
    out.push_back(self);
    if (unit.cross_attention) {
        // CodeT5+ cross-attention works at the decoder width with the decoder's heads.
        AttentionShape cross{s.heads, s.heads, s.head_dim, Stream::decoder, Stream::encoder, false};
        if (spec.arch == Arch::t5) cross.kv_heads = s.kv_heads;
        out.push_back(cross);
    }
    return out;
}

CallFlops call_flops(const ModelSpec& spec, const std::vector<Unit>& units, const ProgramStep& step,
                     const BatchShape& shape) {
    CallFlops f;
    const Unit& unit = units.at(static_cast<std::size_t>(step.unit));
    // A unit called twice (T5's shared embedding) has no projections, so nothing is counted twice.
    for (const auto& t : unit.tensors) {
        const bool gemm = t.role == TensorRole::linear || t.role == TensorRole::lora_a || t.role == TensorRole::lora_b;
        if (!gemm) continue;
        const double mm = 2.0 * static_cast<double>(shape.tokens(t.stream)) * static_cast<double>(t.in_features) *
                          static_cast<double>(t.out_features);
        f.forward += mm;
        f.backward += mm;              // input gradient
        if (t.trainable) f.backward += mm;  // weight gradient
    }
    for (const auto& a : attention_shapes(spec, unit)) {
        const double sq = static_cast<double>(shape.len(a.q_stream));
        const double sk = static_cast<double>(shape.len(a.kv_stream));
        double pairs = sq * sk;
        if (shape.fused_attention && a.causal) pairs = sq * (sk + 1) / 2;
        const double fwd = 4.0 * static_cast<double>(shape.batch) * static_cast<double>(a.heads) * pairs *
                           static_cast<double>(a.head_dim);
        f.forward += fwd;
        f.backward += (shape.fused_attention ? 2.5 : 2.0) * fwd;
    }
    if (unit.kind == UnitKind::head && spec.tied_embeddings) {
        const Unit& embed = units.at(static_cast<std::size_t>(step.reads.at(1)));
        const double mm = 2.0 * static_cast<double>(shape.tokens(Stream::decoder)) *
                          static_cast<double>(spec.decoder.hidden) * static_cast<double>(spec.vocab);
        f.forward += mm;
        f.backward += mm;
        if (embed.tensors.front().trainable) f.backward += mm;
    }
    return f;
}

}  // namespace shardsim::model
