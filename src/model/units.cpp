#include "shardsim/model/units.hpp"

#include <algorithm>

namespace shardsim::model {

Elements TensorSpec::numel() const {
    std::int64_t n = 1;
    for (auto d : shape) n = checked_mul(n, d, "the element count of a tensor");
    return Elements(n);
}

std::string unit_kind_name(UnitKind k) {
    switch (k) {
        case UnitKind::embedding: return "embedding";
        case UnitKind::encoder_block: return "encoder_block";
        case UnitKind::decoder_block: return "decoder_block";
        case UnitKind::head: return "head";
    }
    return "?";
}

Elements Unit::params() const {
    Elements n;
    for (const auto& t : tensors) n += t.numel();
    return n;
}

Elements Unit::trainable_params() const {
    Elements n;
    for (const auto& t : tensors)
        if (t.trainable) n += t.numel();
    return n;
}

Elements total_params(const std::vector<Unit>& units) {
    Elements n;
    for (const auto& u : units) n += u.params();
    return n;
}

Elements trainable_params(const std::vector<Unit>& units) {
    Elements n;
    for (const auto& u : units) n += u.trainable_params();
    return n;
}

std::vector<std::string> lora_modules(Arch arch) {
    switch (arch) {
        case Arch::gpt2: return {"c_attn", "c_proj", "c_fc"};
        case Arch::llama: return {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
        case Arch::bloom: return {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"};
        case Arch::t5: return {"q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"};
        case Arch::codet5p: return {"qkv_proj", "out_proj", "fc_in", "fc_out", "q_proj", "k_proj", "v_proj"};
    }
    return {};
}

namespace {

// Appends tensors to one unit, following the conventions of the architecture's HF code.
class UnitBuilder {
public:
    UnitBuilder(Unit& unit, Stream stream) : u_(unit), stream_(stream) {}

    // nn.Linear stores [out, in]; GPT-2's Conv1D stores [in, out].
    void linear(const std::string& prefix, const std::string& module, std::int64_t out, std::int64_t in,
                bool bias, bool conv1d = false, Stream stream_override = Stream::decoder, bool use_override = false) {
        TensorSpec w;
        w.name = prefix + ".weight";
        w.shape = conv1d ? std::vector<std::int64_t>{in, out} : std::vector<std::int64_t>{out, in};
        w.role = TensorRole::linear;
        w.stream = use_override ? stream_override : stream_;
        w.module = module;
        w.in_features = in;
        w.out_features = out;
        u_.tensors.push_back(w);
        if (bias) {
            TensorSpec b;
            b.name = prefix + ".bias";
            b.shape = {out};
            b.role = TensorRole::linear_bias;
            b.stream = w.stream;
            b.module = module;
            u_.tensors.push_back(b);
        }
    }
    void norm(const std::string& prefix, std::int64_t d, bool bias) {
        TensorSpec w;
        w.name = prefix + ".weight";
        w.shape = {d};
        w.role = TensorRole::norm_weight;
        w.stream = stream_;
        u_.tensors.push_back(w);
        if (bias) {
            TensorSpec b = w;
            b.name = prefix + ".bias";
            b.role = TensorRole::norm_bias;
            u_.tensors.push_back(b);
        }
    }
    void table(const std::string& name, std::int64_t rows, std::int64_t cols, TensorRole role) {
        TensorSpec t;
        t.name = name;
        t.shape = {rows, cols};
        t.role = role;
        t.stream = stream_;
        u_.tensors.push_back(t);
    }

private:
    Unit& u_;
    Stream stream_;
};

Unit new_unit(std::vector<Unit>& units, std::string name, UnitKind kind, Stream stream, std::int64_t layer = -1) {
    Unit u;
    u.index = static_cast<int>(units.size());
    u.name = std::move(name);
    u.kind = kind;
    u.stream = stream;
    u.layer = layer;
    return u;
}

void build_gpt2(const ModelSpec& m, std::vector<Unit>& units) {
    const StackSpec& s = m.decoder;
    const std::int64_t d = s.hidden;
    Unit e = new_unit(units, "embed", UnitKind::embedding, Stream::decoder);
    UnitBuilder eb(e, Stream::decoder);
    eb.table("transformer.wte.weight", m.vocab, d, TensorRole::embedding);
    eb.table("transformer.wpe.weight", m.max_positions, d, TensorRole::position_table);
    units.push_back(e);
    for (std::int64_t i = 0; i < s.layers; ++i) {
        Unit u = new_unit(units, "block." + std::to_string(i), UnitKind::decoder_block, Stream::decoder, i);
        UnitBuilder b(u, Stream::decoder);
        const std::string p = "transformer.h." + std::to_string(i) + ".";
        b.norm(p + "ln_1", d, true);
        b.linear(p + "attn.c_attn", "c_attn", 3 * d, d, true, true);
        b.linear(p + "attn.c_proj", "c_proj", d, d, true, true);
        b.norm(p + "ln_2", d, true);
        b.linear(p + "mlp.c_fc", "c_fc", s.ffn, d, true, true);
        b.linear(p + "mlp.c_proj", "c_proj", d, s.ffn, true, true);
        units.push_back(u);
    }
    Unit h = new_unit(units, "head", UnitKind::head, Stream::decoder);
    UnitBuilder hb(h, Stream::decoder);
    hb.norm("transformer.ln_f", d, true);
    if (!m.tied_embeddings) hb.linear("lm_head", "lm_head", m.vocab, d, false);
    units.push_back(h);
}

void build_llama(const ModelSpec& m, std::vector<Unit>& units) {
    const StackSpec& s = m.decoder;
    const std::int64_t d = s.hidden;
    Unit e = new_unit(units, "embed", UnitKind::embedding, Stream::decoder);
    UnitBuilder(e, Stream::decoder).table("model.embed_tokens.weight", m.vocab, d, TensorRole::embedding);
    units.push_back(e);
    for (std::int64_t i = 0; i < s.layers; ++i) {
        Unit u = new_unit(units, "block." + std::to_string(i), UnitKind::decoder_block, Stream::decoder, i);
        UnitBuilder b(u, Stream::decoder);
        const std::string p = "model.layers." + std::to_string(i) + ".";
        b.norm(p + "input_layernorm", d, false);
        b.linear(p + "self_attn.q_proj", "q_proj", s.q_dim(), d, false);
        b.linear(p + "self_attn.k_proj", "k_proj", s.kv_dim(), d, false);
        b.linear(p + "self_attn.v_proj", "v_proj", s.kv_dim(), d, false);
        b.linear(p + "self_attn.o_proj", "o_proj", d, s.q_dim(), false);
        b.norm(p + "post_attention_layernorm", d, false);
        b.linear(p + "mlp.gate_proj", "gate_proj", s.ffn, d, false);
        b.linear(p + "mlp.up_proj", "up_proj", s.ffn, d, false);
        b.linear(p + "mlp.down_proj", "down_proj", d, s.ffn, false);
        units.push_back(u);
    }
    Unit h = new_unit(units, "head", UnitKind::head, Stream::decoder);
    UnitBuilder hb(h, Stream::decoder);
    hb.norm("model.norm", d, false);
    if (!m.tied_embeddings) hb.linear("lm_head", "lm_head", m.vocab, d, false);
    units.push_back(h);
}

void build_bloom(const ModelSpec& m, std::vector<Unit>& units) {
    const StackSpec& s = m.decoder;
    const std::int64_t d = s.hidden;
    Unit e = new_unit(units, "embed", UnitKind::embedding, Stream::decoder);
    UnitBuilder eb(e, Stream::decoder);
    eb.table("transformer.word_embeddings.weight", m.vocab, d, TensorRole::embedding);
    eb.norm("transformer.word_embeddings_layernorm", d, true);
    units.push_back(e);
    for (std::int64_t i = 0; i < s.layers; ++i) {
        Unit u = new_unit(units, "block." + std::to_string(i), UnitKind::decoder_block, Stream::decoder, i);
        UnitBuilder b(u, Stream::decoder);
        const std::string p = "transformer.h." + std::to_string(i) + ".";
        b.norm(p + "input_layernorm", d, true);
        b.linear(p + "self_attention.query_key_value", "query_key_value", 3 * d, d, true);
        b.linear(p + "self_attention.dense", "dense", d, d, true);
        b.norm(p + "post_attention_layernorm", d, true);
        b.linear(p + "mlp.dense_h_to_4h", "dense_h_to_4h", s.ffn, d, true);
        b.linear(p + "mlp.dense_4h_to_h", "dense_4h_to_h", d, s.ffn, true);
        units.push_back(u);
    }
    Unit h = new_unit(units, "head", UnitKind::head, Stream::decoder);
    UnitBuilder hb(h, Stream::decoder);
    hb.norm("transformer.ln_f", d, true);
    if (!m.tied_embeddings) hb.linear("lm_head", "lm_head", m.vocab, d, false);
    units.push_back(h);
}

void t5_ffn(UnitBuilder& b, const ModelSpec& m, const StackSpec& s, const std::string& p) {
    if (m.ffn_kind == FfnKind::gated_gelu) {
        b.linear(p + "DenseReluDense.wi_0", "wi_0", s.ffn, s.hidden, false);
        b.linear(p + "DenseReluDense.wi_1", "wi_1", s.ffn, s.hidden, false);
    } else {
        b.linear(p + "DenseReluDense.wi", "wi", s.ffn, s.hidden, false);
    }
    b.linear(p + "DenseReluDense.wo", "wo", s.hidden, s.ffn, false);
    b.norm(p + "layer_norm", s.hidden, false);
}

void t5_attention(UnitBuilder& b, const StackSpec& s, const std::string& p, bool cross) {
    const Stream kv = cross ? Stream::encoder : Stream::decoder;
    b.linear(p + "q", "q", s.q_dim(), s.hidden, false);
    b.linear(p + "k", "k", s.kv_dim(), s.hidden, false, false, kv, cross);
    b.linear(p + "v", "v", s.kv_dim(), s.hidden, false, false, kv, cross);
    b.linear(p + "o", "o", s.hidden, s.q_dim(), false);
}

void build_t5(const ModelSpec& m, std::vector<Unit>& units) {
    Unit e = new_unit(units, "embed", UnitKind::embedding, Stream::encoder);
    UnitBuilder(e, Stream::encoder).table("shared.weight", m.vocab, m.encoder.hidden, TensorRole::embedding);
    units.push_back(e);
    for (const bool enc : {true, false}) {
        const StackSpec& s = enc ? m.encoder : m.decoder;
        const std::string stack = enc ? "encoder" : "decoder";
        const Stream stream = enc ? Stream::encoder : Stream::decoder;
        for (std::int64_t i = 0; i < s.layers; ++i) {
            Unit u = new_unit(units, stack + ".block." + std::to_string(i),
                              enc ? UnitKind::encoder_block : UnitKind::decoder_block, stream, i);
            UnitBuilder b(u, stream);
            const std::string p = stack + ".block." + std::to_string(i) + ".layer.";
            t5_attention(b, s, p + "0.SelfAttention.", false);
            // Only the first block of each stack owns the relative position bias; the others reuse it.
            if (i == 0) b.table(p + "0.SelfAttention.relative_attention_bias.weight", m.relative_buckets, s.heads,
                                TensorRole::relative_bias);
            b.norm(p + "0.layer_norm", s.hidden, false);
            int ffn_layer = 1;
            if (!enc && i >= s.layers - s.cross_attention_layers) {
                u.cross_attention = true;
                t5_attention(b, s, p + "1.EncDecAttention.", true);
                b.norm(p + "1.layer_norm", s.hidden, false);
                ffn_layer = 2;
            }
            t5_ffn(b, m, s, p + std::to_string(ffn_layer) + ".");
            // The stack's final norm rides with its last block: a unit of its own would cost a
            // collective for 2*hidden bytes.
            if (enc && i == s.layers - 1) b.norm("encoder.final_layer_norm", s.hidden, false);
            units.push_back(u);
        }
    }
    Unit h = new_unit(units, "head", UnitKind::head, Stream::decoder);
    UnitBuilder hb(h, Stream::decoder);
    hb.norm("decoder.final_layer_norm", m.decoder.hidden, false);
    if (!m.tied_embeddings) hb.linear("lm_head", "lm_head", m.vocab, m.decoder.hidden, false);
    units.push_back(h);
}

void codegen_block(UnitBuilder& b, const StackSpec& s, const std::string& p) {
    b.norm(p + "ln_1", s.hidden, true);
    b.linear(p + "attn.qkv_proj", "qkv_proj", 3 * s.hidden, s.hidden, false);
    b.linear(p + "attn.out_proj", "out_proj", s.hidden, s.hidden, false);
    b.linear(p + "mlp.fc_in", "fc_in", s.ffn, s.hidden, true);
    b.linear(p + "mlp.fc_out", "fc_out", s.hidden, s.ffn, true);
}

void build_codet5p(const ModelSpec& m, std::vector<Unit>& units) {
    const StackSpec& es = m.encoder;
    const StackSpec& ds = m.decoder;
    Unit ee = new_unit(units, "encoder.embed", UnitKind::embedding, Stream::encoder);
    UnitBuilder(ee, Stream::encoder).table("encoder.wte.weight", m.vocab, es.hidden, TensorRole::embedding);
    units.push_back(ee);
    for (std::int64_t i = 0; i < es.layers; ++i) {
        Unit u = new_unit(units, "encoder.block." + std::to_string(i), UnitKind::encoder_block, Stream::encoder, i);
        UnitBuilder b(u, Stream::encoder);
        codegen_block(b, es, "encoder.h." + std::to_string(i) + ".");
        if (i == es.layers - 1) {
            b.norm("encoder.ln_f", es.hidden, true);
            b.linear("enc_to_dec_proj", "enc_to_dec_proj", ds.hidden, es.hidden, true);
        }
        units.push_back(u);
    }
    Unit de = new_unit(units, "decoder.embed", UnitKind::embedding, Stream::decoder);
    UnitBuilder(de, Stream::decoder).table("decoder.transformer.wte.weight", m.vocab, ds.hidden, TensorRole::embedding);
    units.push_back(de);
    for (std::int64_t i = 0; i < ds.layers; ++i) {
        Unit u = new_unit(units, "decoder.block." + std::to_string(i), UnitKind::decoder_block, Stream::decoder, i);
        UnitBuilder b(u, Stream::decoder);
        const std::string p = "decoder.transformer.h." + std::to_string(i) + ".";
        if (i >= ds.layers - ds.cross_attention_layers) {
            u.cross_attention = true;
            b.norm(p + "ln_cross", ds.hidden, true);
            b.linear(p + "crossattention.q_proj", "q_proj", ds.hidden, ds.hidden, false);
            b.linear(p + "crossattention.k_proj", "k_proj", ds.hidden, ds.hidden, false, false, Stream::encoder, true);
            b.linear(p + "crossattention.v_proj", "v_proj", ds.hidden, ds.hidden, false, false, Stream::encoder, true);
            b.linear(p + "crossattention.out_proj", "out_proj", ds.hidden, ds.hidden, false);
        }
        codegen_block(b, ds, p);
        units.push_back(u);
    }
    Unit h = new_unit(units, "head", UnitKind::head, Stream::decoder);
    UnitBuilder hb(h, Stream::decoder);
    hb.norm("decoder.transformer.ln_f", ds.hidden, true);
    hb.linear("decoder.lm_head", "lm_head", m.vocab, ds.hidden, true);
    units.push_back(h);
}

// LoRA (Hu et al. 2021): the base is frozen; each targeted projection gets A [rank, in] and
// B [out, rank], both trainable, named as PEFT names them.
void apply_lora(std::vector<Unit>& units, const LoraSpec& lora) {
    for (auto& u : units) {
        std::vector<TensorSpec> out;
        for (auto t : u.tensors) {
            t.trainable = false;
            out.push_back(t);
            const bool targeted = t.role == TensorRole::linear &&
                                  std::find(lora.targets.begin(), lora.targets.end(), t.module) != lora.targets.end();
            if (!targeted) continue;
            const std::string base = t.name.substr(0, t.name.size() - std::string(".weight").size());
            TensorSpec a;
            a.name = base + ".lora_A.weight";
            a.shape = {lora.rank, t.in_features};
            a.role = TensorRole::lora_a;
            a.stream = t.stream;
            a.module = t.module;
            a.in_features = t.in_features;
            a.out_features = lora.rank;
            TensorSpec b = a;
            b.name = base + ".lora_B.weight";
            b.shape = {t.out_features, lora.rank};
            b.role = TensorRole::lora_b;
            b.in_features = lora.rank;
            b.out_features = t.out_features;
            out.push_back(a);
            out.push_back(b);
        }
        u.tensors = std::move(out);
    }
}

}  // namespace

std::vector<Unit> build_units(const ModelSpec& spec, const LoraSpec& lora) {
    std::vector<Unit> units;
    switch (spec.arch) {
        case Arch::gpt2: build_gpt2(spec, units); break;
        case Arch::llama: build_llama(spec, units); break;
        case Arch::bloom: build_bloom(spec, units); break;
        case Arch::t5: build_t5(spec, units); break;
        case Arch::codet5p: build_codet5p(spec, units); break;
    }
    if (lora.rank > 0) apply_lora(units, lora);
    return units;
}

std::vector<ProgramStep> forward_program(const ModelSpec& spec, const std::vector<Unit>& units) {
    std::vector<ProgramStep> steps;
    int embed = -1;
    for (const auto& u : units) {
        if (u.kind == UnitKind::embedding && embed < 0) embed = u.index;
        ProgramStep s;
        s.unit = u.index;
        s.stream = u.stream;
        s.reads = {u.index};
        // T5 feeds the shared embedding to the decoder as well: call it again before the decoder.
        if (spec.arch == Arch::t5 && u.kind == UnitKind::decoder_block && u.layer == 0)
            steps.push_back({embed, Stream::decoder, {embed}});
        if (u.kind == UnitKind::head && spec.tied_embeddings) s.reads.push_back(embed);
        steps.push_back(s);
    }
    return steps;
}

}  // namespace shardsim::model
