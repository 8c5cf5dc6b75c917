#include "shardsim/plan/activations.hpp"

#include <algorithm>

#include "shardsim/core/error.hpp"

#include "shardsim/model/flops.hpp"

namespace shardsim::plan {

namespace {
// What an overflow here names: the activation sizes grow with micro_batch x sequence length (and
// its square for attention scores) x the model's widths.
constexpr const char* kWhat = "activation bytes (micro_batch x sequence length x model widths)";
}  // namespace

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

namespace {

using model::Arch;
using model::Stream;
using model::Unit;

constexpr std::int64_t kStat = 4;   // fp32 statistics
constexpr std::int64_t kIndex = 4;  // int32 token ids / targets

// Any tensor of `unit` whose name contains one of `fragments` is trainable (LoRA adapters of a
// module carry the module's name, so they count).
bool any_trainable(const Unit& unit, std::initializer_list<const char*> fragments) {
    for (const auto& t : unit.tensors) {
        if (!t.trainable) continue;
        for (const char* f : fragments)
            if (t.name.find(f) != std::string::npos) return true;
    }
    return false;
}

class Builder {
public:
    Builder(const ModelBehaviour& rules, const Unit& unit, const model::BatchShape& shape)
        : unit_(unit), shape_(shape), rules_(rules), dt_(dtype_size(rules_.compute)) {}

    void add(const std::string& name, std::int64_t bytes, bool kept = false, bool input = false) {
        out_.terms.push_back({name, bytes, kept, input});
    }
    // A tensor of `width` values per token of `stream`, in the activation dtype.
    void act(const std::string& name, Stream stream, std::int64_t width, bool kept = false) {
        add(name, checked_product({shape_.tokens(stream), width, dt_}, kWhat), kept);
    }
    // Hidden dropout on the tensor `name` (width values per token): its 1-byte mask.
    void mask(const std::string& name, Stream stream, std::int64_t width) {
        if (rules_.hidden_dropout > 0) add(name + ".mask", checked_mul(shape_.tokens(stream), width, kWhat));
    }
    // A norm keeps its input; a block's first norm's input is the block's input (kept when
    // checkpointing, and produced by the previous call).
    void norm(const std::string& name, Stream stream, std::int64_t width, bool layernorm, bool block_input,
              bool call_input = false) {
        add(name + ".input", checked_product({shape_.tokens(stream), width, dt_}, kWhat), block_input, block_input || call_input);
        add(name + ".stats", checked_product({shape_.tokens(stream), layernorm ? 2 : 1, kStat}, kWhat));
    }
    void input_if(const std::string& name, Stream stream, std::int64_t width, std::initializer_list<const char*> consumers) {
        if (any_trainable(unit_, consumers)) act(name, stream, width);
    }
    // LoRA middle activations of every adapted projection in this unit.
    void lora_middles(const std::string& fragment_filter = "") {
        for (const auto& t : unit_.tensors) {
            if (t.role != model::TensorRole::lora_a) continue;
            if (!fragment_filter.empty() && t.name.find(fragment_filter) == std::string::npos) continue;
            act(t.name.substr(0, t.name.size() - std::string(".lora_A.weight").size()) + ".lora_mid", t.stream,
                t.out_features);
        }
    }
    // `qk_fp32`: eager attention upcasts q and k before the score matmul, which keeps the fp32
    // copies (CodeGen's _attn).
    void attention(const std::string& p, const model::AttentionShape& a, bool qk_fp32 = false) {
        const std::int64_t sq = shape_.len(a.q_stream), sk = shape_.len(a.kv_stream);
        const std::int64_t elems = checked_product({shape_.batch, a.heads, sq, sk}, kWhat);
        attention_prefixes_.push_back(p);
        const std::int64_t qk = qk_fp32 && !rules_.fused_attention ? kStat : dt_;
        add(p + ".q", checked_product({shape_.tokens(a.q_stream), a.heads, a.head_dim, qk}, kWhat));
        add(p + ".k", checked_product({shape_.tokens(a.kv_stream), a.kv_heads, a.head_dim, qk}, kWhat));
        act(p + ".v", a.kv_stream, checked_mul(a.kv_heads, a.head_dim, kWhat));
        if (rules_.fused_attention) {
            act(p + ".out", a.q_stream, checked_mul(a.heads, a.head_dim, kWhat));
            add(p + ".lse", checked_product({shape_.batch, a.heads, sq, kStat}, kWhat));
        } else {
            if (rules_.separate_softmax()) add(p + ".softmax", checked_mul(elems, dtype_size(rules_.softmax), kWhat));
            add(p + ".probs", checked_mul(elems, dt_, kWhat));
            if (rules_.attention_dropout > 0) add(p + ".probs.mask", elems);
            // The fp32 scores live until the softmax exists; what forward allocates after them may
            // cover them (see finish()).
            scores_.push_back({checked_mul(elems, kStat, kWhat), out_.saved_bytes()});
        }
        // Backward: the gradients of the scores and of q, k and v, in the activation dtype.
        const std::int64_t qkv_tokens =
            checked_add(shape_.tokens(a.q_stream), checked_mul(2, shape_.tokens(a.kv_stream), kWhat), kWhat);
        const std::int64_t grads = checked_product({qkv_tokens, a.heads, a.head_dim, dt_}, kWhat);
        out_.backward_workspace = std::max(
            out_.backward_workspace, checked_add(rules_.fused_attention ? 0 : checked_mul(elems, dt_, kWhat), grads, kWhat));
    }
    // Forward's transient peak above what it leaves: an attention's fp32 scores, less whatever
    // the call allocates after its probabilities.
    void finish() {
        for (const auto& [scores, saved_then] : scores_)
            out_.forward_workspace = std::max(out_.forward_workspace, scores - (out_.saved_bytes() - saved_then));
    }
    // The attention output as the output projection's kept input (sdpa / flash keep it anyway, as `out`).
    void context_if(const std::string& p, const model::AttentionShape& a, std::initializer_list<const char*> consumers) {
        if (!rules_.fused_attention && any_trainable(unit_, consumers)) act(p + ".context", a.q_stream, a.heads * a.head_dim);
    }
    // Backward of an MLP: the gradients of its widest activations, in the activation dtype, and
    // with hidden dropout the gradient of the dropped branch output (`hidden` wide).
    void mlp_backward(Stream s, std::int64_t ffn, int tensors, std::int64_t hidden) {
        const std::int64_t dropped = rules_.hidden_dropout > 0 ? checked_product({shape_.tokens(s), hidden, dt_}, kWhat) : 0;
        out_.backward_workspace = std::max(
            out_.backward_workspace, checked_add(checked_product({shape_.tokens(s), ffn, dt_, tensors}, kWhat), dropped, kWhat));
    }

    // A projection of the block, in the order the family's forward calls it: the weight named
    // "<...>.<suffix>.weight" (or "<suffix>.weight"), and the term its output is, if any, or the
    // terms that are views of it.
    void projection(const std::string& suffix, const std::string& term = "", std::vector<std::string> parts = {}) {
        const std::string end = suffix + ".weight";
        for (const auto& t : unit_.tensors) {
            if (t.role != model::TensorRole::linear) continue;
            const bool match = t.name == end || (t.name.size() > end.size() &&
                                                 t.name.compare(t.name.size() - end.size() - 1, end.size() + 1, "." + end) == 0);
            if (!match) continue;
            const std::int64_t bytes = checked_product({shape_.tokens(t.stream), t.out_features, dt_}, kWhat);
            projections_.push_back({t.name.substr(0, t.name.size() - std::string(".weight").size()), term, std::move(parts), bytes});
            return;
        }
        SHARDSIM_ASSERT(false, "unit " + unit_.name + " has no projection " + suffix);
    }
    // Selective checkpointing of a checkpointed block (activations.hpp): the 1st, 3rd, ...
    // projection keeps its output (and its LoRA middle activation), sdpa / flash their outputs.
    void select() {
        for (std::size_t i = 0; i < projections_.size(); i += 2) {
            const Projection& p = projections_[i];
            for (auto& t : out_.terms)
                if (t.name == p.module + ".lora_mid") t.kept = true;
            if (!p.parts.empty()) {
                for (const auto& part : p.parts) keep(part);
                out_.kept_outputs.push_back({p.module, "", p.parts});
                continue;
            }
            const std::string term = p.term.empty() ? p.module + ".out" : p.term;
            if (p.term.empty())
                add(term, p.bytes, true);
            else
                keep(term);
            out_.kept_outputs.push_back({p.module, term, {}});
        }
        if (!rules_.fused_attention) return;
        for (const auto& a : attention_prefixes_) {
            keep(a + ".out");
            keep(a + ".lse");
            out_.attention_kept = true;
        }
    }

    std::int64_t dt() const { return dt_; }
    const ModelBehaviour& rules() const { return rules_; }
    CallActivations& out() { return out_; }

private:
    void keep(const std::string& name) {
        for (auto& t : out_.terms)
            if (t.name == name) {
                t.kept = true;
                return;
            }
        SHARDSIM_ASSERT(false, "selective checkpointing keeps a term the call does not save: " + name);
    }

    struct Projection {
        std::string module, term;
        std::vector<std::string> parts;
        std::int64_t bytes = 0;  // its output
    };
    std::vector<Projection> projections_;
    std::vector<std::string> attention_prefixes_;
    const Unit& unit_;
    const model::BatchShape& shape_;
    ModelBehaviour rules_;
    std::int64_t dt_;
    CallActivations out_;
    std::vector<std::pair<std::int64_t, std::int64_t>> scores_;  // fp32 scores bytes, bytes saved before them
};

// Some decoder block reads the encoder output through a trainable cross-attention k or v, or the
// blocks are checkpointed: recomputing a cross-attention block needs the encoder output again.
bool encoder_output_saved(const ActivationInputs& in) {
    if (in.checkpointing != config::Checkpointing::none) return true;
    for (const auto& u : *in.units)
        if (u.cross_attention && any_trainable(u, {"EncDecAttention.k", "EncDecAttention.v", "crossattention.k_proj",
                                                    "crossattention.v_proj"}))
            return true;
    return false;
}

// GPT-2 and BLOOM: x + dropout(proj(attn(LN(x)))), then + dropout(fc2(gelu(fc1(LN(.))))): GPT-2's
// resid_dropout and mlp.dropout, BLOOM's dropout_add.
void classic_block(Builder& b, const model::ModelSpec& m, const model::AttentionShape& a) {
    const std::int64_t h = m.decoder.hidden, f = m.decoder.ffn;
    const bool gpt2 = m.arch == Arch::gpt2;
    b.norm(gpt2 ? "ln_1" : "input_layernorm", Stream::decoder, h, true, true);
    b.input_if("attn.input", Stream::decoder, h, {gpt2 ? "attn.c_attn" : "query_key_value"});
    b.lora_middles();
    // GPT-2 splits c_attn's output into q, k, v as views; BLOOM's reshape copies them.
    if (gpt2)
        b.projection("attn.c_attn", "", {"attn.q", "attn.k", "attn.v"});
    else
        b.projection("self_attention.query_key_value");
    b.attention("attn", a);
    b.context_if("attn", a, {gpt2 ? "attn.c_proj" : "self_attention.dense"});
    b.projection(gpt2 ? "attn.c_proj" : "self_attention.dense");
    b.mask("attn.out", Stream::decoder, h);
    b.norm(gpt2 ? "ln_2" : "post_attention_layernorm", Stream::decoder, h, true, false);
    b.input_if("mlp.input", Stream::decoder, h, {gpt2 ? "mlp.c_fc" : "dense_h_to_4h"});
    b.act("mlp.fc_out", Stream::decoder, f);
    b.projection(gpt2 ? "mlp.c_fc" : "mlp.dense_h_to_4h", "mlp.fc_out");
    b.input_if("mlp.act", Stream::decoder, f, {gpt2 ? "mlp.c_proj" : "dense_4h_to_h"});
    b.projection(gpt2 ? "mlp.c_proj" : "mlp.dense_4h_to_h");
    b.mask("mlp.out", Stream::decoder, h);
    b.mlp_backward(Stream::decoder, f, 2, h);
}

// Llama has no hidden dropout (only attention_dropout on the probabilities).
void llama_block(Builder& b, const model::ModelSpec& m, const model::AttentionShape& a) {
    const std::int64_t h = m.decoder.hidden, f = m.decoder.ffn;
    b.norm("input_layernorm", Stream::decoder, h, false, true);
    b.input_if("attn.input", Stream::decoder, h, {"q_proj", "k_proj", "v_proj"});
    b.lora_middles();
    b.attention("attn", a);
    b.projection("self_attn.q_proj");  // rotated in place: kept as a term of its own
    b.projection("self_attn.k_proj");
    b.projection("self_attn.v_proj", "attn.v");
    b.context_if("attn", a, {"o_proj"});
    b.projection("self_attn.o_proj");
    b.norm("post_attention_layernorm", Stream::decoder, h, false, false);
    b.input_if("mlp.input", Stream::decoder, h, {"gate_proj", "up_proj"});
    b.act("mlp.gate", Stream::decoder, f);
    b.act("mlp.act", Stream::decoder, f);
    b.act("mlp.up", Stream::decoder, f);
    b.projection("mlp.gate_proj", "mlp.gate");
    b.projection("mlp.up_proj", "mlp.up");
    b.input_if("mlp.prod", Stream::decoder, f, {"down_proj"});
    b.projection("mlp.down_proj");
    b.mlp_backward(Stream::decoder, f, 3, h);
}

// T5's FFN: wo(dropout(gelu(wi_0 x) * wi_1 x)) or wo(dropout(relu(wi x))). ReLU keeps its output
// and, with dropout, wo reads another tensor, the dropped one.
void t5_ffn(Builder& b, const model::ModelSpec& m, const model::StackSpec& s, Stream st) {
    if (m.ffn_kind == model::FfnKind::gated_gelu) {
        b.act("ffn.gate", st, s.ffn);
        b.act("ffn.act", st, s.ffn);
        b.act("ffn.up", st, s.ffn);
        b.projection("DenseReluDense.wi_0", "ffn.gate");
        b.projection("DenseReluDense.wi_1", "ffn.up");
        b.projection("DenseReluDense.wo");
        b.mask("ffn.prod", st, s.ffn);
        b.input_if("ffn.prod", st, s.ffn, {"DenseReluDense.wo"});
        b.mlp_backward(st, s.ffn, 3, s.hidden);
        return;
    }
    b.act("ffn.act", st, s.ffn);  // ReLU keeps its output, which wo reads too without dropout
    b.projection("DenseReluDense.wi");  // ReLU runs in place on it
    b.projection("DenseReluDense.wo");
    if (b.rules().hidden_dropout > 0) {
        b.mask("ffn.act", st, s.ffn);
        b.input_if("ffn.dropped", st, s.ffn, {"DenseReluDense.wo"});
    }
    b.mlp_backward(st, s.ffn, 2, s.hidden);
}

// T5Block: every sublayer adds dropout(its output) to the residual (T5LayerSelfAttention,
// T5LayerCrossAttention, T5LayerFF); T5Stack drops the encoder's final-norm output.
void t5_block(Builder& b, const ActivationInputs& in, const Unit& u, const std::vector<model::AttentionShape>& attn) {
    const auto& m = *in.model;
    const auto& s = model::stack_of(m, u);
    const Stream st = u.stream;
    b.norm("layer0", st, s.hidden, false, true);
    b.input_if("sa.input", st, s.hidden, {"SelfAttention.q", "SelfAttention.k", "SelfAttention.v"});
    b.lora_middles("SelfAttention");
    b.attention("sa", attn[0]);
    b.projection("SelfAttention.q", "sa.q");
    b.projection("SelfAttention.k", "sa.k");
    b.projection("SelfAttention.v", "sa.v");
    b.context_if("sa", attn[0], {"SelfAttention.o"});
    b.projection("SelfAttention.o");
    b.mask("sa.out", st, s.hidden);
    if (u.layer == 0) {
        // The stack's position bias (heads x s x s, shared by the batch) is made by block 0 and
        // read by every block of the stack.
        const std::int64_t sl = in.shape.len(st);
        b.add("position_bias", checked_product({s.heads, sl, sl, b.dt()}, kWhat), true);
    }
    int ffn_layer = 1;
    if (u.cross_attention) {
        b.norm("layer1", st, s.hidden, false, false);
        b.input_if("ca.input", st, s.hidden, {"EncDecAttention.q"});
        b.lora_middles("EncDecAttention");
        b.attention("ca", attn[1]);
        b.projection("EncDecAttention.q", "ca.q");
        b.projection("EncDecAttention.k", "ca.k");
        b.projection("EncDecAttention.v", "ca.v");
        b.context_if("ca", attn[1], {"EncDecAttention.o"});
        b.projection("EncDecAttention.o");
        b.mask("ca.out", st, s.hidden);
        ffn_layer = 2;
    }
    const std::string ln = "layer" + std::to_string(ffn_layer);
    b.norm(ln, st, s.hidden, false, false);
    b.input_if("ffn.input", st, s.hidden, {"DenseReluDense.wi"});
    b.lora_middles("DenseReluDense");
    t5_ffn(b, m, s, st);
    b.mask("ffn.out", st, s.hidden);
    if (st == Stream::encoder && u.layer == s.layers - 1) {
        b.norm("final_layer_norm", st, s.hidden, false, false);
        b.mask("encoder.output", st, s.hidden);
        if (encoder_output_saved(in)) b.act("encoder.output", st, s.hidden, true);
    }
}

// CodeGen's block (attention and MLP outputs dropped by resid_dropout / mlp.dropout), with the
// cross-attention output dropped alike.
void codet5p_block(Builder& b, const ActivationInputs& in, const Unit& u, const std::vector<model::AttentionShape>& attn) {
    const auto& m = *in.model;
    const auto& s = model::stack_of(m, u);
    const Stream st = u.stream;
    bool first_norm = true;
    if (u.cross_attention) {
        b.norm("ln_cross", st, s.hidden, true, true);
        first_norm = false;
        b.input_if("ca.input", st, s.hidden, {"crossattention.q_proj"});
        b.lora_middles("crossattention");
        b.attention("ca", attn[1]);
        b.projection("crossattention.q_proj", "ca.q");
        b.projection("crossattention.k_proj", "ca.k");
        b.projection("crossattention.v_proj", "ca.v");
        b.context_if("ca", attn[1], {"crossattention.out_proj"});
        b.projection("crossattention.out_proj");
        b.mask("ca.out", st, s.hidden);
    }
    b.norm("ln_1", st, s.hidden, true, first_norm);
    b.input_if("attn.input", st, s.hidden, {"attn.qkv_proj", "mlp.fc_in"});
    b.lora_middles(".attn.");
    b.lora_middles(".mlp.");
    b.attention("attn", attn[0], true);
    b.projection("attn.qkv_proj");  // split, then q and k rotated and upcast: its own term
    b.context_if("attn", attn[0], {".attn.out_proj"});
    b.projection("attn.out_proj");
    b.mask("attn.out", st, s.hidden);
    b.act("mlp.fc_out", st, s.ffn);  // fc_in's output
    b.projection("mlp.fc_in", "mlp.fc_out");
    b.input_if("mlp.act", st, s.ffn, {"mlp.fc_out"});
    b.projection("mlp.fc_out");
    b.mask("mlp.out", st, s.hidden);
    b.mlp_backward(st, s.ffn, 2, s.hidden);
    if (st == Stream::encoder && u.layer == s.layers - 1) {
        b.norm("ln_f", st, s.hidden, true, false);
        b.input_if("proj.input", st, s.hidden, {"enc_to_dec_proj"});
        b.lora_middles("enc_to_dec_proj");
        const bool saved = encoder_output_saved(in);
        if (saved) b.act("encoder.output", st, m.decoder.hidden, true);
        b.projection("enc_to_dec_proj", saved ? "encoder.output" : "");
    }
}

// The embedding's output is dropped where the family does it: GPT-2's drop (embd_pdrop), T5Stack's
// dropout of inputs_embeds, CodeGen's drop. BLOOM (a LayerNorm instead) and Llama have none.
void embedding_call(Builder& b, const ActivationInputs& in, const Unit& u, Stream stream) {
    const auto& m = *in.model;
    if (u.tensors.front().trainable) b.add("ids", checked_mul(in.shape.tokens(stream), kIndex, kWhat));
    if (m.embedding_norm) b.norm("word_embeddings_layernorm", stream, m.decoder.hidden, true, false);
    if (m.arch == Arch::gpt2 || m.arch == Arch::t5 || m.arch == Arch::codet5p)
        b.mask("hidden", stream, stream == Stream::encoder ? m.encoder.hidden : m.decoder.hidden);
}

// The head: final norm (T5: then T5Stack's dropout), the projection to the vocabulary and the loss.
void head_call(Builder& b, const ActivationInputs& in, const Unit& u, const model::ProgramStep& step) {
    const auto& m = *in.model;
    const std::int64_t h = m.decoder.hidden;
    const model::BatchShape& shape = in.shape;
    const std::int64_t tv = checked_mul(shape.tokens(Stream::decoder), m.vocab, kWhat);
    b.norm("final_norm", Stream::decoder, h, m.norm == model::NormKind::layernorm, false, true);
    if (m.arch == Arch::t5) b.mask("head.input", Stream::decoder, h);
    bool head_trainable = any_trainable(u, {"lm_head"});
    if (m.tied_embeddings) head_trainable = in.units->at(static_cast<std::size_t>(step.reads.at(1))).tensors.front().trainable;
    if (head_trainable) b.act("head.input", Stream::decoder, h);
    b.lora_middles();
    b.add("logits", checked_mul(tv, b.dt(), kWhat));
    CallActivations& o = b.out();
    if (b.rules().fused_loss) {
        // The kernel writes the logits' gradient into them in forward: nothing transient of B.S.V.
        o.forward_workspace = 0;
        o.backward_workspace = 0;
    } else {
        // Forward: logits.float() is an fp32 copy next to the logits and the log-softmax (none
        // in an fp32 model: .float() returns the tensor itself). Backward: the fp32 gradient of
        // the logits, then its cast to the model dtype. A loss on the logits as they are (T5's
        // CrossEntropyLoss on lm_logits) keeps its log-softmax in the model dtype, and backward
        // makes the logits' gradient in that dtype.
        const bool upcast = b.rules().loss_fp32 && b.dt() != kStat;
        const std::int64_t kept = b.rules().loss_fp32 ? kStat : b.dt();
        b.add("log_softmax", checked_mul(tv, kept, kWhat));
        o.forward_workspace = upcast ? checked_mul(tv, kStat, kWhat) : 0;
        o.backward_workspace = checked_add(checked_mul(tv, kept, kWhat), upcast ? checked_mul(tv, b.dt(), kWhat) : 0, kWhat);
    }
    b.add("targets", checked_mul(shape.tokens(Stream::decoder), kIndex, kWhat));
}

}  // namespace

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
