#pragma once
// The model split into wrapping units (FSDP / ZeRO-3 granularity): embeddings, each block, and
// the final norm + head. Each unit lists its tensors with their Hugging Face names and real
// shapes. The plan lays these tensors out; nothing else in shardsim invents a tensor.
#include <cstdint>
#include <string>
#include <vector>

#include "shardsim/core/units.hpp"
#include "shardsim/model/spec.hpp"

namespace shardsim::model {

// Which token sequence a tensor is applied to: linear FLOPs scale with that sequence's tokens.
enum class Stream { encoder, decoder };

enum class TensorRole {
    linear,          // a projection weight, applied as a GEMM
    linear_bias,
    embedding,       // token embedding table (gathered, not multiplied; the tied head multiplies it)
    position_table,  // learned absolute positions
    norm_weight,
    norm_bias,
    relative_bias,   // T5 relative position bias table
    lora_a,          // LoRA down-projection [rank, in]
    lora_b,          // LoRA up-projection [out, rank]
};

struct TensorSpec {
    std::string name;                 // Hugging Face parameter name
    std::vector<std::int64_t> shape;  // as stored ([out, in] for nn.Linear, [in, out] for GPT-2 Conv1D)
    TensorRole role = TensorRole::linear;
    Stream stream = Stream::decoder;  // tokens it is applied to
    std::string module;               // PEFT module name ("q_proj", "c_attn"), "" if not a LoRA target
    bool trainable = true;
    std::int64_t in_features = 0;     // linear and LoRA: input and output width
    std::int64_t out_features = 0;

    Elements numel() const;
    std::int64_t rows() const { return shape.empty() ? 1 : shape[0]; }      // dim 0: what FSDP splits
    std::int64_t row_elements() const { return numel().count() / rows(); }  // elements per dim-0 row
};

enum class UnitKind { embedding, encoder_block, decoder_block, head };
std::string unit_kind_name(UnitKind k);

struct Unit {
    int index = 0;
    std::string name;  // "embed", "block.3", "encoder.block.0", "decoder.block.11", "head"
    UnitKind kind = UnitKind::embedding;
    Stream stream = Stream::decoder;
    std::int64_t layer = -1;  // block index within its stack
    bool cross_attention = false;
    std::vector<TensorSpec> tensors;

    Elements params() const;
    Elements trainable_params() const;
};

struct LoraSpec {
    std::int64_t rank = 0;
    std::vector<std::string> targets;
};

// The PEFT module names a LoRA target may use for this architecture.
std::vector<std::string> lora_modules(Arch arch);

// Units in execution order of the forward pass (for encoder-decoder: embeddings, encoder blocks,
// decoder blocks, head). With LoRA the base is frozen and adapters are added to the targets.
std::vector<Unit> build_units(const ModelSpec& spec, const LoraSpec& lora = {});

Elements total_params(const std::vector<Unit>& units);
// The forward pass as a sequence of unit calls. A unit may be called more than once (T5's shared
// embedding feeds the encoder and the decoder) and a call may read another unit's parameters (a
// tied head reads the embedding): such units stay gathered from their first call to the end of
// their last backward, as the root unit does in FSDP.
struct ProgramStep {
    int unit = 0;
    Stream stream = Stream::decoder;
    std::vector<int> reads;  // units whose parameters this call needs gathered (itself first)
};
std::vector<ProgramStep> forward_program(const ModelSpec& spec, const std::vector<Unit>& units);

Elements trainable_params(const std::vector<Unit>& units);

}  // namespace shardsim::model
