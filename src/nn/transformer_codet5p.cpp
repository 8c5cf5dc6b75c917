// CodeT5+ blocks: CodeGen's parallel block, x + attn(LN(x)) + mlp(LN(x)), with a bias-free fused
// qkv_proj in CodeGen's layout, partial rotary (rotate_every_two on the first rotary_dim dims of
// each head), a bias-free out_proj and a biased gelu_new MLP. Decoder blocks with cross-attention
// (the top cross_attention_layers) first run x + out_proj(attn(q(LN_cross(x)), k(enc), v(enc))),
// the order plan::call_activations assumes (ln_cross takes the block input). The last encoder
// block ends with encoder.ln_f and enc_to_dec_proj: its output, at the decoder's width, is the
// encoder output. Dropout as CodeGen applies it (resid_dropout after out_proj, mlp.dropout after
// fc_out), the cross-attention's output dropped alike.
#include <cmath>
#include <numeric>

#include "model_parts.hpp"
#include "shardsim/core/error.hpp"

namespace shardsim::nn::detail {

using device::Tensor;
using device::Buffer;
using device::Activation;
using device::RotaryOp;
using device::CallTensors;

namespace {

class CodeT5pBlock final : public CallModule {
public:
    CodeT5pBlock(const Ctx& c, const model::Unit& u) : ix_(u), st_(u.stream), cross_(u.cross_attention) {
        const auto& stack = model::stack_of(c.spec, u);
        const auto shapes = model::attention_shapes(c.spec, u);
        sa_ = shapes.at(0);
        if (cross_) ca_ = shapes.at(1);
        d_ = stack.hidden;
        f_ = stack.ffn;
        rotary_dim_ = stack.rotary_dim;
        const bool enc = st_ == model::Stream::encoder;
        last_encoder_ = enc && u.layer == stack.layers - 1;
        const std::string p = (enc ? "encoder.h." : "decoder.transformer.h.") + std::to_string(u.layer) + ".";
        const float eps = norm_eps(c.spec.arch);
        const auto ln = model::NormKind::layernorm;
        n1_ = norm_ref(ix_, p + "ln_1", ln, eps);
        qkv_ = linear_ref(ix_, p + "attn.qkv_proj");
        out_ = linear_ref(ix_, p + "attn.out_proj");
        fc_in_ = linear_ref(ix_, p + "mlp.fc_in");
        fc_out_ = linear_ref(ix_, p + "mlp.fc_out");
        // CodeGen splits qkv_proj's output into 4 model-parallel groups of [q v k] (HF
        // CodeGenAttention, mp_num = 4); toy models with fewer heads use as many groups as heads.
        fused_.chunks = std::gcd<std::int64_t>(4, sa_.heads);
        fused_.slot[0] = 0;
        fused_.slot[1] = 2;
        fused_.slot[2] = 1;
        if (cross_) {
            n_cross_ = norm_ref(ix_, p + "ln_cross", ln, eps);
            for (const char* m : {"q_proj", "k_proj", "v_proj", "out_proj"}) ca_lin_.push_back(linear_ref(ix_, p + "crossattention." + m));
        }
        if (last_encoder_) {
            n_final_ = norm_ref(ix_, "encoder.ln_f", ln, eps);
            proj_ = linear_ref(ix_, "enc_to_dec_proj");
            keep_output_ = encoder_output_kept(c.plan);
            out_width_ = c.spec.decoder.hidden;
        }
        scale_ = 1.0f / std::sqrt(static_cast<float>(sa_.head_dim));
    }

    bool is_block() const override { return true; }

    void forward(Ctx& c, const CallTensors& p, bool recompute) override {
        const std::int64_t T = c.tokens(st_);
        Scratch s(c);
        const Tensor x = block_input(c, terms, st_, cross_ ? "ln_cross" : "ln_1", d_, recompute);
        Tensor x1 = x;
        if (cross_) {
            x1 = terms.add(c, "ln_1.input", c.dt, {T, d_});
            cross_attention(c, p, s, x1);
            add_dropped(c, terms, {"ca.out", st_}, {x1, x, x1});
            if (!recompute) cross_attention_done(c);
        }
        const Tensor h = keep_or_temp(c, terms, s, qkv_.keeps_input || fc_in_.keeps_input, "attn.input", {T, d_});
        norm_forward(c, terms, "ln_1", n1_, p, h);
        const AttnDims dims = self_dims(c);
        const AttnTerms at = attention_terms(c, terms, "attn", dims);
        const Tensor fused = s.make(c.dt, {T, 3 * d_}, "fused qkv");
        linear_forward(c, terms, bind(c, qkv_, p, nullptr), h, fused);
        split_fused(c, fused_, fused, at.q, at.k, at.v);
        s.release(fused);
        rotate(c, at.q, false);
        rotate(c, at.k, false);
        const Tensor ctx = attention_context(c, terms, s, at, out_.keeps_input);
        attention_forward(c, dims, at, Tensor{}, Tensor{}, ctx);
        BlockOutput out;
        Tensor y;
        if (last_encoder_) {
            y = terms.add(c, "ln_f.input", c.dt, {T, d_});
        } else {
            out = block_output(c, st_, d_, recompute);
            y = out.t;
        }
        linear_forward(c, terms, bind(c, out_, p, nullptr), ctx, y);
        drop_forward(c, terms, {"attn.out", st_}, y, y);
        s.release(ctx);
        mlp(c, p, s, h, y);
        c.dev.axpby(1.0f, y, 1.0f, x1, y);
        if (!last_encoder_) {
            publish(c, st_, std::move(out), recompute);
            return;
        }
        const Tensor hp = keep_or_temp(c, terms, s, proj_.keeps_input, "proj.input", {T, d_});
        norm_forward(c, terms, "ln_f", n_final_, p, hp);
        Tensor enc = keep_output_ ? terms.add(c, "encoder.output", c.dt, {T, out_width_}, true) : Tensor{};
        Buffer transient;
        if (!keep_output_) {
            Buffer& b = recompute ? transient : c.encoder_in_flight;
            b = c.buffer(T * out_width_ * dtype_size(c.dt), MemCategory::activations, "encoder output");
            enc = Tensor{b.data(), c.dt, {T, out_width_}};
        }
        linear_forward(c, terms, bind(c, proj_, p, nullptr), hp, enc);
        if (!recompute) c.encoder_out = enc;
    }

    void backward(Ctx& c, const CallTensors& p, const CallTensors& g) override {
        const std::int64_t T = c.tokens(st_);
        Scratch s(c);
        if (last_encoder_) {  // the encoder output's gradient comes from the cross-attentions
            SHARDSIM_ASSERT(static_cast<bool>(c.dencoder_out), "encoder backward before any cross-attention backward");
            const Tensor dhp = s.make(c.dt, {T, d_}, "projection input gradient");
            linear_backward(c, terms, bind(c, proj_, p, &g), terms.get("proj.input"),
                            Tensor{c.dencoder_out.data(), c.dt, {T, out_width_}}, dhp, false);
            c.dencoder_out.reset();
            Buffer gb = c.buffer(T * d_ * dtype_size(c.dt), MemCategory::temporaries, "hidden-state gradient");
            norm_backward(c, terms, "ln_f", n_final_, p, g, dhp, Tensor{gb.data(), c.dt, {T, d_}}, false);
            c.grad[stream_index(st_)] = std::move(gb);
        }
        const Tensor dy = take_grad(c, st_);
        const Tensor dh = s.make(c.dt, {T, d_}, "norm output gradient");
        const Tensor h = terms.get("attn.input");
        // MLP branch
        const Tensor da = s.make(c.dt, {T, f_}, "MLP gradient");
        const Tensor dmlp = branch_grad(c, terms, s, {"mlp.out", st_}, dy);
        linear_backward(c, terms, bind(c, fc_out_, p, &g), terms.get("mlp.act"), dmlp, da, false);
        s.release(dmlp);
        c.dev.activation_backward(Activation::gelu_tanh, terms.get("mlp.fc_out"), da, da, false);
        linear_backward(c, terms, bind(c, fc_in_, p, &g), h, da, dh, false);
        s.release(da);
        // attention branch
        const Tensor dctx = s.make(c.dt, {T, d_}, "context gradient");
        const Tensor dattn = branch_grad(c, terms, s, {"attn.out", st_}, dy);
        linear_backward(c, terms, bind(c, out_, p, &g), attention_context_get(terms, "attn"), dattn, dctx, false);
        s.release(dattn);
        const Tensor dq = s.make(c.dt, {T, d_}, "dq"), dk = s.make(c.dt, {T, d_}, "dk"), dv = s.make(c.dt, {T, d_}, "dv");
        attention_backward(c, self_dims(c), attention_get(c, terms, "attn"), dctx, dq, dk, dv, Tensor{});
        s.release(dctx);
        rotate(c, dq, true);
        rotate(c, dk, true);
        const Tensor dfused = s.make(c.dt, {T, 3 * d_}, "fused qkv gradient");
        merge_fused(c, fused_, dq, dk, dv, dfused);
        s.release(dq);
        s.release(dk);
        s.release(dv);
        linear_backward(c, terms, bind(c, qkv_, p, &g), h, dfused, dh, true);
        s.release(dfused);
        norm_backward(c, terms, "ln_1", n1_, p, g, dh, dy, true);
        if (cross_) cross_attention_backward(c, p, g, s, dy, dh);
    }

private:
    // CodeGen's _attn upcasts q and k to fp32 (after the rotary) before the score matmul.
    AttnDims self_dims(const Ctx& c) const {
        AttnDims d = attn_dims(c, sa_, scale_);
        d.qk_fp32 = true;
        return d;
    }

    // y += dropout(fc_out(gelu(fc_in(h)))); h is released once read.
    void mlp(Ctx& c, const CallTensors& p, Scratch& s, const Tensor& h, const Tensor& y) {
        const std::int64_t T = c.tokens(st_);
        const Tensor fc = terms.add(c, "mlp.fc_out", c.dt, {T, f_});
        linear_forward(c, terms, bind(c, fc_in_, p, nullptr), h, fc);
        s.release(h);
        const Tensor act = keep_or_temp(c, terms, s, fc_out_.keeps_input, "mlp.act", {T, f_});
        c.dev.activation_forward(Activation::gelu_tanh, fc, act);
        if (c.rules.hidden_dropout > 0) {  // the MLP branch on its own, dropped, then added
            const Tensor m = s.make(c.dt, {T, d_}, "MLP output");
            linear_forward(c, terms, bind(c, fc_out_, p, nullptr), act, m);
            add_dropped(c, terms, {"mlp.out", st_}, {m, y, y});
        } else {
            linear_forward(c, terms, bind(c, fc_out_, p, nullptr), act, y, true);
        }
    }

    void rotate(Ctx& c, const Tensor& x, bool inverse) const {
        RotaryOp op;
        op.x = x;
        op.heads = sa_.heads;
        op.head_dim = sa_.head_dim;
        op.rotary_dim = rotary_dim_;
        op.seq = c.len(st_);
        op.interleaved = true;
        op.inverse = inverse;
        c.dev.rotary(op);
    }

    // out = out_proj(attention(q_proj(ln_cross(x)), k_proj(enc), v_proj(enc)))
    void cross_attention(Ctx& c, const CallTensors& p, Scratch& s, const Tensor& out) {
        const std::int64_t T = c.tokens(st_);
        const Tensor h = keep_or_temp(c, terms, s, ca_lin_[0].keeps_input, "ca.input", {T, d_});
        norm_forward(c, terms, "ln_cross", n_cross_, p, h);
        const AttnDims dims = attn_dims(c, ca_, scale_);
        const AttnTerms at = attention_terms(c, terms, "ca", dims);
        SHARDSIM_ASSERT(!c.encoder_out.empty(), "cross-attention before the encoder ran");
        linear_forward(c, terms, bind(c, ca_lin_[0], p, nullptr), h, at.q);
        linear_forward(c, terms, bind(c, ca_lin_[1], p, nullptr), c.encoder_out, at.k);
        linear_forward(c, terms, bind(c, ca_lin_[2], p, nullptr), c.encoder_out, at.v);
        s.release(h);
        const Tensor ctx = attention_context(c, terms, s, at, ca_lin_[3].keeps_input);
        attention_forward(c, dims, at, Tensor{}, Tensor{}, ctx);
        linear_forward(c, terms, bind(c, ca_lin_[3], p, nullptr), ctx, out);
        s.release(ctx);
    }

    void cross_attention_backward(Ctx& c, const CallTensors& p, const CallTensors& g, Scratch& s, const Tensor& dy,
                                  const Tensor& dh) {
        const std::int64_t T = c.tokens(st_), Tk = c.tokens(ca_.kv_stream);
        const Tensor dctx = s.make(c.dt, {T, d_}, "context gradient");
        const Tensor dca = branch_grad(c, terms, s, {"ca.out", st_}, dy);
        linear_backward(c, terms, bind(c, ca_lin_[3], p, &g), attention_context_get(terms, "ca"), dca, dctx, false);
        s.release(dca);
        const Tensor dq = s.make(c.dt, {T, d_}, "dq"), dk = s.make(c.dt, {Tk, d_}, "dk"), dv = s.make(c.dt, {Tk, d_}, "dv");
        attention_backward(c, attn_dims(c, ca_, scale_), attention_get(c, terms, "ca"), dctx, dq, dk, dv, Tensor{});
        s.release(dctx);
        linear_backward(c, terms, bind(c, ca_lin_[0], p, &g), terms.get("ca.input"), dq, dh, false);
        if (!c.dencoder_out) {
            c.dencoder_out = c.buffer(Tk * d_ * dtype_size(c.dt), MemCategory::temporaries, "encoder output gradient");
            c.dev.fill_zero(c.dencoder_out.data(), c.dencoder_out.bytes());
        }
        const Tensor denc{c.dencoder_out.data(), c.dt, {Tk, d_}};
        linear_backward(c, terms, bind(c, ca_lin_[1], p, &g), c.encoder_out, dk, denc, true);
        linear_backward(c, terms, bind(c, ca_lin_[2], p, &g), c.encoder_out, dv, denc, true);
        norm_backward(c, terms, "ln_cross", n_cross_, p, g, dh, dy, true);
    }

    UnitIndex ix_;
    model::Stream st_;
    bool cross_ = false, last_encoder_ = false, keep_output_ = false;
    model::AttentionShape sa_, ca_;
    NormRef n1_, n_cross_, n_final_;
    LinearRef qkv_, out_, fc_in_, fc_out_, proj_;
    std::vector<LinearRef> ca_lin_;
    FusedLayout fused_;
    std::int64_t d_ = 0, f_ = 0, rotary_dim_ = 0, out_width_ = 0;
    float scale_ = 1;
};

}  // namespace

std::unique_ptr<CallModule> make_codet5p_block(const Ctx& c, const model::Unit& u) {
    return std::make_unique<CodeT5pBlock>(c, u);
}

}  // namespace shardsim::nn::detail
