// Decoder-only blocks, pre-norm with two residual branches:
//   GPT-2 / BLOOM: x + drop(proj(attn(qkv(LN(x))))), then + drop(fc2(gelu(fc1(LN(.))))); fused
//                  QKV; GPT-2's Conv1D weights are [in, out]; BLOOM adds ALiBi to the scores. The
//                  dropouts are GPT-2's resid_dropout / mlp.dropout and BLOOM's dropout_add.
//   Llama:         RMSNorm, separate q/k/v with rotary (rotate_half), grouped KV heads, SwiGLU.
#include <cmath>

#include "model_parts.hpp"

namespace shardsim::nn::detail {

using device::Tensor;
using device::Buffer;
using device::Activation;
using device::RotaryOp;
using device::CallTensors;

namespace {

class ClassicBlock final : public CallModule {
public:
    ClassicBlock(const Ctx& c, const model::Unit& u) : ix_(u), attn_(model::attention_shapes(c.spec, u).at(0)) {
        const bool gpt2 = c.spec.arch == model::Arch::gpt2;
        const std::string p = "transformer.h." + std::to_string(u.layer) + ".";
        const float eps = norm_eps(c.spec.arch);
        n1_name_ = gpt2 ? "ln_1" : "input_layernorm";
        n2_name_ = gpt2 ? "ln_2" : "post_attention_layernorm";
        n1_ = norm_ref(ix_, p + n1_name_, model::NormKind::layernorm, eps);
        n2_ = norm_ref(ix_, p + n2_name_, model::NormKind::layernorm, eps);
        qkv_ = linear_ref(ix_, p + (gpt2 ? "attn.c_attn" : "self_attention.query_key_value"), gpt2);
        proj_ = linear_ref(ix_, p + (gpt2 ? "attn.c_proj" : "self_attention.dense"), gpt2);
        fc1_ = linear_ref(ix_, p + (gpt2 ? "mlp.c_fc" : "mlp.dense_h_to_4h"), gpt2);
        fc2_ = linear_ref(ix_, p + (gpt2 ? "mlp.c_proj" : "mlp.dense_4h_to_h"), gpt2);
        if (!gpt2) {
            fused_.chunks = attn_.heads;  // BLOOM: [q k v] per head
            slopes_ = alibi_slopes(attn_.heads);
        }
        d_ = c.spec.decoder.hidden;
        f_ = c.spec.decoder.ffn;
        scale_ = 1.0f / std::sqrt(static_cast<float>(attn_.head_dim));
    }

    bool is_block() const override { return true; }

    void forward(Ctx& c, const CallTensors& p, bool recompute) override {
        const auto st = model::Stream::decoder;
        const std::int64_t T = c.tokens(st);
        Scratch s(c);
        const Tensor x = block_input(c, terms, st, n1_name_, d_, recompute);
        const Tensor h1 = keep_or_temp(c, terms, s, qkv_.keeps_input, "attn.input", {T, d_});
        norm_forward(c, terms, n1_name_, n1_, p, h1);
        // Selective checkpointing keeps GPT-2's fused output as q, k, v (views of it in PyTorch):
        // recompute finds them kept and neither projects nor splits.
        const auto* kept = c.kept_output(qkv_.module);
        Tensor fused;
        if (!(recompute && kept && !kept->parts.empty())) {
            fused = s.make(c.dt, {T, 3 * d_}, "fused qkv");
            linear_forward(c, terms, bind(c, qkv_, p, nullptr), h1, fused);
        }
        s.release(h1);
        const AttnDims dims = attn_dims(c, attn_, scale_);
        const AttnTerms at = attention_terms(c, terms, "attn", dims);
        if (!fused.empty()) {
            split_fused(c, fused_, fused, at.q, at.k, at.v);
            s.release(fused);
        }
        Tensor alibi;
        Buffer slopes;
        if (!slopes_.empty()) {
            slopes = c.buffer(static_cast<std::int64_t>(slopes_.size()) * 4, MemCategory::temporaries, "ALiBi slopes");
            c.dev.copy_from_host(slopes.data(), slopes_.data(), slopes.bytes());
            alibi = Tensor{slopes.data(), DType::fp32, {attn_.heads}};
        }
        const Tensor ctx = attention_context(c, terms, s, at, proj_.keeps_input);
        attention_forward(c, dims, at, Tensor{}, alibi, ctx);
        const Tensor r = terms.add(c, n2_name_ + ".input", c.dt, {T, d_});
        linear_forward(c, terms, bind(c, proj_, p, nullptr), ctx, r);
        add_dropped(c, terms, {"attn.out", st}, {r, x, r});
        s.release(ctx);
        const Tensor h2 = keep_or_temp(c, terms, s, fc1_.keeps_input, "mlp.input", {T, d_});
        norm_forward(c, terms, n2_name_, n2_, p, h2);
        const Tensor fc = terms.add(c, "mlp.fc_out", c.dt, {T, f_});
        linear_forward(c, terms, bind(c, fc1_, p, nullptr), h2, fc);
        s.release(h2);
        const Tensor act = keep_or_temp(c, terms, s, fc2_.keeps_input, "mlp.act", {T, f_});
        c.dev.activation_forward(Activation::gelu_tanh, fc, act);
        BlockOutput out = block_output(c, st, d_, recompute);
        linear_forward(c, terms, bind(c, fc2_, p, nullptr), act, out.t);
        add_dropped(c, terms, {"mlp.out", st}, {out.t, r, out.t});
        publish(c, st, std::move(out), recompute);
    }

    void backward(Ctx& c, const CallTensors& p, const CallTensors& g) override {
        const auto st = model::Stream::decoder;
        const std::int64_t T = c.tokens(st);
        Scratch s(c);
        const Tensor dy = take_grad(c, st);
        // MLP branch
        const Tensor da = s.make(c.dt, {T, f_}, "MLP gradient");
        const Tensor dmlp = branch_grad(c, terms, s, {"mlp.out", st}, dy);
        linear_backward(c, terms, bind(c, fc2_, p, &g), terms.get("mlp.act"), dmlp, da, false);
        s.release(dmlp);
        c.dev.activation_backward(Activation::gelu_tanh, terms.get("mlp.fc_out"), da, da, false);
        const Tensor dh2 = s.make(c.dt, {T, d_}, "norm output gradient");
        linear_backward(c, terms, bind(c, fc1_, p, &g), terms.get("mlp.input"), da, dh2, false);
        s.release(da);
        norm_backward(c, terms, n2_name_, n2_, p, g, dh2, dy, true);
        // attention branch
        const Tensor dctx = s.make(c.dt, {T, d_}, "context gradient");
        const Tensor dattn = branch_grad(c, terms, s, {"attn.out", st}, dy);
        linear_backward(c, terms, bind(c, proj_, p, &g), attention_context_get(terms, "attn"), dattn, dctx, false);
        s.release(dattn);
        const AttnDims dims = attn_dims(c, attn_, scale_);
        const Tensor dq = s.make(c.dt, {T, d_}, "dq"), dk = s.make(c.dt, {T, d_}, "dk"), dv = s.make(c.dt, {T, d_}, "dv");
        attention_backward(c, dims, attention_get(c, terms, "attn"), dctx, dq, dk, dv, Tensor{});
        s.release(dctx);
        const Tensor dfused = s.make(c.dt, {T, 3 * d_}, "fused qkv gradient");
        merge_fused(c, fused_, dq, dk, dv, dfused);
        s.release(dq);
        s.release(dk);
        s.release(dv);
        linear_backward(c, terms, bind(c, qkv_, p, &g), terms.get("attn.input"), dfused, dh2, false);
        s.release(dfused);
        norm_backward(c, terms, n1_name_, n1_, p, g, dh2, dy, true);
    }

private:
    UnitIndex ix_;
    model::AttentionShape attn_;
    std::string n1_name_, n2_name_;
    NormRef n1_, n2_;
    LinearRef qkv_, proj_, fc1_, fc2_;
    FusedLayout fused_;
    std::vector<float> slopes_;
    std::int64_t d_ = 0, f_ = 0;
    float scale_ = 1;
};

class LlamaBlock final : public CallModule {
public:
    LlamaBlock(const Ctx& c, const model::Unit& u) : ix_(u), attn_(model::attention_shapes(c.spec, u).at(0)) {
        const std::string p = "model.layers." + std::to_string(u.layer) + ".";
        const float eps = norm_eps(c.spec.arch);
        n1_ = norm_ref(ix_, p + "input_layernorm", model::NormKind::rmsnorm, eps);
        n2_ = norm_ref(ix_, p + "post_attention_layernorm", model::NormKind::rmsnorm, eps);
        q_ = linear_ref(ix_, p + "self_attn.q_proj");
        k_ = linear_ref(ix_, p + "self_attn.k_proj");
        v_ = linear_ref(ix_, p + "self_attn.v_proj");
        o_ = linear_ref(ix_, p + "self_attn.o_proj");
        gate_ = linear_ref(ix_, p + "mlp.gate_proj");
        up_ = linear_ref(ix_, p + "mlp.up_proj");
        down_ = linear_ref(ix_, p + "mlp.down_proj");
        d_ = c.spec.decoder.hidden;
        f_ = c.spec.decoder.ffn;
        rotary_dim_ = c.spec.decoder.rotary_dim;
        scale_ = 1.0f / std::sqrt(static_cast<float>(attn_.head_dim));
    }

    bool is_block() const override { return true; }

    void forward(Ctx& c, const CallTensors& p, bool recompute) override {
        const auto st = model::Stream::decoder;
        const std::int64_t T = c.tokens(st);
        Scratch s(c);
        const Tensor x = block_input(c, terms, st, "input_layernorm", d_, recompute);
        const bool keep_h1 = q_.keeps_input || k_.keeps_input || v_.keeps_input;
        const Tensor h1 = keep_or_temp(c, terms, s, keep_h1, "attn.input", {T, d_});
        norm_forward(c, terms, "input_layernorm", n1_, p, h1);
        const AttnDims dims = attn_dims(c, attn_, scale_);
        const AttnTerms at = attention_terms(c, terms, "attn", dims);
        linear_forward(c, terms, bind(c, q_, p, nullptr), h1, at.q);
        linear_forward(c, terms, bind(c, k_, p, nullptr), h1, at.k);
        linear_forward(c, terms, bind(c, v_, p, nullptr), h1, at.v);
        s.release(h1);
        rotate(c, at.q, attn_.heads, false);
        rotate(c, at.k, attn_.kv_heads, false);
        const Tensor ctx = attention_context(c, terms, s, at, o_.keeps_input);
        attention_forward(c, dims, at, Tensor{}, Tensor{}, ctx);
        const Tensor r = terms.add(c, "post_attention_layernorm.input", c.dt, {T, d_});
        linear_forward(c, terms, bind(c, o_, p, nullptr), ctx, r);
        c.dev.axpby(1.0f, r, 1.0f, x, r);
        s.release(ctx);
        const Tensor h2 = keep_or_temp(c, terms, s, gate_.keeps_input || up_.keeps_input, "mlp.input", {T, d_});
        norm_forward(c, terms, "post_attention_layernorm", n2_, p, h2);
        const Tensor gate = terms.add(c, "mlp.gate", c.dt, {T, f_});
        const Tensor act = terms.add(c, "mlp.act", c.dt, {T, f_});
        const Tensor up = terms.add(c, "mlp.up", c.dt, {T, f_});
        linear_forward(c, terms, bind(c, gate_, p, nullptr), h2, gate);
        linear_forward(c, terms, bind(c, up_, p, nullptr), h2, up);
        s.release(h2);
        c.dev.activation_forward(Activation::silu, gate, act);
        const Tensor prod = keep_or_temp(c, terms, s, down_.keeps_input, "mlp.prod", {T, f_});
        c.dev.mul(act, up, prod, false);
        BlockOutput out = block_output(c, st, d_, recompute);
        linear_forward(c, terms, bind(c, down_, p, nullptr), prod, out.t);
        c.dev.axpby(1.0f, out.t, 1.0f, r, out.t);
        publish(c, st, std::move(out), recompute);
    }

    void backward(Ctx& c, const CallTensors& p, const CallTensors& g) override {
        const auto st = model::Stream::decoder;
        const std::int64_t T = c.tokens(st), qd = attn_.heads * attn_.head_dim, kvd = attn_.kv_heads * attn_.head_dim;
        Scratch s(c);
        const Tensor dy = take_grad(c, st);
        // SwiGLU branch: out = down(silu(gate) * up)
        const Tensor dprod = s.make(c.dt, {T, f_}, "MLP product gradient");
        linear_backward(c, terms, bind(c, down_, p, &g), terms.get("mlp.prod"), dy, dprod, false);
        const Tensor dgate = s.make(c.dt, {T, f_}, "gate gradient"), dup = s.make(c.dt, {T, f_}, "up gradient");
        c.dev.mul(dprod, terms.get("mlp.up"), dgate, false);
        c.dev.mul(dprod, terms.get("mlp.act"), dup, false);
        s.release(dprod);
        c.dev.activation_backward(Activation::silu, terms.get("mlp.gate"), dgate, dgate, false);
        const Tensor dh = s.make(c.dt, {T, d_}, "norm output gradient");
        const Tensor h2 = terms.get("mlp.input");
        linear_backward(c, terms, bind(c, gate_, p, &g), h2, dgate, dh, false);
        linear_backward(c, terms, bind(c, up_, p, &g), h2, dup, dh, true);
        s.release(dgate);
        s.release(dup);
        norm_backward(c, terms, "post_attention_layernorm", n2_, p, g, dh, dy, true);
        // attention branch
        const Tensor dctx = s.make(c.dt, {T, qd}, "context gradient");
        linear_backward(c, terms, bind(c, o_, p, &g), attention_context_get(terms, "attn"), dy, dctx, false);
        const Tensor dq = s.make(c.dt, {T, qd}, "dq"), dk = s.make(c.dt, {T, kvd}, "dk"), dv = s.make(c.dt, {T, kvd}, "dv");
        attention_backward(c, attn_dims(c, attn_, scale_), attention_get(c, terms, "attn"), dctx, dq, dk, dv, Tensor{});
        s.release(dctx);
        rotate(c, dq, attn_.heads, true);
        rotate(c, dk, attn_.kv_heads, true);
        const Tensor h1 = terms.get("attn.input");
        linear_backward(c, terms, bind(c, q_, p, &g), h1, dq, dh, false);
        linear_backward(c, terms, bind(c, k_, p, &g), h1, dk, dh, true);
        linear_backward(c, terms, bind(c, v_, p, &g), h1, dv, dh, true);
        norm_backward(c, terms, "input_layernorm", n1_, p, g, dh, dy, true);
    }

private:
    void rotate(Ctx& c, const Tensor& x, std::int64_t heads, bool inverse) const {
        RotaryOp op;
        op.x = x;
        op.heads = heads;
        op.head_dim = attn_.head_dim;
        op.rotary_dim = rotary_dim_;
        op.seq = c.len(model::Stream::decoder);
        op.interleaved = false;
        op.inverse = inverse;
        c.dev.rotary(op);
    }

    UnitIndex ix_;
    model::AttentionShape attn_;
    NormRef n1_, n2_;
    LinearRef q_, k_, v_, o_, gate_, up_, down_;
    std::int64_t d_ = 0, f_ = 0, rotary_dim_ = 0;
    float scale_ = 1;
};

}  // namespace

std::unique_ptr<CallModule> make_classic_block(const Ctx& c, const model::Unit& u) {
    return std::make_unique<ClassicBlock>(c, u);
}

std::unique_ptr<CallModule> make_llama_block(const Ctx& c, const model::Unit& u) {
    return std::make_unique<LlamaBlock>(c, u);
}

}  // namespace shardsim::nn::detail
