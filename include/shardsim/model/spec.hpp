#pragma once
// A model architecture by its real dimensions. The catalogue (`shardsim models`) is the set of
// models/*.ini compiled into the binary; a user's own model file uses the same keys.
#include <cstdint>
#include <string>
#include <vector>

#include "shardsim/config/schema.hpp"

namespace shardsim::model {

// The block structure and the Hugging Face tensor names follow the architecture.
enum class Arch { gpt2, llama, bloom, t5, codet5p };
enum class FfnKind { gelu, relu, gated_gelu, swiglu };
enum class NormKind { layernorm, rmsnorm };
enum class PositionKind { learned, rotary, alibi, relative_bias };

std::string arch_name(Arch a);
std::string ffn_kind_name(FfnKind f);
std::string norm_kind_name(NormKind n);
std::string position_kind_name(PositionKind p);

// One transformer stack: the decoder of a decoder-only model, or either side of an
// encoder-decoder model.
struct StackSpec {
    std::int64_t layers = 0;
    std::int64_t hidden = 0;
    std::int64_t heads = 0;
    std::int64_t kv_heads = 0;
    std::int64_t head_dim = 0;
    std::int64_t ffn = 0;
    std::int64_t rotary_dim = 0;              // rotary dims per head (rotary archs; the whole head when the file says 0)
    std::int64_t cross_attention_layers = 0;  // decoder of an encoder-decoder: top layers with cross-attention

    std::int64_t q_dim() const { return heads * head_dim; }
    std::int64_t kv_dim() const { return kv_heads * head_dim; }
};

struct ModelSpec {
    std::string name;
    std::string source;  // where the dimensions come from (published config)
    Arch arch = Arch::gpt2;
    std::int64_t vocab = 0;
    StackSpec encoder;  // layers == 0 for decoder-only models
    StackSpec decoder;
    FfnKind ffn_kind = FfnKind::gelu;
    NormKind norm = NormKind::layernorm;
    PositionKind position = PositionKind::learned;
    bool tied_embeddings = false;
    bool embedding_norm = false;    // BLOOM: LayerNorm right after the embedding
    bool attention_bias = false;    // biases on q/k/v/o projections
    bool mlp_bias = false;          // biases on FFN projections
    bool parallel_residual = false; // CodeGen: attention and MLP read the same normed input
    // Hugging Face's attention code for the family (ENGINES.md section 7):
    bool sdpa = false;          // an SDPA / FlashAttention-2 path exists (_supports_sdpa): llama, gpt2
    bool softmax_fp32 = false;  // eager softmax computed and kept in fp32, then cast to the compute dtype
    bool loss_fp32 = true;      // the loss casts the logits to fp32 first (transformers' ForCausalLMLoss)
    std::int64_t max_positions = 0;      // learned position table size (GPT-2), or nominal context
    std::int64_t relative_buckets = 0;   // T5 relative position buckets
    std::int64_t published_params = 0;  // the total the model's authors report (0: none published)
    std::string effective_ini;          // every key with its effective value: the model, described in full
    // Dropout probabilities of the published config (Hugging Face's names differ per family: see
    // model_schema's help). The job's [dropout] keys override them when the scenario is completed.
    double attention_dropout = 0;  // on the attention probabilities
    double hidden_dropout = 0;     // on hidden states (residual branches, embeddings, ...)

    bool encoder_decoder() const { return encoder.layers > 0; }
    std::string family() const { return encoder_decoder() ? "encoder-decoder" : "decoder"; }
};

const config::Schema& model_schema();

// Loads a model from INI text; problems name `path:line`.
ModelSpec load_model_text(const std::string& path, const std::string& text);
// `ref` is a catalogue name or a path to a model .ini (relative to `dir`); `where` is the key
// that named it, for the error when it is neither.
ModelSpec load_model(const std::string& ref, const std::string& dir, const std::string& where);
// Every model of the catalogue, in name order.
std::vector<ModelSpec> catalogue();
std::vector<std::string> catalogue_names();

}  // namespace shardsim::model
