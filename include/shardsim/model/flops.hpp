#pragma once
// FLOPs of one call of the forward program, counted as GEMM FLOPs (a multiply-add is 2 FLOPs):
// projections, LoRA adapters, attention scores and context, and the (tied) head. Elementwise
// work, norms and softmax are not counted; the executor counts the GEMMs it performs by the same
// rule, and a test holds the two together.
//   forward        2 * tokens * in * out per projection; 4 * b * heads * s_q * s_k * head_dim for
//                  eager attention (sdpa / flash kernels skip the masked half of causal scores:
//                  query i of a causal self-attention reads keys 0..i only)
//   backward       input gradients of every projection (2 * tokens * in * out) + weight gradients
//                  of trainable ones (the same again); eager attention backward is twice its
//                  forward, an sdpa / flash backward 2.5 times (it computes the scores again from
//                  q and k: five GEMMs where the forward has two, as FlashAttention-2 counts it)
//   recompute      the forward again, for checkpointed blocks
// The same products are listed by shape (ComputeWork): a projection [tokens x in] x [in x out] in
// forward, [tokens x out] x [out x in] for its input gradient and [in x tokens] x [tokens x out]
// for its weight gradient; eager attention's Q K^T and P V per head and sequence forward, and four
// products backward (dP, dV, dQ, dK).
#include <cstdint>
#include <string>
#include <vector>

#include "shardsim/model/spec.hpp"
#include "shardsim/model/units.hpp"

namespace shardsim::model {

struct BatchShape {
    std::int64_t batch = 1;    // sequences per micro-batch
    std::int64_t enc_len = 0;  // encoder tokens per sequence (0 for decoder-only)
    std::int64_t dec_len = 0;  // decoder tokens per sequence
    bool fused_attention = false;  // sdpa / flash: no score matrix kept, causal scores for the unmasked half

    std::int64_t len(Stream s) const { return s == Stream::encoder ? enc_len : dec_len; }
    std::int64_t tokens(Stream s) const { return checked_mul(batch, len(s), "tokens of a micro-batch (micro_batch x sequence length)"); }
};

// One GEMM: [m x k] x [k x n], `count` of them (a batch: attention's heads x sequences).
struct Gemm {
    std::int64_t m = 0, n = 0, k = 0, count = 1;
    double flops() const { return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(count); }
};

// What one compute op does, by shape, for the cost model to price (sim/compute.hpp): its GEMMs
// (projections, the head, eager attention's score and context products), the FLOPs of fused
// sdpa / flash attention kernels (priced at the attention rate), and how many kernels it
// launches. GEMM FLOPs + fused attention FLOPs = the op's FLOPs, exactly.
struct ComputeWork {
    std::vector<Gemm> gemms;
    double fused_attention_flops = 0;
    std::int64_t kernels = 0;
    double flops() const;
};

struct CallFlops {
    double forward = 0;
    double backward = 0;
    ComputeWork forward_work;   // also a recompute's
    ComputeWork backward_work;
};

// One attention module of a block: query stream, key/value stream, causal or not.
struct AttentionShape {
    std::int64_t heads = 0, kv_heads = 0, head_dim = 0;
    Stream q_stream = Stream::decoder;
    Stream kv_stream = Stream::decoder;
    bool causal = false;
};
// The attention modules of a unit (self-attention, then cross-attention), empty for non-blocks.
std::vector<AttentionShape> attention_shapes(const ModelSpec& spec, const Unit& unit);
const StackSpec& stack_of(const ModelSpec& spec, const Unit& unit);

CallFlops call_flops(const ModelSpec& spec, const std::vector<Unit>& units, const ProgramStep& step,
                     const BatchShape& shape);
// The forward work of `step` without the projections of the modules in `skipped` (a module is a
// weight's name less ".weight"; its LoRA adapter goes with it) and, with `skip_fused_attention`,
// without the sdpa / flash attention kernels (eager attention's GEMMs stay): what a recompute
// computes when selective checkpointing kept those outputs (plan/activations.hpp).
ComputeWork forward_work_without(const ModelSpec& spec, const std::vector<Unit>& units, const ProgramStep& step,
                                 const BatchShape& shape, const std::vector<std::string>& skipped, bool skip_fused_attention);

// Model FLOPs of one micro-batch's forward and backward by the usual rule (Kaplan et al. 2020's
// 6N per token, plus attention as PaLM counts it, Chowdhery et al. 2022, appendix B): 6 x tokens
// x the weights of every projection and of the head, plus 12 x heads x head_dim x s_q x s_k per
// sequence and attention module — causal scores not halved, no recompute, LoRA adapters and frozen
// weights counted as if trained. The numerator of MFU; what the hardware executes (call_flops,
// recompute included) is the numerator of HFU.
double model_flops(const ModelSpec& spec, const std::vector<Unit>& units, const BatchShape& shape);

}  // namespace shardsim::model
