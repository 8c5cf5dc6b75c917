#include "shardsim/model/flops.hpp"

#include <algorithm>

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

double ComputeWork::flops() const {
    double f = fused_attention_flops;
    for (const auto& g : gemms) f += g.flops();
    return f;
}

namespace {

// Kernels an op launches per GEMM: the GEMM and, around it, about two elementwise kernels (bias,
// activation, residual add, norm, dropout, cast), as an eager PyTorch block runs them.
constexpr std::int64_t kKernelsPerGemm = 3;

void add_gemm(ComputeWork& w, std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t count = 1) {
    w.gemms.push_back({m, n, k, count});
    w.kernels += kKernelsPerGemm;
}

// A projection [tokens x in] x [in x out]: forward, input gradient, and weight gradient if trained.
void projection(CallFlops& f, std::int64_t tokens, std::int64_t in, std::int64_t out, bool trainable) {
    const double mm = 2.0 * static_cast<double>(tokens) * static_cast<double>(in) * static_cast<double>(out);
    f.forward += mm;
    f.backward += mm;
    add_gemm(f.forward_work, tokens, out, in);
    add_gemm(f.backward_work, tokens, in, out);
    if (!trainable) return;
    f.backward += mm;
    add_gemm(f.backward_work, in, out, tokens);
}

void attention(CallFlops& f, const AttentionShape& a, const BatchShape& shape) {
    const std::int64_t sq = shape.len(a.q_stream), sk = shape.len(a.kv_stream), heads = shape.batch * a.heads;
    const double sqd = static_cast<double>(sq), skd = static_cast<double>(sk);
    double pairs = sqd * skd;
    if (shape.fused_attention && a.causal) pairs = sqd * (skd + 1) / 2;
    const double fwd = 4.0 * static_cast<double>(heads) * pairs * static_cast<double>(a.head_dim);
    const double bwd = (shape.fused_attention ? 2.5 : 2.0) * fwd;
    f.forward += fwd;
    f.backward += bwd;
    if (shape.fused_attention) {
        f.forward_work.fused_attention_flops += fwd;
        f.backward_work.fused_attention_flops += bwd;
        f.forward_work.kernels += 1;
        f.backward_work.kernels += 1;
        return;
    }
    add_gemm(f.forward_work, sq, sk, a.head_dim, heads);  // scores Q K^T
    add_gemm(f.forward_work, sq, a.head_dim, sk, heads);  // context P V
    add_gemm(f.backward_work, sq, sk, a.head_dim, heads);  // dP = dO V^T
    add_gemm(f.backward_work, sk, a.head_dim, sq, heads);  // dV = P^T dO
    add_gemm(f.backward_work, sq, a.head_dim, sk, heads);  // dQ = dS K
    add_gemm(f.backward_work, sk, a.head_dim, sq, heads);  // dK = dS^T Q
}

// The module a projection's tensor belongs to: its name less ".weight", ".lora_A.weight" or
// ".lora_B.weight".
std::string module_of(const TensorSpec& t) {
    const char* suffix = t.role == TensorRole::lora_a ? ".lora_A.weight" : t.role == TensorRole::lora_b ? ".lora_B.weight" : ".weight";
    const std::string s = suffix;
    if (t.name.size() > s.size() && t.name.compare(t.name.size() - s.size(), s.size(), s) == 0)
        return t.name.substr(0, t.name.size() - s.size());
    return t.name;
}

// call_flops, leaving out the projections of `skipped` and, with `skip_fused_attention`, fused
// attention.
CallFlops count(const ModelSpec& spec, const std::vector<Unit>& units, const ProgramStep& step, const BatchShape& shape,
                const std::vector<std::string>& skipped, bool skip_fused_attention) {
    CallFlops f;
    const Unit& unit = units.at(static_cast<std::size_t>(step.unit));
    // A unit called twice (T5's shared embedding) has no projections, so nothing is counted twice.
    for (const auto& t : unit.tensors) {
        const bool gemm = t.role == TensorRole::linear || t.role == TensorRole::lora_a || t.role == TensorRole::lora_b;
        if (!gemm) continue;
        if (!skipped.empty() && std::find(skipped.begin(), skipped.end(), module_of(t)) != skipped.end()) continue;
        projection(f, shape.tokens(t.stream), t.in_features, t.out_features, t.trainable);
    }
    for (const auto& a : attention_shapes(spec, unit))
        if (!(skip_fused_attention && shape.fused_attention)) attention(f, a, shape);
    if (unit.kind == UnitKind::head && spec.tied_embeddings) {
        const Unit& embed = units.at(static_cast<std::size_t>(step.reads.at(1)));
        projection(f, shape.tokens(Stream::decoder), spec.decoder.hidden, spec.vocab, embed.tensors.front().trainable);
    }
    return f;
}

}  // namespace

CallFlops call_flops(const ModelSpec& spec, const std::vector<Unit>& units, const ProgramStep& step,
                     const BatchShape& shape) {
    return count(spec, units, step, shape, {}, false);
}

ComputeWork forward_work_without(const ModelSpec& spec, const std::vector<Unit>& units, const ProgramStep& step,
                                 const BatchShape& shape, const std::vector<std::string>& skipped, bool skip_fused_attention) {
    return count(spec, units, step, shape, skipped, skip_fused_attention).forward_work;
}

double model_flops(const ModelSpec& spec, const std::vector<Unit>& units, const BatchShape& shape) {
    double f = 0;
    for (const auto& unit : units) {
        for (const auto& t : unit.tensors)
            if (t.role == TensorRole::linear)
                f += 6.0 * static_cast<double>(shape.tokens(t.stream)) * static_cast<double>(t.in_features) *
                     static_cast<double>(t.out_features);
        for (const auto& a : attention_shapes(spec, unit))
            f += 12.0 * static_cast<double>(shape.batch) * static_cast<double>(a.heads) * static_cast<double>(a.head_dim) *
                 static_cast<double>(shape.len(a.q_stream)) * static_cast<double>(shape.len(a.kv_stream));
        if (unit.kind == UnitKind::head && spec.tied_embeddings)
            f += 6.0 * static_cast<double>(shape.tokens(Stream::decoder)) * static_cast<double>(spec.decoder.hidden) *
                 static_cast<double>(spec.vocab);
    }
    return f;
}

}  // namespace shardsim::model
