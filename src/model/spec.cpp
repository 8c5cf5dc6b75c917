#include "shardsim/model/spec.hpp"

#include <algorithm>
#include <limits>

#include "shardsim/config/embedded.hpp"
#include "shardsim/config/job.hpp"
#include "shardsim/config/limits.hpp"
#include "shardsim/model/units.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::model {

using config::KeySpec;
using config::ValueType;

std::string arch_name(Arch a) {
    switch (a) {
        case Arch::gpt2: return "gpt2";
        case Arch::llama: return "llama";
        case Arch::bloom: return "bloom";
        case Arch::t5: return "t5";
        case Arch::codet5p: return "codet5p";
    }
    return "?";
}

std::string ffn_kind_name(FfnKind f) {
    switch (f) {
        case FfnKind::gelu: return "gelu";
        case FfnKind::relu: return "relu";
        case FfnKind::gated_gelu: return "gated_gelu";
        case FfnKind::swiglu: return "swiglu";
    }
    return "?";
}

std::string norm_kind_name(NormKind n) { return n == NormKind::layernorm ? "layernorm" : "rmsnorm"; }

std::string position_kind_name(PositionKind p) {
    switch (p) {
        case PositionKind::learned: return "learned";
        case PositionKind::rotary: return "rotary";
        case PositionKind::alibi: return "alibi";
        case PositionKind::relative_bias: return "relative_bias";
    }
    return "?";
}

namespace {

const std::vector<std::string> kArchs = {"gpt2", "llama", "bloom", "t5", "codet5p"};
const std::vector<std::string> kFfnKinds = {"gelu", "relu", "gated_gelu", "swiglu"};

KeySpec make(std::string section, std::string key, ValueType type, std::string def, bool required,
             double min, std::string help, double max = std::numeric_limits<double>::infinity()) {
    KeySpec k;
    k.section = std::move(section);
    k.key = std::move(key);
    k.type = type;
    k.default_value = std::move(def);
    k.required = required;
    k.min = min;
    k.max = max;
    k.help = std::move(help);
    return k;
}

// The keys a stack must give when its section is present (the decoder's always is).
const std::vector<std::string> kStackSizes = {"layers", "hidden", "heads", "ffn"};

void add_stack_keys(config::Schema& s, const std::string& stack, bool required) {
    namespace limits = config::limits;
    const std::string def = required ? "" : "0";
    const double lo = required ? 1 : 0;
    const auto max = [](std::int64_t m) { return static_cast<double>(m); };
    s.push_back(make(stack, "layers", ValueType::integer, def, required, lo,
                     "transformer blocks (at most 65,536; published models have a few hundred)", max(limits::kLayers)));
    s.push_back(make(stack, "hidden", ValueType::integer, def, required, lo, "model width d (at most 2^20)", max(limits::kHidden)));
    s.push_back(make(stack, "heads", ValueType::integer, def, required, lo, "attention heads (at most 65,536)", max(limits::kHeads)));
    s.push_back(make(stack, "kv_heads", ValueType::integer, "0", false, 0, "key/value heads (0: same as heads)",
                     max(limits::kHeads)));
    s.push_back(make(stack, "head_dim", ValueType::integer, "0", false, 0, "width of one head (0: hidden / heads; at most 2^20)",
                     max(limits::kHidden)));
    s.push_back(make(stack, "ffn", ValueType::integer, def, required, lo, "FFN inner width (at most 2^22)", max(limits::kFfn)));
    s.push_back(make(stack, "rotary_dim", ValueType::integer, "0", false, 0,
                     "rotary archs: rotated dims per head (0: the whole head)", max(limits::kHidden)));
    s.push_back(make(stack, "cross_attention_layers", ValueType::integer, "0", false, 0,
                     "encoder-decoder decoder: top layers with cross-attention", max(limits::kLayers)));
}

StackSpec read_stack(const config::Values& v, const std::string& stack) {
    StackSpec s;
    s.layers = v.integer(stack + ".layers");
    s.hidden = v.integer(stack + ".hidden");
    s.heads = v.integer(stack + ".heads");
    s.kv_heads = v.integer(stack + ".kv_heads");
    s.head_dim = v.integer(stack + ".head_dim");
    s.ffn = v.integer(stack + ".ffn");
    s.rotary_dim = v.integer(stack + ".rotary_dim");
    s.cross_attention_layers = v.integer(stack + ".cross_attention_layers");
    if (s.kv_heads == 0) s.kv_heads = s.heads;
    if (s.head_dim == 0 && s.heads > 0) s.head_dim = s.hidden / s.heads;
    if (s.rotary_dim == 0) s.rotary_dim = s.head_dim;
    return s;
}

void set_arch_traits(ModelSpec& m) {
    switch (m.arch) {
        case Arch::gpt2:
            m.norm = NormKind::layernorm;
            m.position = PositionKind::learned;
            m.attention_bias = m.mlp_bias = true;
            m.sdpa = true;
            // eager_attention_forward: softmax in the input dtype (fp32 only under autocast, which the
            // executor does not use: it stores and computes in the params dtype).
            break;
        case Arch::llama:
            m.norm = NormKind::rmsnorm;
            m.position = PositionKind::rotary;
            m.sdpa = true;
            m.softmax_fp32 = true;  // softmax(..., dtype=torch.float32).to(query.dtype)
            break;
        case Arch::bloom:
            m.norm = NormKind::layernorm;
            m.position = PositionKind::alibi;
            m.attention_bias = m.mlp_bias = true;
            m.embedding_norm = true;
            m.softmax_fp32 = true;  // softmax(..., dtype=torch.float32).to(input_dtype)
            break;
        case Arch::t5:
            m.norm = NormKind::rmsnorm;
            m.position = PositionKind::relative_bias;
            m.softmax_fp32 = true;  // softmax(scores.float()).type_as(scores)
            // T5ForConditionalGeneration (and MT5) call CrossEntropyLoss on lm_logits as they are:
            // log_softmax in the model dtype, no fp32 copy (modeling_t5.py, the loss after lm_head).
            m.loss_fp32 = false;
            break;
        case Arch::codet5p:
            m.norm = NormKind::layernorm;
            m.position = PositionKind::rotary;
            m.mlp_bias = true;
            m.parallel_residual = true;
            m.softmax_fp32 = true;  // CodeGen's _attn: softmax of fp32 scores, .to(value.dtype)
            break;
    }
}

// The parameter count, computed tensor by tensor with overflow checks, must stay within the
// largest model (2^50 elements): every byte size of the plan derives from it.
void check_parameter_count(const ModelSpec& m, const std::string& path) {
    const std::string what = path + ": model " + m.name + ": ";
    const std::string allowed = " (allowed: at most " + std::to_string(config::limits::kParams) +
                                " = 2^50 parameters, 1,000x the largest published model)";
    std::int64_t params = 0;
    try {
        params = total_params(build_units(m)).count();
    } catch (const OverflowError&) {
        throw InputError(what + "the parameter count of these dimensions overflows int64" + allowed);
    }
    if (params > config::limits::kParams)
        throw InputError(what + "these dimensions make " + std::to_string(params) + " parameters" + allowed);
}

}  // namespace

const config::Schema& model_schema() {
    static const config::Schema schema = [] {
        config::Schema s;
        s.push_back(make("model", "name", ValueType::text, "", true, 0, "model name"));
        KeySpec arch = make("model", "arch", ValueType::choice, "", true, 0, "block structure and tensor names");
        arch.choices = kArchs;
        s.push_back(arch);
        s.push_back(make("model", "vocab", ValueType::integer, "", true, 1,
                         "vocabulary size (at most 2^24; published models have up to ~256,000)",
                         static_cast<double>(config::limits::kVocab)));
        KeySpec ffn = make("model", "ffn_kind", ValueType::choice, "", true, 0, "FFN activation");
        ffn.choices = kFfnKinds;
        s.push_back(ffn);
        s.push_back(make("model", "tied_embeddings", ValueType::boolean, "", true, 0, "lm_head shares the token embedding"));
        s.push_back(make("model", "max_positions", ValueType::integer, "0", false, 0,
                         "learned position table (gpt2), else the nominal context (at most 2^20, as batch.seq_len)",
                         static_cast<double>(config::limits::kSeqLen)));
        s.push_back(make("model", "relative_buckets", ValueType::integer, "32", false, 1, "t5: relative position buckets",
                         static_cast<double>(config::limits::kBuckets)));
        s.push_back(make("model", "published_params", ValueType::integer, "0", false, 0,
                         "parameter total its authors report (0: none; at most 2^50)",
                         static_cast<double>(config::limits::kParams)));
        s.push_back(make("model", "source", ValueType::text, "", false, 0, "where the dimensions come from"));
        KeySpec adrop = make("model", "attention_dropout", ValueType::number, "0", false, 0,
                             "dropout on the attention probabilities in training, as published (gpt2 attn_pdrop, "
                             "t5 dropout_rate, llama and bloom attention_dropout, codet5p attn_pdrop)");
        adrop.max = 0.99;
        s.push_back(adrop);
        KeySpec hdrop = make("model", "hidden_dropout", ValueType::number, "0", false, 0,
                             "dropout on hidden states in training, as published (gpt2 resid_pdrop = embd_pdrop, t5 "
                             "dropout_rate, bloom hidden_dropout, codet5p resid_pdrop = embd_pdrop; llama has none)");
        hdrop.max = 0.99;
        s.push_back(hdrop);
        add_stack_keys(s, "decoder", true);
        add_stack_keys(s, "encoder", false);
        return s;
    }();
    return schema;
}

ModelSpec load_model_text(const std::string& path, const std::string& text) {
    Problems problems;
    const config::IniFile file = config::parse_ini_text(path, text, problems);
    const config::Values v = config::resolve(model_schema(), file, {}, problems);
    problems.throw_if_any();

    ModelSpec m;
    m.name = v.text("model.name");
    m.source = v.text("model.source");
    m.effective_ini = config::effective_text(model_schema(), v);
    m.arch = static_cast<Arch>(std::find(kArchs.begin(), kArchs.end(), v.text("model.arch")) - kArchs.begin());
    m.vocab = v.integer("model.vocab");
    m.ffn_kind = static_cast<FfnKind>(
        std::find(kFfnKinds.begin(), kFfnKinds.end(), v.text("model.ffn_kind")) - kFfnKinds.begin());
    m.tied_embeddings = v.boolean("model.tied_embeddings");
    m.max_positions = v.integer("model.max_positions");
    m.relative_buckets = v.integer("model.relative_buckets");
    m.published_params = v.integer("model.published_params");
    m.attention_dropout = v.number("model.attention_dropout");
    m.hidden_dropout = v.number("model.hidden_dropout");
    m.decoder = read_stack(v, "decoder");
    m.encoder = read_stack(v, "encoder");
    set_arch_traits(m);

    auto at = [&](const std::string& key) {
        const std::string& w = v.where(key);
        return (w == "default" ? path : w) + ": " + key;
    };
    auto bad = [&](const std::string& key, const std::string& why, const std::string& allowed) {
        problems.add(at(key) + ": bad value '" + v.raw(key) + "': " + why + " (allowed: " + allowed + ")");
    };
    const bool enc_dec_arch = m.arch == Arch::t5 || m.arch == Arch::codet5p;
    const std::string arch = arch_name(m.arch);
    const config::IniSection* encoder_section = file.find_section("encoder");
    if (enc_dec_arch && !encoder_section)
        problems.add(path + ": [encoder]: missing: arch " + arch + " is encoder-decoder and needs an [encoder] section");
    if (!enc_dec_arch && encoder_section)
        problems.add(path + ":" + std::to_string(encoder_section->line) + ": [encoder]: arch " + arch +
                     " is decoder-only (allowed: [encoder] for t5, codet5p)");
    // A present [encoder] is checked as the [decoder] is: its sizes are required and at least 1.
    if (enc_dec_arch && encoder_section)
        for (const auto& key : kStackSizes) {
            const std::string name = "encoder." + key;
            if (!v.is_explicit(name))
                problems.add(path + ":" + std::to_string(encoder_section->line) + ": " + name +
                             ": missing required key (allowed: integer >= 1)");
            else if (v.integer(name) < 1)
                bad(name, "an encoder needs it", "integer >= 1");
        }

    const std::vector<std::pair<Arch, std::vector<FfnKind>>> ffn_ok = {
        {Arch::gpt2, {FfnKind::gelu}},           {Arch::bloom, {FfnKind::gelu}},
        {Arch::codet5p, {FfnKind::gelu}},        {Arch::llama, {FfnKind::swiglu}},
        {Arch::t5, {FfnKind::relu, FfnKind::gated_gelu}}};
    for (const auto& [a, kinds] : ffn_ok) {
        if (a != m.arch) continue;
        if (std::find(kinds.begin(), kinds.end(), m.ffn_kind) == kinds.end()) {
            std::vector<std::string> names;
            for (FfnKind k : kinds) names.push_back(ffn_kind_name(k));
            bad("model.ffn_kind", "arch " + arch + " does not use it", join(names, ", "));
        }
    }
    if (m.arch == Arch::gpt2 && m.max_positions == 0)
        bad("model.max_positions", "gpt2 learns a position table and needs its size", "integer >= 1");
    if (m.arch == Arch::llama && m.hidden_dropout != 0)
        bad("model.hidden_dropout", "Hugging Face's Llama applies dropout to attention probabilities only", "0");
    if (m.arch == Arch::t5 && m.encoder.hidden > 0 && m.encoder.hidden != m.decoder.hidden)
        bad("encoder.hidden", "t5 shares one embedding between encoder and decoder", v.raw("decoder.hidden"));
    for (const std::string stack : {"encoder", "decoder"}) {
        const StackSpec& s = stack == "encoder" ? m.encoder : m.decoder;
        if (s.layers == 0 || s.heads == 0 || s.hidden == 0) continue;  // a missing size is said above
        if (s.heads % s.kv_heads != 0)
            bad(stack + ".kv_heads", "must divide heads (" + std::to_string(s.heads) + ")", "a divisor of heads");
        if (m.arch != Arch::t5 && s.hidden % s.heads != 0)
            bad(stack + ".heads", "must divide hidden (" + std::to_string(s.hidden) + ")", "a divisor of hidden");
        else if (m.arch != Arch::t5 && s.head_dim * s.heads != s.hidden)
            bad(stack + ".head_dim", "heads x head_dim must equal hidden (" + std::to_string(s.hidden) + ") for arch " + arch,
                std::to_string(s.hidden / s.heads));
        if (v.is_explicit(stack + ".rotary_dim") && (s.rotary_dim > s.head_dim || s.rotary_dim % 2 != 0))
            bad(stack + ".rotary_dim", "rotary dims are pairs within one head of " + std::to_string(s.head_dim),
                "an even number <= head_dim");
        if (stack == "encoder" && s.cross_attention_layers != 0)
            bad("encoder.cross_attention_layers", "the encoder attends to nothing else", "0");
        if (stack == "decoder" && enc_dec_arch && (s.cross_attention_layers < 1 || s.cross_attention_layers > s.layers))
            bad("decoder.cross_attention_layers", "an encoder-decoder decoder attends to the encoder",
                "1 to " + std::to_string(s.layers));
        if (stack == "decoder" && !enc_dec_arch && s.cross_attention_layers != 0)
            bad("decoder.cross_attention_layers", "a decoder-only model has no encoder to attend to", "0");
    }
    problems.throw_if_any();
    check_parameter_count(m, path);
    return m;
}

ModelSpec load_model(const std::string& ref, const std::string& dir, const std::string& where) {
    std::string why;
    auto file = config::resolve_file("models", ref, dir, &why);
    if (!file)
        throw InputError(where + ": bad value '" + ref + "'" + (why.empty() ? "" : ": " + why) +
                         " (allowed: a catalogue model (" +
                         join(catalogue_names(), ", ") + ") or a path to a model .ini file)");
    return load_model_text(file->path, file->text);
}

std::vector<std::string> catalogue_names() { return config::embedded_names("models"); }

std::vector<ModelSpec> catalogue() {
    std::vector<ModelSpec> out;
    for (const auto& name : catalogue_names()) out.push_back(load_model(name, "", "catalogue"));
    return out;
}

}  // namespace shardsim::model
