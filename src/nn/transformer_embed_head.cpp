// The embedding calls (token table, GPT-2's learned positions, BLOOM's embedding LayerNorm) and
// the head (final norm, lm_head or the tied embedding, fp32 logits, cross-entropy).
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
        const Tensor raw = has_norm_ ? terms.add(c, "word_embeddings_layernorm.input", c.dt, {tokens, d_}) : o;
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
    bool trainable_ = false, has_norm_ = false;
    NormRef norm_;
};

class HeadCall final : public CallModule {
public:
    HeadCall(const Ctx& c, const model::Unit& u, const model::ProgramStep& step) : ix_(u) {
        const int nw = find_role(u, model::TensorRole::norm_weight);
        norm_ = norm_ref(ix_, strip_weight(u.tensors[static_cast<std::size_t>(nw)].name), c.spec.norm, norm_eps(c.spec.arch));
        d_ = c.spec.decoder.hidden;
        vocab_ = c.spec.vocab;
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
        norm_forward(c, terms, "final_norm", norm_, p, h);
        Linear l = bind(c, head_, p, nullptr);
        l.scale = scale_;
        const Tensor logits = terms.add(c, "logits.fp32", DType::fp32, {tokens, vocab_});
        if (c.dt == DType::fp32) {
            linear_forward(c, terms, l, h, logits);
        } else {  // the model's own dtype first, then .float(), as a PyTorch training loop does
            const Tensor low = s.make(c.dt, {tokens, vocab_}, "16-bit logits");
            linear_forward(c, terms, l, h, low);
            c.dev.convert(low, logits);
            s.release(low);
        }
        CrossEntropyOp ce;
        ce.logits = logits;
        ce.targets = static_cast<const std::int32_t*>(terms.add_ids(c, "targets", c.batch.targets));
        ce.log_probs = terms.add(c, "log_softmax", DType::fp32, {tokens, vocab_});
        ce.losses = s.make(DType::fp32, {tokens}, "token losses");
        c.dev.cross_entropy_forward(ce);
        std::vector<float> losses(static_cast<std::size_t>(tokens));
        c.dev.copy_to_host(losses.data(), ce.losses.data, tokens * 4);
        double sum = 0;
        for (float x : losses) sum += x;
        c.last_loss = sum / static_cast<double>(tokens);
    }

    void backward(Ctx& c, const CallTensors& p, const CallTensors& g) override {
        const std::int64_t tokens = c.tokens(model::Stream::decoder);
        Scratch s(c);
        CrossEntropyOp ce;
        ce.log_probs = terms.get("log_softmax");
        ce.targets = static_cast<const std::int32_t*>(terms.get("targets").data);
        const Tensor dlogits = s.make(c.dt, {tokens, vocab_}, "logit gradient");
        c.dev.cross_entropy_backward(ce, static_cast<float>(c.loss_scale), dlogits);
        Linear l = bind(c, head_, p, &g);
        l.scale = scale_;
        const Tensor dh = s.make(c.dt, {tokens, d_}, "head input gradient");
        linear_backward(c, terms, l, terms.get("head.input"), dlogits, dh, false);
        s.release(dlogits);
        Buffer grad = c.buffer(tokens * d_ * dtype_size(c.dt), MemCategory::temporaries, "hidden-state gradient");
        norm_backward(c, terms, "final_norm", norm_, p, g, dh, Tensor{grad.data(), c.dt, {tokens, d_}}, false);
        c.grad[stream_index(model::Stream::decoder)] = std::move(grad);
    }

private:
    UnitIndex ix_;
    NormRef norm_;
    LinearRef head_;
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
