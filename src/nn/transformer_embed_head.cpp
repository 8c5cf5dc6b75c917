// The embedding calls (token table, GPT-2's learned positions, BLOOM's embedding LayerNorm, the
// embedding dropout of GPT-2, T5 and CodeGen) and the head (final norm, T5's stack dropout,
// lm_head or the tied embedding, the loss as memory.loss says).
#include <cmath>

#include "model_parts.hpp"
#include "shardsim/core/error.hpp"

namespace shardsim::nn::detail {

using device::Tensor;
using device::Buffer;
using device::EmbeddingOp;
using device::CrossEntropyOp;
using device::CallTensors;

namespace {

int find_role(const model::Unit& u, model::TensorRole role) {
    for (std::size_t i = 0; i < u.tensors.size(); ++i)
        if (u.tensors[i].role == role) return static_cast<int>(i);
    return -1;
}

std::string strip_weight(const std::string& name) { return name.substr(0, name.size() - std::string(".weight").size()); }

std::vector<std::int32_t> positions(std::int64_t tokens, std::int64_t seq) {
    std::vector<std::int32_t> p(static_cast<std::size_t>(tokens));
    for (std::int64_t t = 0; t < tokens; ++t) p[static_cast<std::size_t>(t)] = static_cast<std::int32_t>(t % seq);
    return p;
}

class EmbeddingCall final : public CallModule {
public:
    EmbeddingCall(const Ctx& c, const model::Unit& u, model::Stream s) : s_(s), ix_(u) {
        table_ = find_role(u, model::TensorRole::embedding);
        pos_ = find_role(u, model::TensorRole::position_table);
        SHARDSIM_ASSERT(table_ >= 0, "embedding unit without a table");
        const auto& t = u.tensors[static_cast<std::size_t>(table_)];
        vocab_ = t.shape[0];
        d_ = t.shape[1];
        const auto arch = c.spec.arch;
        dropped_ = arch == model::Arch::gpt2 || arch == model::Arch::t5 || arch == model::Arch::codet5p;
        if (pos_ >= 0) max_pos_ = u.tensors[static_cast<std::size_t>(pos_)].shape[0];
        trainable_ = t.trainable;
        const int nw = find_role(u, model::TensorRole::norm_weight);
        if (nw >= 0) {
            has_norm_ = true;
            norm_ = norm_ref(ix_, strip_weight(u.tensors[static_cast<std::size_t>(nw)].name), model::NormKind::layernorm,
                             norm_eps(c.spec.arch));
        }
    }

    void forward(Ctx& c, const CallTensors& p, bool) override {
        const auto& ids = s_ == model::Stream::encoder ? c.batch.encoder_ids : c.batch.input_ids;
        const std::int64_t tokens = c.tokens(s_);
        SHARDSIM_ASSERT(static_cast<std::int64_t>(ids.size()) == tokens, "token ids of another length than the plan's");
        Buffer tmp_ids;
        const void* dids = nullptr;
        if (trainable_) {
            dids = terms.add_ids(c, "ids", ids);
        } else {
            tmp_ids = c.upload_ids(ids, MemCategory::temporaries, "token ids");
            dids = tmp_ids.data();
        }
        Buffer out = c.buffer(tokens * d_ * dtype_size(c.dt), MemCategory::activations, "hidden states");
        const Tensor o{out.data(), c.dt, {tokens, d_}};
        Scratch s(c);
        const bool drop = dropped_ && c.rules.hidden_dropout > 0;
        const Tensor raw = has_norm_ ? terms.add(c, "word_embeddings_layernorm.input", c.dt, {tokens, d_})
                           : drop    ? s.make(c.dt, {tokens, d_}, "embeddings before dropout")
                                     : o;
        EmbeddingOp op;
        op.table = param_of(p, 0, table_, {vocab_, d_});
        op.out = raw;
        op.ids = static_cast<const std::int32_t*>(dids);
        c.dev.embedding_forward(op);
        if (pos_ >= 0) {
            const Buffer pos = c.upload_ids(positions(tokens, c.len(s_)), MemCategory::temporaries, "positions");
            op.table = param_of(p, 0, pos_, {max_pos_, d_});
            op.ids = pos.as<std::int32_t>();
            op.accumulate = true;
            c.dev.embedding_forward(op);
        }
        if (has_norm_) norm_forward(c, terms, "word_embeddings_layernorm", norm_, p, o);
        if (drop) drop_forward(c, terms, {"hidden", s_}, raw, o);
        c.hidden[stream_index(s_)] = std::move(out);
    }

    void backward(Ctx& c, const CallTensors& p, const CallTensors& g) override {
        Buffer gbuf = std::move(c.grad[stream_index(s_)]);
        SHARDSIM_ASSERT(static_cast<bool>(gbuf), "embedding backward without the gradient of its output");
        const std::int64_t tokens = c.tokens(s_);
        const Tensor dy{gbuf.data(), c.dt, {tokens, d_}};
        const Tensor gtable = grad_of(&g, 0, table_, {vocab_, d_});
        const Tensor gpos = grad_of(&g, 0, pos_, {max_pos_, d_});
        const bool norm_trainable = has_norm_ && !grad_of(&g, 0, norm_.w, {d_}).empty();
        if (gtable.empty() && gpos.empty() && !norm_trainable) return;  // a frozen embedding (LoRA)
        Scratch s(c);
        Tensor draw = dy;
        if (dropped_ && c.rules.hidden_dropout > 0) drop_backward(c, terms, {"hidden", s_}, dy, dy);
        if (has_norm_) {
            draw = s.make(c.dt, {tokens, d_}, "embedding gradient");
            norm_backward(c, terms, "word_embeddings_layernorm", norm_, p, g, dy, draw, false);
        }
        EmbeddingOp op;
        op.out = draw;
        if (!gtable.empty()) {
            op.table = gtable;
            op.ids = static_cast<const std::int32_t*>(terms.get("ids").data);
            SHARDSIM_ASSERT(op.ids != nullptr, "a trainable embedding did not keep its ids");
            c.dev.embedding_backward(op);
        }
        if (!gpos.empty()) {
            const Buffer pos = c.upload_ids(positions(tokens, c.len(s_)), MemCategory::temporaries, "positions");
            op.table = gpos;
            op.ids = pos.as<std::int32_t>();
            c.dev.embedding_backward(op);
        }
    }

private:
    model::Stream s_;
    UnitIndex ix_;
    int table_ = -1, pos_ = -1;
    std::int64_t vocab_ = 0, d_ = 0, max_pos_ = 0;
    bool trainable_ = false, has_norm_ = false, dropped_ = false;
    NormRef norm_;
};

class HeadCall final : public CallModule {
public:
    HeadCall(const Ctx& c, const model::Unit& u, const model::ProgramStep& step) : ix_(u) {
        const int nw = find_role(u, model::TensorRole::norm_weight);
        norm_ = norm_ref(ix_, strip_weight(u.tensors[static_cast<std::size_t>(nw)].name), c.spec.norm, norm_eps(c.spec.arch));
        d_ = c.spec.decoder.hidden;
        vocab_ = c.spec.vocab;
        t5_ = c.spec.arch == model::Arch::t5;
        hidden_dropout_ = c.rules.hidden_dropout;
        if (c.spec.tied_embeddings) {
            // The tied head multiplies by the embedding table, the second unit this call reads.
            const model::Unit& embed = c.plan.units().at(static_cast<std::size_t>(step.reads.at(1)));
            head_.slot = 1;
            head_.w = find_role(embed, model::TensorRole::embedding);
            head_.in = d_;
            head_.out = vocab_;
            head_.keeps_input = embed.tensors[static_cast<std::size_t>(head_.w)].trainable;
            // T5 scales the decoder output by d_model^-0.5 before a tied head.
            if (c.spec.arch == model::Arch::t5) scale_ = 1.0f / std::sqrt(static_cast<float>(d_));
        } else {
            int w = -1;
            for (std::size_t i = 0; i < u.tensors.size(); ++i)
                if (u.tensors[i].role == model::TensorRole::linear && u.tensors[i].module == "lm_head") w = static_cast<int>(i);
            SHARDSIM_ASSERT(w >= 0, "untied head without lm_head");
            head_ = linear_ref(ix_, strip_weight(u.tensors[static_cast<std::size_t>(w)].name));
        }
    }

    void forward(Ctx& c, const CallTensors& p, bool) override {
        const std::int64_t tokens = c.tokens(model::Stream::decoder);
        Scratch s(c);
        block_input(c, terms, model::Stream::decoder, "final_norm", d_, false);
        const Tensor h = keep_or_temp(c, terms, s, head_.keeps_input, "head.input", {tokens, d_});
        const Tensor normed = dropped() ? s.make(c.dt, {tokens, d_}, "final norm output") : h;
        norm_forward(c, terms, "final_norm", norm_, p, normed);
        if (dropped()) {
            drop_forward(c, terms, {"head.input", model::Stream::decoder}, normed, h);
            s.release(normed);
        }
        Linear l = bind(c, head_, p, nullptr);
        l.scale = scale_;
        const Tensor logits = terms.add(c, "logits", c.dt, {tokens, vocab_});
        linear_forward(c, terms, l, h, logits);
        CrossEntropyOp ce;
        ce.targets = static_cast<const std::int32_t*>(terms.add_ids(c, "targets", c.batch.targets));
        ce.losses = s.make(DType::fp32, {tokens}, "token losses");
        if (c.rules.fused_loss) {
            ce.logits = logits;  // overwritten with their gradient
            c.dev.cross_entropy_fused(ce, static_cast<float>(c.loss_scale));
        } else {
            // logits.float(): a copy next to the logits in a 16-bit model, the tensor itself in fp32;
            // a loss on the logits as they are (T5) computes and keeps its log-softmax in their dtype
            const bool upcast = c.rules.loss_fp32 && c.dt != DType::fp32;
            ce.logits = upcast ? s.make(DType::fp32, {tokens, vocab_}, "fp32 logits") : logits;
            if (ce.logits.data != logits.data) c.dev.convert(logits, ce.logits);
            ce.log_probs = terms.add(c, "log_softmax", c.rules.loss_fp32 ? DType::fp32 : c.dt, {tokens, vocab_});
            c.dev.cross_entropy_forward(ce);
            s.release(ce.logits);
        }
        std::vector<float> losses(static_cast<std::size_t>(tokens));
        c.dev.copy_to_host(losses.data(), ce.losses.data, tokens * 4);
        double sum = 0;
        for (float x : losses) sum += x;
        c.last_loss = sum / static_cast<double>(tokens);
    }

    void backward(Ctx& c, const CallTensors& p, const CallTensors& g) override {
        const std::int64_t tokens = c.tokens(model::Stream::decoder);
        Scratch s(c);
        Tensor dlogits = terms.get("logits");  // fused: the kernel left the gradient there
        if (!c.rules.fused_loss) {
            // The gradient of the logits in the log-softmax's dtype, then (fp32 loss in a 16-bit
            // model) its cast to the model dtype.
            CrossEntropyOp ce;
            ce.log_probs = terms.get("log_softmax");
            ce.targets = static_cast<const std::int32_t*>(terms.get("targets").data);
            const Tensor d32 = s.make(ce.log_probs.dtype, {tokens, vocab_}, "logit gradient");
            c.dev.cross_entropy_backward(ce, static_cast<float>(c.loss_scale), d32);
            dlogits = d32;
            if (c.dt != ce.log_probs.dtype) {
                dlogits = s.make(c.dt, {tokens, vocab_}, "logit gradient");
                c.dev.convert(d32, dlogits);
                s.release(d32);
            }
        }
        Linear l = bind(c, head_, p, &g);
        l.scale = scale_;
        const Tensor dh = s.make(c.dt, {tokens, d_}, "head input gradient");
        linear_backward(c, terms, l, terms.get("head.input"), dlogits, dh, false);
        s.release(dlogits);
        if (dropped()) drop_backward(c, terms, {"head.input", model::Stream::decoder}, dh, dh);
        Buffer grad = c.buffer(tokens * d_ * dtype_size(c.dt), MemCategory::temporaries, "hidden-state gradient");
        norm_backward(c, terms, "final_norm", norm_, p, g, dh, Tensor{grad.data(), c.dt, {tokens, d_}}, false);
        c.grad[stream_index(model::Stream::decoder)] = std::move(grad);
    }

private:
    // T5Stack drops the decoder's final-norm output before lm_head.
    bool dropped() const { return t5_ && hidden_dropout_ > 0; }

    UnitIndex ix_;
    NormRef norm_;
    LinearRef head_;
    bool t5_ = false;
    double hidden_dropout_ = 0;
    std::int64_t d_ = 0, vocab_ = 0;
    float scale_ = 1;
};

}  // namespace

std::unique_ptr<CallModule> make_embedding_call(const Ctx& c, const model::Unit& u, model::Stream s) {
    return std::make_unique<EmbeddingCall>(c, u, s);
}

std::unique_ptr<CallModule> make_head_call(const Ctx& c, const model::Unit& u, const model::ProgramStep& step) {
    return std::make_unique<HeadCall>(c, u, step);
}

}  // namespace shardsim::nn::detail
