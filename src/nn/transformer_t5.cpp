// T5 blocks (HF T5Block): pre-norm residual layers with T5LayerNorm (RMS, no mean, no bias):
//   layer 0  self-attention with the stack's relative position bias (made by block 0 from its
//            bucket table: bidirectional in the encoder, causal in the decoder), no 1/sqrt(d);
//   layer 1  cross-attention on the encoder output (decoder blocks that have it), no bias;
//   last     the FFN: wo(gelu_new(wi_0 x) * wi_1 x) (v1.1, gated-GELU) or wo(relu(wi x)).
// The last encoder block also applies encoder.final_layer_norm: its output is the encoder output.
// Dropout (dropout_rate) as HF applies it: on the attention probabilities, on every sublayer's
// output before the residual add, on the FFN's inner activation before wo, and on the encoder's
// final-norm output (T5Stack.dropout).
#include "model_parts.hpp"
#include "shardsim/core/error.hpp"

namespace shardsim::nn::detail {

using device::Tensor;
using device::Buffer;
using device::Activation;
using device::EmbeddingOp;
using device::Copy2dOp;
using device::CallTensors;

namespace {

class T5Block final : public CallModule {
public:
    T5Block(const Ctx& c, const model::Unit& u) : ix_(u), st_(u.stream), layer_(u.layer), cross_(u.cross_attention) {
        const auto& stack = model::stack_of(c.spec, u);
        const auto shapes = model::attention_shapes(c.spec, u);
        sa_ = shapes.at(0);
        if (cross_) ca_ = shapes.at(1);
        d_ = stack.hidden;
        f_ = stack.ffn;
        gated_ = c.spec.ffn_kind == model::FfnKind::gated_gelu;
        last_encoder_ = st_ == model::Stream::encoder && u.layer == stack.layers - 1;
        const std::string p = (st_ == model::Stream::encoder ? "encoder" : "decoder") + std::string(".block.") +
                              std::to_string(u.layer) + ".layer.";
        const float eps = norm_eps(c.spec.arch);
        const auto rms = model::NormKind::rmsnorm;
        n_sa_ = norm_ref(ix_, p + "0.layer_norm", rms, eps);
        for (const char* m : {"q", "k", "v", "o"}) sa_lin_.push_back(linear_ref(ix_, p + "0.SelfAttention." + m));
        bias_table_ = ix_.find(p + "0.SelfAttention.relative_attention_bias.weight");
        buckets_ = c.spec.relative_buckets;
        int ffn = 1;
        if (cross_) {
            n_ca_ = norm_ref(ix_, p + "1.layer_norm", rms, eps);
            for (const char* m : {"q", "k", "v", "o"}) ca_lin_.push_back(linear_ref(ix_, p + "1.EncDecAttention." + m));
            ffn = 2;
        }
        ffn_name_ = "layer" + std::to_string(ffn);
        const std::string fp = p + std::to_string(ffn) + ".";
        n_ffn_ = norm_ref(ix_, fp + "layer_norm", rms, eps);
        if (gated_) {
            wi0_ = linear_ref(ix_, fp + "DenseReluDense.wi_0");
            wi1_ = linear_ref(ix_, fp + "DenseReluDense.wi_1");
        } else {
            wi0_ = linear_ref(ix_, fp + "DenseReluDense.wi");
        }
        wo_ = linear_ref(ix_, fp + "DenseReluDense.wo");
        if (last_encoder_) {
            n_final_ = norm_ref(ix_, "encoder.final_layer_norm", rms, eps);
            keep_output_ = encoder_output_kept(c.plan);
        }
    }

    bool is_block() const override { return true; }

    void forward(Ctx& c, const CallTensors& p, bool recompute) override {
        const std::int64_t T = c.tokens(st_);
        Scratch s(c);
        const Tensor x = block_input(c, terms, st_, "layer0", d_, recompute);
        if (layer_ == 0) make_position_bias(c, p);
        const std::string after_sa = (cross_ ? "layer1" : ffn_name_) + ".input";
        const Tensor r1 = terms.add(c, after_sa, c.dt, {T, d_});
        recompute_ = recompute;
        attention_layer(c, p, s, "sa", "layer0", n_sa_, sa_lin_, sa_, c.position_bias[stream_index(st_)], r1);
        add_dropped(c, terms, {"sa.out", st_}, {r1, x, r1});
        Tensor r = r1;
        if (cross_) {
            r = terms.add(c, ffn_name_ + ".input", c.dt, {T, d_});
            attention_layer(c, p, s, "ca", "layer1", n_ca_, ca_lin_, ca_, Tensor{}, r);
            add_dropped(c, terms, {"ca.out", st_}, {r, r1, r});
        }
        const Tensor h = keep_or_temp(c, terms, s, wi0_.keeps_input || wi1_.keeps_input, "ffn.input", {T, d_});
        norm_forward(c, terms, ffn_name_, n_ffn_, p, h);
        const Tensor act = terms.add(c, "ffn.act", c.dt, {T, f_});
        Tensor mid = act;
        if (gated_) {
            const Tensor gate = terms.add(c, "ffn.gate", c.dt, {T, f_});
            const Tensor up = terms.add(c, "ffn.up", c.dt, {T, f_});
            linear_forward(c, terms, bind(c, wi0_, p, nullptr), h, gate);
            linear_forward(c, terms, bind(c, wi1_, p, nullptr), h, up);
            c.dev.activation_forward(Activation::gelu_tanh, gate, act);
            mid = keep_or_temp(c, terms, s, wo_.keeps_input, "ffn.prod", {T, f_});
            c.dev.mul(act, up, mid, false);
            drop_forward(c, terms, {"ffn.prod", st_}, mid, mid);
        } else {
            linear_forward(c, terms, bind(c, wi0_, p, nullptr), h, act);
            c.dev.activation_forward(Activation::relu, act, act);  // kept as ReLU's output
            if (c.rules.hidden_dropout > 0) {  // wo reads the dropped copy; ReLU's backward its output
                mid = keep_or_temp(c, terms, s, wo_.keeps_input, "ffn.dropped", {T, f_});
                drop_forward(c, terms, {"ffn.act", st_}, act, mid);
            }
        }
        s.release(h);
        if (!last_encoder_) {
            BlockOutput out = block_output(c, st_, d_, recompute);
            linear_forward(c, terms, bind(c, wo_, p, nullptr), mid, out.t);
            add_dropped(c, terms, {"ffn.out", st_}, {out.t, r, out.t});
            publish(c, st_, std::move(out), recompute);
            return;
        }
        const Tensor y = terms.add(c, "final_layer_norm.input", c.dt, {T, d_});
        linear_forward(c, terms, bind(c, wo_, p, nullptr), mid, y);
        add_dropped(c, terms, {"ffn.out", st_}, {y, r, y});
        s.release(mid);
        encoder_output(c, p, s, recompute);
    }

    void backward(Ctx& c, const CallTensors& p, const CallTensors& g) override {
        const std::int64_t T = c.tokens(st_);
        Scratch s(c);
        if (last_encoder_) encoder_output_backward(c, p, g);
        const Tensor dy = take_grad(c, st_);
        const Tensor dh = s.make(c.dt, {T, d_}, "norm output gradient");
        // FFN
        const Tensor dmid = s.make(c.dt, {T, f_}, "FFN gradient");
        const Tensor dffn = branch_grad(c, terms, s, {"ffn.out", st_}, dy);
        const bool dropped = c.rules.hidden_dropout > 0;
        linear_backward(c, terms, bind(c, wo_, p, &g), terms.get(gated_ ? "ffn.prod" : dropped ? "ffn.dropped" : "ffn.act"), dffn, dmid,
                        false);
        s.release(dffn);
        drop_backward(c, terms, {gated_ ? "ffn.prod" : "ffn.act", st_}, dmid, dmid);
        const Tensor h = terms.get("ffn.input");
        if (gated_) {
            const Tensor dup = s.make(c.dt, {T, f_}, "up gradient");
            c.dev.mul(dmid, terms.get("ffn.act"), dup, false);
            c.dev.mul(dmid, terms.get("ffn.up"), dmid, false);  // d(act), in place
            c.dev.activation_backward(Activation::gelu_tanh, terms.get("ffn.gate"), dmid, dmid, false);
            linear_backward(c, terms, bind(c, wi0_, p, &g), h, dmid, dh, false);
            linear_backward(c, terms, bind(c, wi1_, p, &g), h, dup, dh, true);
        } else {
            c.dev.activation_backward(Activation::relu, terms.get("ffn.act"), dmid, dmid, false);
            linear_backward(c, terms, bind(c, wi0_, p, &g), h, dmid, dh, false);
        }
        s.release(dmid);
        norm_backward(c, terms, ffn_name_, n_ffn_, p, g, dh, dy, true);
        if (cross_) {
            Tensor dbias;
            attention_layer_backward(c, p, g, s, "ca", "layer1", n_ca_, ca_lin_, ca_, dbias, dy, dh);
        }
        const bool bias_trainable = !grad_of(&g, 0, bias_table_, {buckets_, sa_.heads}).empty();
        Buffer& dpb = c.dposition_bias[stream_index(st_)];
        const std::int64_t L = c.len(st_);
        if (bias_trainable_in_stack(c) && !dpb) {
            dpb = c.buffer(sa_.heads * L * L * 4, MemCategory::temporaries, "position bias gradient");
            c.dev.fill_zero(dpb.data(), dpb.bytes());
        }
        const Tensor dbias = dpb ? Tensor{dpb.data(), DType::fp32, {sa_.heads, L, L}} : Tensor{};
        attention_layer_backward(c, p, g, s, "sa", "layer0", n_sa_, sa_lin_, sa_, dbias, dy, dh);
        if (layer_ == 0) {
            if (bias_trainable) scatter_bias_grad(c, g, dbias);
            dpb.reset();
        }
    }

private:
    // encoder.final_layer_norm, then T5Stack's dropout: the encoder output (kept as a term, or in
    // flight until the last cross-attention).
    void encoder_output(Ctx& c, const CallTensors& p, Scratch& s, bool recompute) {
        const std::int64_t T = c.tokens(st_);
        Tensor enc = keep_output_ ? terms.add(c, "encoder.output", c.dt, {T, d_}, true) : Tensor{};
        if (!keep_output_) {
            Buffer& b = recompute ? scratch_out_ : c.encoder_in_flight;
            b = c.buffer(T * d_ * dtype_size(c.dt), MemCategory::activations, "encoder output");
            enc = Tensor{b.data(), c.dt, {T, d_}};
        }
        const Tensor normed = c.rules.hidden_dropout > 0 ? s.make(c.dt, {T, d_}, "final norm output") : enc;
        norm_forward(c, terms, "final_layer_norm", n_final_, p, normed);
        drop_forward(c, terms, {"encoder.output", st_}, normed, enc);
        if (normed.data != enc.data) s.release(normed);
        scratch_out_.reset();
        if (!recompute) c.encoder_out = enc;
    }

    // The encoder output's gradient comes from the cross-attentions; it becomes the stream's.
    void encoder_output_backward(Ctx& c, const CallTensors& p, const CallTensors& g) {
        const std::int64_t T = c.tokens(st_);
        SHARDSIM_ASSERT(static_cast<bool>(c.dencoder_out), "encoder backward before any cross-attention backward");
        const Tensor denc{c.dencoder_out.data(), c.dt, {T, d_}};
        drop_backward(c, terms, {"encoder.output", st_}, denc, denc);
        Buffer gb = c.buffer(T * d_ * dtype_size(c.dt), MemCategory::temporaries, "hidden-state gradient");
        norm_backward(c, terms, "final_layer_norm", n_final_, p, g, denc, Tensor{gb.data(), c.dt, {T, d_}}, false);
        c.dencoder_out.reset();
        c.grad[stream_index(st_)] = std::move(gb);
    }

    bool bias_trainable_in_stack(const Ctx& c) const {
        for (const auto& u : c.plan.units())
            if (u.stream == st_ && u.layer == 0 && u.kind != model::UnitKind::embedding && u.kind != model::UnitKind::head)
                for (const auto& t : u.tensors)
                    if (t.role == model::TensorRole::relative_bias) return t.trainable;
        return false;
    }

    std::vector<std::int32_t> buckets(const Ctx& c) const {
        const std::int64_t L = c.len(st_);
        return t5_buckets(L, L, st_ == model::Stream::encoder, buckets_);
    }

    // bias[h, i, j] = table[bucket(i, j), h], kept for the whole stack.
    void make_position_bias(Ctx& c, const CallTensors& p) {
        const std::int64_t L = c.len(st_), H = sa_.heads;
        const Tensor bias = terms.add(c, "position_bias", c.dt, {H, L, L}, true);
        Scratch s(c);
        const Buffer ids = c.upload_ids(buckets(c), MemCategory::temporaries, "relative position buckets");
        const Tensor rows = s.make(c.dt, {L * L, H}, "position bias rows");
        EmbeddingOp op;
        op.table = param_of(p, 0, bias_table_, {buckets_, H});
        op.out = rows;
        op.ids = ids.as<std::int32_t>();
        c.dev.embedding_forward(op);
        transpose(c, rows, bias, L * L, H);
        c.position_bias[stream_index(st_)] = bias;
    }

    void scatter_bias_grad(Ctx& c, const CallTensors& g, const Tensor& dbias) {
        const std::int64_t L = c.len(st_), H = sa_.heads;
        Scratch s(c);
        const Tensor rows = s.make(DType::fp32, {L * L, H}, "position bias gradient rows");
        transpose(c, dbias, rows, H, L * L);
        const Buffer ids = c.upload_ids(buckets(c), MemCategory::temporaries, "relative position buckets");
        EmbeddingOp op;
        op.table = grad_of(&g, 0, bias_table_, {buckets_, H});
        op.out = rows;
        op.ids = ids.as<std::int32_t>();
        c.dev.embedding_backward(op);
    }

    // dst [cols, rows] = src [rows, cols]^T
    static void transpose(Ctx& c, const Tensor& src, const Tensor& dst, std::int64_t rows, std::int64_t cols) {
        Copy2dOp op;
        op.src = src.data;
        op.src_dtype = src.dtype;
        op.dst = dst.data;
        op.dst_dtype = dst.dtype;
        op.batch = cols;
        op.rows = rows;
        op.cols = 1;
        op.src_ld = cols;
        op.src_batch_stride = 1;
        op.dst_ld = 1;
        op.dst_batch_stride = rows;
        c.dev.copy2d(op);
    }

    // out = o(attention(q(LN(x)), k(kv), v(kv))) with kv = LN(x) (self) or the encoder output.
    void attention_layer(Ctx& c, const CallTensors& p, Scratch& s, const std::string& name, const std::string& norm,
                         const NormRef& n, const std::vector<LinearRef>& lin, const model::AttentionShape& a,
                         const Tensor& bias, const Tensor& out) {
        const std::int64_t T = c.tokens(st_);
        const bool self = name == "sa";
        const bool keep = lin[0].keeps_input || (self && (lin[1].keeps_input || lin[2].keeps_input));
        const Tensor h = keep_or_temp(c, terms, s, keep, name + ".input", {T, d_});
        norm_forward(c, terms, norm, n, p, h);
        const AttnDims dims = attn_dims(c, a, 1.0f);
        const AttnTerms at = attention_terms(c, terms, name, dims);
        const Tensor kv = self ? h : c.encoder_out;
        SHARDSIM_ASSERT(!kv.empty(), "cross-attention before the encoder ran");
        linear_forward(c, terms, bind(c, lin[0], p, nullptr), h, at.q);
        linear_forward(c, terms, bind(c, lin[1], p, nullptr), kv, at.k);
        linear_forward(c, terms, bind(c, lin[2], p, nullptr), kv, at.v);
        s.release(h);
        const Tensor ctx = attention_context(c, terms, s, at, lin[3].keeps_input);
        attention_forward(c, dims, at, bias, Tensor{}, ctx);
        linear_forward(c, terms, bind(c, lin[3], p, nullptr), ctx, out);
        s.release(ctx);
        if (!self && !recompute_) cross_attention_done(c);
    }

    // dy += LN-backward of the attention branch; dh is scratch [T, d].
    void attention_layer_backward(Ctx& c, const CallTensors& p, const CallTensors& g, Scratch& s, const std::string& name,
                                  const std::string& norm, const NormRef& n, const std::vector<LinearRef>& lin,
                                  const model::AttentionShape& a, const Tensor& dbias, const Tensor& dy, const Tensor& dh) {
        const bool self = name == "sa";
        const AttnDims dims = attn_dims(c, a, 1.0f);
        const std::int64_t Tq = c.tokens(a.q_stream), Tk = c.tokens(a.kv_stream);
        const std::int64_t qd = a.heads * a.head_dim, kvd = a.kv_heads * a.head_dim;
        const Tensor dctx = s.make(c.dt, {Tq, qd}, "context gradient");
        const Tensor dbranch = branch_grad(c, terms, s, {name + ".out", st_}, dy);
        linear_backward(c, terms, bind(c, lin[3], p, &g), attention_context_get(terms, name), dbranch, dctx, false);
        s.release(dbranch);
        const Tensor dq = s.make(c.dt, {Tq, qd}, "dq"), dk = s.make(c.dt, {Tk, kvd}, "dk"), dv = s.make(c.dt, {Tk, kvd}, "dv");
        attention_backward(c, dims, attention_get(c, terms, name), dctx, dq, dk, dv, dbias);
        s.release(dctx);
        const Tensor h = terms.get(name + ".input");
        linear_backward(c, terms, bind(c, lin[0], p, &g), h, dq, dh, false);
        if (self) {
            linear_backward(c, terms, bind(c, lin[1], p, &g), h, dk, dh, true);
            linear_backward(c, terms, bind(c, lin[2], p, &g), h, dv, dh, true);
        } else {
            if (!c.dencoder_out) {
                c.dencoder_out = c.buffer(Tk * d_ * dtype_size(c.dt), MemCategory::temporaries, "encoder output gradient");
                c.dev.fill_zero(c.dencoder_out.data(), c.dencoder_out.bytes());
            }
            const Tensor denc{c.dencoder_out.data(), c.dt, {Tk, d_}};
            linear_backward(c, terms, bind(c, lin[1], p, &g), c.encoder_out, dk, denc, true);
            linear_backward(c, terms, bind(c, lin[2], p, &g), c.encoder_out, dv, denc, true);
        }
        s.release(dq);
        s.release(dk);
        s.release(dv);
        norm_backward(c, terms, norm, n, p, g, dh, dy, true);
    }

    UnitIndex ix_;
    model::Stream st_;
    std::int64_t layer_ = 0;
    bool cross_ = false, gated_ = false, last_encoder_ = false, keep_output_ = false, recompute_ = false;
    model::AttentionShape sa_, ca_;
    NormRef n_sa_, n_ca_, n_ffn_, n_final_;
    std::vector<LinearRef> sa_lin_, ca_lin_;
    LinearRef wi0_, wi1_, wo_;
    int bias_table_ = -1;
    std::int64_t buckets_ = 0, d_ = 0, f_ = 0;
    std::string ffn_name_;
    Buffer scratch_out_;
};

}  // namespace

std::unique_ptr<CallModule> make_t5_block(const Ctx& c, const model::Unit& u) { return std::make_unique<T5Block>(c, u); }

}  // namespace shardsim::nn::detail
