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
    t.prefix = p;
    const DType qk = d.qk_fp32 && !c.rules.fused_attention ? DType::fp32 : c.dt;
    t.q = terms.add(c, p + ".q", qk, {d.batch * d.sq, d.heads * d.head_dim});
    t.k = terms.add(c, p + ".k", qk, {d.batch * d.sk, d.kv_heads * d.head_dim});
    t.v = terms.add(c, p + ".v", c.dt, {d.batch * d.sk, d.kv_heads * d.head_dim});
    t.key = dropout_key(c, p + ".probs");
    if (c.rules.fused_attention) {
        t.out = terms.add(c, p + ".out", c.dt, {d.batch * d.sq, d.heads * d.head_dim});
        t.lse = terms.add(c, p + ".lse", DType::fp32, {d.batch * d.heads * d.sq});
        return t;
    }
    const std::vector<std::int64_t> shape = {d.batch, d.heads, d.sq, d.sk};
    if (c.rules.separate_softmax()) t.softmax = terms.add(c, p + ".softmax", c.rules.softmax, shape);
    t.probs = terms.add(c, p + ".probs", c.dt, shape);
    if (c.rules.attention_dropout > 0) t.mask = terms.add_mask(c, p + ".probs.mask", d.batch * d.heads * d.sq * d.sk);
    return t;
}

AttnTerms attention_get(const Ctx& c, const Terms& terms, const std::string& p) {
    AttnTerms t{p,
                terms.get(p + ".q"),
                terms.get(p + ".k"),
                terms.get(p + ".v"),
                terms.get(p + ".softmax"),
                terms.get(p + ".probs"),
                terms.get(p + ".out"),
                terms.get(p + ".lse"),
                terms.mask(p + ".probs.mask"),
                dropout_key(c, p + ".probs")};
    SHARDSIM_ASSERT(!t.q.empty() && !t.k.empty() && !t.v.empty(), "attention terms not kept: " + p);
    if (c.rules.fused_attention)
        SHARDSIM_ASSERT(!t.out.empty() && !t.lse.empty(), "attention output or log-sum-exp not kept: " + p);
    else
        SHARDSIM_ASSERT(!t.probs.empty() && (t.mask || c.rules.attention_dropout <= 0) &&
                            (!t.softmax.empty() || !c.rules.separate_softmax()),
                        "attention probabilities not kept: " + p);
    return t;
}

Tensor attention_context(Ctx& c, Terms& terms, Scratch& s, const AttnTerms& t, bool keep) {
    if (!t.out.empty()) return t.out;
    return keep_or_temp(c, terms, s, keep, t.prefix + ".context", t.q.shape);
}

Tensor attention_context_get(const Terms& terms, const std::string& p) {
    const Tensor out = terms.get(p + ".out");
    return out.empty() ? terms.get(p + ".context") : out;
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

// Attention dropout on rows of the [batch * heads * sq, sk] probability matrix: `rows` rows from
// logical row row0, `cols` keys each (a whole matrix, or one sdpa / flash block).
struct ScoreRows {
    std::int64_t row0 = 0, rows = 0, cols = 0;
};

device::DropoutOp probs_dropout(const Ctx& c, const AttnDims& d, const AttnTerms& t, const ScoreRows& r) {
    device::DropoutOp op;
    op.p = static_cast<float>(c.rules.attention_dropout);
    op.key = t.key;
    op.rows = r.rows;
    op.cols = r.cols;
    op.row0 = r.row0;
    op.rows_per_sample = d.heads * d.sq;
    op.width = d.sk;
    op.first_sample = c.batch.first;
    return op;
}

void eager_forward(Ctx& c, const AttnDims& d, const AttnTerms& t, const Tensor& bias, const Tensor& alibi, const Tensor& out) {
    const std::int64_t H = d.heads, KV = d.kv_heads, g = H / KV, hd = d.head_dim, sq = d.sq, sk = d.sk;
    Scratch s(c);
    const Tensor scores = s.make(DType::fp32, {d.batch, H, sq, sk}, "attention scores");
    // scores(b, h) = q(b, h) k(b, j)^T
    per_head(c, d, sq, sk, hd, 1.0f, false, [&](std::int64_t b, std::int64_t r, GemmOp& op) {
        op.a = ref(t.q, b * sq * H * hd + r * hd, H * hd, g * hd);
        op.b = ref(t.k, b * sk * KV * hd, KV * hd, hd, true);
        op.c = ref(scores, (b * H + r) * sq * sk, sk, g * sq * sk);
    });
    const Tensor probs{t.probs.data, t.probs.dtype, {d.batch, H, sq, sk}};
    const Tensor softmax = t.softmax.empty() ? probs : Tensor{t.softmax.data, t.softmax.dtype, probs.shape};
    SoftmaxOp sm;
    sm.scores = scores;
    sm.probs = softmax;
    sm.scale = d.scale;
    sm.causal = d.causal;
    sm.bias = bias;
    sm.alibi = alibi;
    c.dev.softmax_forward(sm);
    s.release(scores);
    if (c.rules.attention_dropout > 0) {
        device::DropoutOp op = probs_dropout(c, d, t, ScoreRows{0, d.batch * H * sq, sk});
        op.x = softmax;
        op.out = probs;
        op.mask_out = t.mask;
        c.dev.dropout(op);
    } else if (softmax.data != probs.data) {
        c.dev.convert(softmax, probs);  // .to(query.dtype)
    }
    // out(b, h) = probs(b, h) v(b, j)
    per_head(c, d, sq, hd, sk, 1.0f, false, [&](std::int64_t b, std::int64_t r, GemmOp& op) {
        op.a = ref(t.probs, (b * H + r) * sq * sk, sk, g * sq * sk);
        op.b = ref(t.v, b * sk * KV * hd, KV * hd, hd);
        op.c = ref(out, b * sq * H * hd + r * hd, H * hd, g * hd);
    });
}

void eager_backward(Ctx& c, const AttnDims& d, const AttnTerms& t, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                    const Tensor& dv, const Tensor& dbias) {
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
    if (c.rules.attention_dropout > 0) {  // d(softmax output), in place, through the kept mask
        device::DropoutOp op = probs_dropout(c, d, t, ScoreRows{0, d.batch * H * sq, sk});
        op.x = dp;
        op.out = dp;
        op.mask_in = t.mask;
        c.dev.dropout(op);
    }
    SoftmaxGradOp sg;
    sg.probs = t.softmax.empty() ? Tensor{t.probs.data, t.probs.dtype, dp.shape} : Tensor{t.softmax.data, t.softmax.dtype, dp.shape};
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

// One block of an sdpa / flash attention: query rows [i0, i0 + rows) of sequence b and query head
// h, against the first n keys of key/value head j (all keys, or, causal, those row i0 sees: the
// blocks are single rows then).
struct FusedBlock {
    std::int64_t b = 0, h = 0, j = 0, i0 = 0, rows = 0, n = 0;
};

template <class Fn>
void for_each_block(const AttnDims& d, Fn fn) {
    SHARDSIM_ASSERT(!d.causal || d.sq == d.sk, "sdpa / flash: causal attention over keys of another length");
    const std::int64_t g = d.heads / d.kv_heads;
    for (std::int64_t b = 0; b < d.batch; ++b)
        for (std::int64_t h = 0; h < d.heads; ++h) {
            if (!d.causal) {
                fn(FusedBlock{b, h, h / g, 0, d.sq, d.sk});
                continue;
            }
            for (std::int64_t i = 0; i < d.sq; ++i) fn(FusedBlock{b, h, h / g, i, 1, i + 1});
        }
}

// sdpa / flash, block by block: one sequence's query rows for one head against the keys they see.
// Its scratch holds one block's scores (fp32), probabilities and their gradient.
class FusedAttention {
public:
    // GEMMs below are GemmOp{a, b, c, m, n, k, batch, alpha, beta}.
    FusedAttention(Ctx& c, const AttnDims& d, const AttnTerms& t) : c_(c), d_(d), t_(t), s_(c) {
        const std::int64_t most = d.causal ? d.sk : d.sq * d.sk;
        scores_ = s_.make(DType::fp32, {most}, "attention block scores");
        probs_ = s_.make(c.dt, {most}, "attention block probabilities");
    }

    void forward(const Tensor& out) {
        for_each_block(d_, [&](const FusedBlock& k) {
            probs(k, false);
            if (dropout()) drop(k, probs_, probs_);
            gemm({mat(probs_, k.n), kv_rows(t_.v, k), q_rows(out, k), k.rows, d_.head_dim, k.n, 1, 1.0f, 0.0f});
        });
    }

    void backward(const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv) {
        const Tensor dp = s_.make(c_.dt, probs_.shape, "attention block probability gradient");
        const Tensor dropped = dropout() ? s_.make(c_.dt, probs_.shape, "attention block dropped probabilities") : probs_;
        c_.dev.fill_zero(dk.data, dk.bytes());
        c_.dev.fill_zero(dv.data, dv.bytes());
        for_each_block(d_, [&](const FusedBlock& k) {
            probs(k, true);
            if (dropout()) drop(k, probs_, dropped);
            // dv += dropped^T dout; dp = dout v^T, back through the same dropout
            gemm({mat(dropped, k.n, true), q_rows(dout, k), kv_rows(dv, k), k.n, d_.head_dim, k.rows, 1, 1.0f, 1.0f});
            gemm({q_rows(dout, k), kv_rows(t_.v, k, true), mat(dp, k.n), k.rows, k.n, d_.head_dim, 1, 1.0f, 0.0f});
            if (dropout()) drop(k, dp, dp);
            SoftmaxGradOp sg;
            sg.probs = Tensor{probs_.data, c_.dt, {1, 1, k.rows, k.n}};
            sg.dprobs = Tensor{dp.data, c_.dt, {1, 1, k.rows, k.n}};
            sg.dscores = sg.dprobs;
            c_.dev.softmax_backward(sg);
            // dq = scale dscores k; dk += scale dscores^T q
            gemm({mat(dp, k.n), kv_rows(t_.k, k), q_rows(dq, k), k.rows, d_.head_dim, k.n, 1, d_.scale, 0.0f});
            gemm({mat(dp, k.n, true), q_rows(t_.q, k), kv_rows(dk, k), k.n, d_.head_dim, k.rows, 1, d_.scale, 1.0f});
        });
    }

private:
    bool dropout() const { return c_.rules.attention_dropout > 0; }
    void gemm(const GemmOp& op) { c_.dev.gemm(op); }
    static MatrixRef mat(const Tensor& t, std::int64_t ld, bool trans = false) { return MatrixRef{t.data, t.dtype, ld, 0, trans}; }
    // The block's rows inside q / out / dq / dout ([tokens, heads * hd]) and k / v / dk / dv
    // ([tokens, kv_heads * hd]).
    MatrixRef q_rows(const Tensor& x, const FusedBlock& k, bool trans = false) const {
        return ref(x, (k.b * d_.sq + k.i0) * d_.heads * d_.head_dim + k.h * d_.head_dim, d_.heads * d_.head_dim, 0, trans);
    }
    MatrixRef kv_rows(const Tensor& x, const FusedBlock& k, bool trans = false) const {
        return ref(x, k.b * d_.sk * d_.kv_heads * d_.head_dim + k.j * d_.head_dim, d_.kv_heads * d_.head_dim, 0, trans);
    }

    // The block's probabilities from q and k: the scores in fp32, then the softmax, writing the
    // log-sum-exp (forward) or rebuilding the probabilities from it (backward).
    void probs(const FusedBlock& k, bool use_lse) {
        gemm({q_rows(t_.q, k), kv_rows(t_.k, k, true), mat(scores_, k.n), k.rows, k.n, d_.head_dim, 1, 1.0f, 0.0f});
        SoftmaxOp sm;
        sm.scores = Tensor{scores_.data, DType::fp32, {1, 1, k.rows, k.n}};
        sm.probs = Tensor{probs_.data, probs_.dtype, {1, 1, k.rows, k.n}};
        sm.scale = d_.scale;
        sm.lse = Tensor{at(t_.lse, (k.b * d_.heads + k.h) * d_.sq + k.i0), DType::fp32, {k.rows}};
        sm.use_lse = use_lse;
        c_.dev.softmax_forward(sm);
    }

    // The dropout of the block's probabilities (or of their gradient), drawn again each time.
    void drop(const FusedBlock& k, const Tensor& x, const Tensor& out) {
        device::DropoutOp op = probs_dropout(c_, d_, t_, ScoreRows{(k.b * d_.heads + k.h) * d_.sq + k.i0, k.rows, k.n});
        op.x = Tensor{x.data, x.dtype, {k.rows * k.n}};
        op.out = Tensor{out.data, out.dtype, {k.rows * k.n}};
        c_.dev.dropout(op);
    }

    Ctx& c_;
    const AttnDims& d_;
    const AttnTerms& t_;
    Scratch s_;
    Tensor scores_, probs_;
};

}  // namespace

void attention_forward(Ctx& c, const AttnDims& d, const AttnTerms& t, const Tensor& bias, const Tensor& alibi,
                       const Tensor& out) {
    SHARDSIM_ASSERT(d.heads % d.kv_heads == 0, "heads must be a multiple of kv_heads");
    if (!c.rules.fused_attention) return eager_forward(c, d, t, bias, alibi, out);
    SHARDSIM_ASSERT(bias.empty() && alibi.empty(), "sdpa / flash with a score bias: no family that has the path uses one");
    SHARDSIM_ASSERT(out.data == t.out.data, "sdpa / flash writes its kept output");
    if (c.recomputing && c.acts && c.acts->attention_kept) return;  // selective checkpointing kept out and lse
    FusedAttention(c, d, t).forward(out);
}

void attention_backward(Ctx& c, const AttnDims& d, const AttnTerms& t, const Tensor& dout, const Tensor& dq,
                        const Tensor& dk, const Tensor& dv, const Tensor& dbias) {
    if (!c.rules.fused_attention) return eager_backward(c, d, t, dout, dq, dk, dv, dbias);
    SHARDSIM_ASSERT(dbias.empty(), "sdpa / flash with a score bias");
    FusedAttention(c, d, t).backward(dout, dq, dk, dv);
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
