#pragma once
// The activation terms of one call, built term by term (plan/activations.hpp says what each family
// keeps and why): the Builder the family functions write through, and the family functions
// (activation_blocks.cpp) that call_activations dispatches to. Internal to plan/.
#include <array>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "shardsim/core/checked.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/plan/activations.hpp"

namespace shardsim::plan::detail {

// What an overflow here names: the activation sizes grow with micro_batch x sequence length (and
// its square for attention scores) x the model's widths.
inline constexpr const char* kWhat = "activation bytes (micro_batch x sequence length x model widths)";

using model::Arch;
using model::Stream;
using model::Unit;

inline constexpr std::int64_t kStat = 4;   // fp32 statistics
inline constexpr std::int64_t kIndex = 4;  // int32 token ids / targets

// Any tensor of `unit` whose name contains one of `fragments` is trainable (LoRA adapters of a
// module carry the module's name, so they count).
inline bool any_trainable(const Unit& unit, std::initializer_list<const char*> fragments) {
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
    // An attention whose q, k, v and output projections are modules of their own, named
    // `<module>.<names[i]>` (T5's attentions, CodeT5+'s cross-attention): its terms, then its
    // projections in forward order; q, k and v write their terms, the output projection's output
    // is added into the residual in place.
    void projected_attention(const std::string& p, const model::AttentionShape& a, const std::string& module,
                             const std::array<const char*, 4>& names) {
        attention(p, a);
        projection(module + "." + names[0], p + ".q");
        projection(module + "." + names[1], p + ".k");
        projection(module + "." + names[2], p + ".v");
        const std::string out = module + "." + names[3];
        context_if(p, a, {out.c_str()});
        projection(out);
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

// The families' blocks and the embedding and head calls (activation_blocks.cpp).
bool encoder_output_saved(const ActivationInputs& in);
void classic_block(Builder& b, const model::ModelSpec& m, const model::AttentionShape& a);  // GPT-2, BLOOM
void llama_block(Builder& b, const model::ModelSpec& m, const model::AttentionShape& a);
void t5_block(Builder& b, const ActivationInputs& in, const Unit& u, const std::vector<model::AttentionShape>& attn);
void codet5p_block(Builder& b, const ActivationInputs& in, const Unit& u, const std::vector<model::AttentionShape>& attn);
void embedding_call(Builder& b, const ActivationInputs& in, const Unit& u, Stream stream);
void head_call(Builder& b, const ActivationInputs& in, const Unit& u, const model::ProgramStep& step);

}  // namespace shardsim::plan::detail
