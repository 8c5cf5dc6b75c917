// Eager attention on the device's GEMMs, the fused-QKV layouts, and the position schemes that
// are computed on the host (ALiBi slopes, T5 buckets).
#include <cmath>

#include "model_parts.hpp"
#include "shardsim/core/error.hpp"

namespace shardsim::nn::detail {

using device::Tensor;
using device::GemmOp;
using device::SoftmaxOp;
using device::SoftmaxGradOp;
using device::Copy2dOp;
using device::MatrixRef;

AttnDims attn_dims(const Ctx& c, const model::AttentionShape& a, float scale) {
    AttnDims d;
    d.batch = c.shape.batch;
    d.sq = c.len(a.q_stream);
    d.sk = c.len(a.kv_stream);
    d.heads = a.heads;
    d.kv_heads = a.kv_heads;
    d.head_dim = a.head_dim;
    d.scale = scale;
    d.causal = a.causal;
    return d;
}

AttnTerms attention_terms(Ctx& c, Terms& terms, const std::string& p, const AttnDims& d) {
    AttnTerms t;
    t.q = terms.add(c, p + ".q", c.dt, {d.batch * d.sq, d.heads * d.head_dim});
    t.k = terms.add(c, p + ".k", c.dt, {d.batch * d.sk, d.kv_heads * d.head_dim});
    t.v = terms.add(c, p + ".v", c.dt, {d.batch * d.sk, d.kv_heads * d.head_dim});
    t.probs = terms.add(c, p + ".probs", c.dt, {d.batch, d.heads, d.sq, d.sk});
    return t;
}

AttnTerms attention_get(const Terms& terms, const std::string& p) {
    AttnTerms t{terms.get(p + ".q"), terms.get(p + ".k"), terms.get(p + ".v"), terms.get(p + ".probs")};
    SHARDSIM_ASSERT(!t.q.empty() && !t.k.empty() && !t.v.empty() && !t.probs.empty(), "attention terms not kept: " + p);
    return t;
}

namespace {

// The GEMM for every sequence of the batch and every query head: query head h = j * g + r reads
// key/value head j, so fixing r and batching over j gives uniform strides.
template <class Fn>
void per_head(Ctx& c, const AttnDims& d, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, bool accumulate_over_r,
              Fn operands) {
    const std::int64_t g = d.heads / d.kv_heads;
    for (std::int64_t b = 0; b < d.batch; ++b)
        for (std::int64_t r = 0; r < g; ++r) {
            GemmOp op;
            operands(b, r, op);
            op.m = m;
            op.n = n;
            op.k = k;
            op.batch = d.kv_heads;
            op.alpha = alpha;
            op.beta = accumulate_over_r && r > 0 ? 1.0f : 0.0f;
            c.dev.gemm(op);
        }
}

MatrixRef ref(const Tensor& t, std::int64_t offset, std::int64_t ld, std::int64_t stride, bool trans = false) {
    return MatrixRef{at(t, offset), t.dtype, ld, stride, trans};
}

}  // namespace

void attention_forward(Ctx& c, const AttnDims& d, const AttnTerms& t, const Tensor& bias, const Tensor& alibi,
                       const Tensor& out) {
    const std::int64_t H = d.heads, KV = d.kv_heads, g = H / KV, hd = d.head_dim, sq = d.sq, sk = d.sk;
    SHARDSIM_ASSERT(H % KV == 0, "heads must be a multiple of kv_heads");
    Scratch s(c);
    const Tensor scores = s.make(DType::fp32, {d.batch, H, sq, sk}, "attention scores");
    // scores(b, h) = q(b, h) k(b, j)^T
    per_head(c, d, sq, sk, hd, 1.0f, false, [&](std::int64_t b, std::int64_t r, GemmOp& op) {
        op.a = ref(t.q, b * sq * H * hd + r * hd, H * hd, g * hd);
        op.b = ref(t.k, b * sk * KV * hd, KV * hd, hd, true);
        op.c = ref(scores, (b * H + r) * sq * sk, sk, g * sq * sk);
    });
    SoftmaxOp sm;
    sm.scores = scores;
    sm.probs = Tensor{t.probs.data, t.probs.dtype, {d.batch, H, sq, sk}};
    sm.scale = d.scale;
    sm.causal = d.causal;
    sm.bias = bias;
    sm.alibi = alibi;
    c.dev.softmax_forward(sm);
    s.release(scores);
    // out(b, h) = probs(b, h) v(b, j)
    per_head(c, d, sq, hd, sk, 1.0f, false, [&](std::int64_t b, std::int64_t r, GemmOp& op) {
        op.a = ref(t.probs, (b * H + r) * sq * sk, sk, g * sq * sk);
        op.b = ref(t.v, b * sk * KV * hd, KV * hd, hd);
        op.c = ref(out, b * sq * H * hd + r * hd, H * hd, g * hd);
    });
}

void attention_backward(Ctx& c, const AttnDims& d, const AttnTerms& t, const Tensor& dout, const Tensor& dq,
                        const Tensor& dk, const Tensor& dv, const Tensor& dbias) {
    const std::int64_t H = d.heads, KV = d.kv_heads, g = H / KV, hd = d.head_dim, sq = d.sq, sk = d.sk;
    Scratch s(c);
    const Tensor dp = s.make(c.dt, {d.batch, H, sq, sk}, "attention probability gradient");
    // dprobs(b, h) = dout(b, h) v(b, j)^T
    per_head(c, d, sq, sk, hd, 1.0f, false, [&](std::int64_t b, std::int64_t r, GemmOp& op) {
        op.a = ref(dout, b * sq * H * hd + r * hd, H * hd, g * hd);
        op.b = ref(t.v, b * sk * KV * hd, KV * hd, hd, true);
        op.c = ref(dp, (b * H + r) * sq * sk, sk, g * sq * sk);
    });
    // dv(b, j) = sum over the group's heads of probs(b, h)^T dout(b, h)
    per_head(c, d, sk, hd, sq, 1.0f, true, [&](std::int64_t b, std::int64_t r, GemmOp& op) {
        op.a = ref(t.probs, (b * H + r) * sq * sk, sk, g * sq * sk, true);
        op.b = ref(dout, b * sq * H * hd + r * hd, H * hd, g * hd);
        op.c = ref(dv, b * sk * KV * hd, KV * hd, hd);
    });
    SoftmaxGradOp sg;
    sg.probs = Tensor{t.probs.data, t.probs.dtype, {d.batch, H, sq, sk}};
    sg.dprobs = dp;
    sg.dscores = dp;  // in place: dp now holds d(scale * scores + bias)
    sg.dbias = dbias;
    c.dev.softmax_backward(sg);
    // dq(b, h) = scale * dscores(b, h) k(b, j)
    per_head(c, d, sq, hd, sk, d.scale, false, [&](std::int64_t b, std::int64_t r, GemmOp& op) {
        op.a = ref(dp, (b * H + r) * sq * sk, sk, g * sq * sk);
        op.b = ref(t.k, b * sk * KV * hd, KV * hd, hd);
        op.c = ref(dq, b * sq * H * hd + r * hd, H * hd, g * hd);
    });
    // dk(b, j) = scale * sum over the group's heads of dscores(b, h)^T q(b, h)
    per_head(c, d, sk, hd, sq, d.scale, true, [&](std::int64_t b, std::int64_t r, GemmOp& op) {
        op.a = ref(dp, (b * H + r) * sq * sk, sk, g * sq * sk, true);
        op.b = ref(t.q, b * sq * H * hd + r * hd, H * hd, g * hd);
        op.c = ref(dk, b * sk * KV * hd, KV * hd, hd);
    });
}

namespace {

void fused_copy(Ctx& c, const FusedLayout& f, const Tensor& fused, const Tensor& part, int slot, bool split) {
    const std::int64_t width = part.shape.back(), tokens = part.numel() / width, local = width / f.chunks;
    SHARDSIM_ASSERT(local * f.chunks == width, "fused layout: width not divisible by its chunks");
    Copy2dOp op;
    op.batch = f.chunks;
    op.rows = tokens;
    op.cols = local;
    const void* fused_at = at(fused, slot * local);
    if (split) {
        op.src = fused_at;
        op.src_dtype = fused.dtype;
        op.src_ld = 3 * width;
        op.src_batch_stride = 3 * local;
        op.dst = part.data;
        op.dst_dtype = part.dtype;
        op.dst_ld = width;
        op.dst_batch_stride = local;
    } else {
        op.src = part.data;
        op.src_dtype = part.dtype;
        op.src_ld = width;
        op.src_batch_stride = local;
        op.dst = const_cast<void*>(fused_at);
        op.dst_dtype = fused.dtype;
        op.dst_ld = 3 * width;
        op.dst_batch_stride = 3 * local;
    }
    c.dev.copy2d(op);
}

}  // namespace

void split_fused(Ctx& c, const FusedLayout& f, const Tensor& fused, const Tensor& q, const Tensor& k, const Tensor& v) {
    fused_copy(c, f, fused, q, f.slot[0], true);
    fused_copy(c, f, fused, k, f.slot[1], true);
    fused_copy(c, f, fused, v, f.slot[2], true);
}

void merge_fused(Ctx& c, const FusedLayout& f, const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dfused) {
    fused_copy(c, f, dfused, dq, f.slot[0], false);
    fused_copy(c, f, dfused, dk, f.slot[1], false);
    fused_copy(c, f, dfused, dv, f.slot[2], false);
}

std::vector<float> alibi_slopes(std::int64_t heads) {
    std::int64_t p2 = 1;
    while (p2 * 2 <= heads) p2 *= 2;
    const double base = std::pow(2.0, -std::pow(2.0, -(std::log2(static_cast<double>(p2)) - 3.0)));
    std::vector<float> s;
    for (std::int64_t i = 1; i <= p2; ++i) s.push_back(static_cast<float>(std::pow(base, static_cast<double>(i))));
    if (p2 != heads) {
        const double extra = std::pow(2.0, -std::pow(2.0, -(std::log2(static_cast<double>(2 * p2)) - 3.0)));
        const std::int64_t remaining = std::min(p2, heads - p2);
        for (std::int64_t i = 0; i < remaining; ++i)
            s.push_back(static_cast<float>(std::pow(extra, static_cast<double>(2 * i + 1))));
    }
    return s;
}

std::vector<std::int32_t> t5_buckets(std::int64_t sq, std::int64_t sk, bool bidirectional, std::int64_t buckets) {
    constexpr std::int64_t kMaxDistance = 128;
    std::vector<std::int32_t> out;
    out.reserve(static_cast<std::size_t>(sq * sk));
    const std::int64_t nb = bidirectional ? buckets / 2 : buckets;
    const std::int64_t max_exact = nb / 2;
    for (std::int64_t i = 0; i < sq; ++i)
        for (std::int64_t j = 0; j < sk; ++j) {
            const std::int64_t rel = j - i;  // memory position - query position
            std::int64_t bucket = 0, n = 0;
            if (bidirectional) {
                if (rel > 0) bucket += nb;
                n = rel < 0 ? -rel : rel;
            } else {
                n = rel < 0 ? -rel : 0;
            }
            if (n < max_exact) {
                bucket += n;
            } else {
                // As HF: float32 log ratio, truncated toward zero.
                const float f = std::log(static_cast<float>(n) / static_cast<float>(max_exact)) /
                                static_cast<float>(std::log(static_cast<double>(kMaxDistance) / static_cast<double>(max_exact))) *
                                static_cast<float>(nb - max_exact);
                bucket += std::min<std::int64_t>(max_exact + static_cast<std::int64_t>(f), nb - 1);
            }
            out.push_back(static_cast<std::int32_t>(bucket));
        }
    return out;
}

}  // namespace shardsim::nn::detail
