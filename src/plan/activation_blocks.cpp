// What each family's calls keep, term by term (plan/activations.hpp; the Builder in
// activation_terms.hpp).
#include "activation_terms.hpp"

namespace shardsim::plan::detail {

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
static void t5_ffn(Builder& b, const model::ModelSpec& m, const model::StackSpec& s, Stream st) {
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
    b.projected_attention("sa", attn[0], "SelfAttention", {"q", "k", "v", "o"});
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
        b.projected_attention("ca", attn[1], "EncDecAttention", {"q", "k", "v", "o"});
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
        b.projected_attention("ca", attn[1], "crossattention", {"q_proj", "k_proj", "v_proj", "out_proj"});
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

}  // namespace shardsim::plan::detail
