#pragma once
// Activation memory of one call of the forward program: every tensor the Hugging Face model keeps
// from forward to backward under autograd, by name, in the dtype it is kept in. The executor's
// model keeps exactly these (a test compares them term by term); the simulator's ledger allocates
// them.
//
// The terms follow Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
// Transformer Models", section 4.1), adapted to each architecture, to what each op saves for its
// backward, and to the families' Hugging Face code (ENGINES.md section 7):
//   - a norm keeps its input (dtype) and its per-token statistics (fp32: mean and rstd, or rstd);
//   - a projection keeps its input only when its weight is trainable (frozen LoRA bases do not),
//     and projections reading the same tensor keep it once; a LoRA adapter keeps its rank-wide
//     middle activation;
//   - eager attention keeps Q, K, V and what the matmul with V reads (`probs`, the compute dtype,
//     b * heads * s_q * s_k), plus the softmax output as a tensor of its own (`softmax`) wherever
//     it is another tensor: when the family computes the softmax in fp32 and the compute dtype is
//     16-bit (T5, Llama, BLOOM, CodeGen: 4 B + 2 B per element), or when attention dropout is on
//     (softmax saves its output, dropout its 1-byte mask `probs.mask`, the matmul the dropped
//     probabilities): T5 in bf16 with dropout 7 B, Llama in bf16 6 B, GPT-2 in bf16 with dropout
//     5 B (softmax in the input dtype; the executor uses no autocast, under which it would be 7 B);
//   - CodeGen's eager _attn (CodeT5+'s self-attention) upcasts q and k to fp32 before the score
//     matmul, which keeps those copies: q and k at 4 B;
//   - sdpa and flash attention keep Q, K, V, the output and the fp32 log-sum-exp (b * heads * s_q)
//     and no score matrix and no mask (the kernel draws its dropout again in backward);
//   - hidden dropout (p > 0) keeps a 1-byte mask per element where the family applies it (GPT-2:
//     embeddings, attention and MLP outputs; BLOOM: attention and MLP outputs; T5: embeddings,
//     sublayer outputs, the FFN's inner activation, the end of each stack; CodeGen: embeddings,
//     attention and MLP outputs); where the dropped tensor feeds a projection it is that
//     projection's kept input; at p = 0 nothing (ATen's dropout returns its input);
//   - GELU / SiLU keep their input; an elementwise product keeps both factors; ReLU keeps its
//     output;
//   - the head: memory.loss = eager keeps the logits in the model dtype (the model's output, which
//     the training loop holds until backward) and the fp32 log-softmax of the cross-entropy
//     (`logits.float()` is a transient copy in forward, an fp32 gradient plus its cast in
//     backward); fused keeps only the model-dtype logits, which a Liger-style kernel overwrites
//     with their gradient in forward; both keep int32 targets;
//   - an embedding keeps the int32 token ids when its table is trainable.
// With activation checkpointing a block keeps only the terms marked `kept` (its input, and the
// tensors later blocks read: T5's position bias, the encoder output) and recomputes the rest in
// backward.
//
// Selective checkpointing (memory.activation_checkpointing = selective) is torchtitan's op-level
// selective activation checkpointing (ac mode "selective", option "op": its
// _apply_ac_to_transformer_block and _save_list): a checkpointed block runs under
// torch.utils.checkpoint with a policy that saves the output of every op in a short list and
// recomputes the others. The list: the matmuls (aten.mm), except every second one counted from
// the block's first in forward order (a count that restarts with each forward and each
// recompute), and the fused attention kernels (_scaled_dot_product_flash / efficient_attention).
// Here:
//   - the projections of a block are counted in the order the family's forward calls them, one
//     count per projection (an adapted projection's LoRA matmuls go with it); the 1st, 3rd, 5th
//     ... keep their output; where that output is a term already (Llama's v, the gate of a
//     SwiGLU, GPT-2's fc output), the term is kept, otherwise a term of its own,
//     `<module>.out` (a projection whose output is then rotated, dropped or added to in place:
//     Llama's q, every output projection, the fused QKV of BLOOM and CodeGen, which their
//     reshapes copy); GPT-2's fused QKV is kept as q, k and v, the views of it PyTorch makes
//     (split and view, no copy); an adapted projection keeps its LoRA middle activation too (its
//     recompute is skipped as a whole);
//   - sdpa / flash attention keep their output and log-sum-exp (`out`, `lse`); eager attention is
//     batched matmuls and a softmax, none in the list: recomputed;
//   - recompute skips the kept projections and attention kernels (recompute_work) and rebuilds
//     everything else; backward then holds what full checkpointing holds.
// torchtitan applies the policy to aten.mm only; GPT-2's Conv1D and BLOOM's biased projections
// are addmm there, which the literal list would not save: here every projection counts.
#include <cstdint>
#include <string>
#include <vector>

#include "shardsim/plan/plan.hpp"

namespace shardsim::plan {

struct ActivationTerm {
    std::string name;
    std::int64_t bytes = 0;
    bool kept = false;   // kept even when the block is checkpointed
    bool input = false;  // the hidden state the call receives: the previous call made it
};

struct CallActivations {
    std::vector<ActivationTerm> terms;  // everything saved without checkpointing
    bool checkpointed = false;          // this call is a checkpointed block
    // Selective checkpointing: the projections whose outputs this checkpointed block keeps (module
    // names, as their weights are named less ".weight"), each with the term that holds the output,
    // and whether the fused attention kernels' outputs are kept. Empty / false otherwise.
    struct KeptOutput {
        std::string module;
        std::string term;                // the term that holds it, or
        std::vector<std::string> parts;  // the terms it is split into, views of it (GPT-2's q, k, v)
    };
    std::vector<KeptOutput> kept_outputs;
    bool attention_kept = false;
    std::int64_t forward_workspace = 0;   // transient bytes inside forward beyond what is saved
    std::int64_t backward_workspace = 0;  // transient bytes inside backward

    std::int64_t saved_bytes() const;      // all terms
    std::int64_t input_bytes() const;      // the term the previous call produced (0: none)
    std::int64_t kept_bytes() const;       // terms with `kept`
    std::int64_t recompute_bytes() const;  // terms without `kept`
    // What this call keeps after forward: all terms, or only the kept ones when checkpointed.
    std::int64_t forward_bytes() const { return checkpointed ? kept_bytes() : saved_bytes(); }
    // What this call's forward allocates: what it keeps, less its input (the previous call
    // allocated that as its output), plus the output the next call keeps as its input.
    std::int64_t forward_allocated(std::int64_t next_input) const { return forward_bytes() - input_bytes() + next_input; }
    // What this call's forward writes (its activation traffic): the terms it saves, less its input
    // (the previous call wrote that), plus the hidden state it hands on. For a block the two are
    // the same size; an embedding writes its output rows beside the ids it keeps; the head reads
    // its input and hands nothing on.
    std::int64_t forward_written(std::int64_t next_input) const { return saved_bytes() - input_bytes() + next_input; }
};

// Whether this unit's calls are checkpointed: blocks only, with memory.activation_checkpointing,
// every memory.checkpoint_every-th block in unit order (blocks n, 2n, ... counting from 1). The
// plan's activations, the schedule's recomputes, the executor and the plan search all ask this.
bool checkpointed(bool checkpointing, std::int64_t every, const std::vector<model::Unit>& units, const model::Unit& unit);
bool checkpointed(const ShardingPlan& plan, const model::Unit& unit);

// How the model computes in this job (the family's Hugging Face code, memory.attention,
// memory.loss and [dropout]): read by call_activations and by the executor's model alike.
struct ModelBehaviour {
    DType compute = DType::fp32;   // activations: the params dtype
    bool fused_attention = false;  // sdpa / flash
    DType softmax = DType::fp32;   // dtype of the eager softmax output
    double attention_dropout = 0;  // on the probabilities
    double hidden_dropout = 0;     // on hidden states, where the family applies it
    bool fused_loss = false;
    bool loss_fp32 = true;         // the loss upcasts the logits (ModelSpec::loss_fp32)
    // Eager attention keeps the softmax output apart from the probabilities the matmul reads.
    bool separate_softmax() const { return softmax != compute || attention_dropout > 0; }
};
ModelBehaviour model_behaviour(const ShardingPlan& plan);
// The same for a scenario whose parameters compute in `compute` (what a plan would decide).
ModelBehaviour model_behaviour(const model::Scenario& scenario, DType compute);

// What activations depend on: the model, its units and program, how it computes, one
// micro-batch's shape and checkpointing — not the strategy. A plan provides them, and so does the
// plan search's memory bound (plan/bound.hpp) without building a plan.
struct ActivationInputs {
    const model::ModelSpec* model = nullptr;
    const std::vector<model::Unit>* units = nullptr;
    const std::vector<model::ProgramStep>* program = nullptr;
    ModelBehaviour behaviour;
    model::BatchShape shape;
    config::Checkpointing checkpointing = config::Checkpointing::none;
    std::int64_t checkpoint_every = 1;  // memory.checkpoint_every
};
ActivationInputs activation_inputs(const ShardingPlan& plan);

CallActivations call_activations(const ActivationInputs& inputs, int call);
CallActivations call_activations(const ShardingPlan& plan, int call);

// What recomputing `call` computes: its forward's work, less the projections and attention
// kernels whose outputs selective checkpointing kept (all of it under full checkpointing).
model::ComputeWork recompute_work(const ActivationInputs& inputs, int call, const CallActivations& acts);

// Buffers that one call makes and another frees (encoder-decoder models):
//   encoder output gradient   (activation dtype, encoder tokens x its width) summed over the
//                             cross-attention backwards, freed by the last encoder block's backward;
//   position bias gradient    (T5, fp32, heads x len x len per stack, when the bias is trained)
//                             from the stack's last block's backward to its block 0's;
//   encoder output in flight  (when no backward needs it: activation dtype) from the last
//                             encoder block's forward to the last cross-attention forward.
struct CrossCallBuffer {
    std::string name;
    MemCategory category = MemCategory::temporaries;
    std::int64_t bytes = 0;
    int alloc_call = 0;
    bool alloc_in_backward = false;
    int free_call = 0;
    bool free_in_backward = false;
};
std::vector<CrossCallBuffer> cross_call_buffers(const ShardingPlan& plan);

}  // namespace shardsim::plan
