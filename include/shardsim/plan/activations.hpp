#pragma once
// Activation memory of one call of the forward program: every tensor an eager implementation
// keeps from forward to backward, by name, in the dtype it is kept in. The executor's model keeps
// exactly these (a test compares them term by term); the simulator's ledger allocates them.
//
// The terms follow Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
// Transformer Models", section 4.1), adapted to each architecture and to what each op needs for
// its backward:
//   - a norm keeps its input (dtype) and its per-token statistics (fp32: mean and rstd, or rstd);
//   - a projection keeps its input only when its weight is trainable (frozen LoRA bases do not),
//     and projections reading the same tensor keep it once; a LoRA adapter keeps its rank-wide
//     middle activation;
//   - eager attention keeps Q, K, V and the softmax probabilities (b * heads * s_q * s_k);
//     flash attention keeps Q, K, V, the output and the fp32 log-sum-exp instead of the
//     probabilities;
//   - GELU / SiLU keep their input; an elementwise product keeps both factors; ReLU keeps its
//     output;
//   - no dropout (fine-tuning recipes for these models mostly turn it off; Korthikanti's
//     dropout masks are left out);
//   - the head keeps the logits in fp32 (what `logits.float()` returns and the training loop
//     holds) and the fp32 log-softmax of the cross-entropy, plus int32 targets;
//   - an embedding keeps the int32 token ids when its table is trainable.
// With activation checkpointing a block keeps only the terms marked `kept` (its input, and the
// tensors later blocks read: T5's position bias, the encoder output) and recomputes the rest in
// backward.
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
};

CallActivations call_activations(const ShardingPlan& plan, int call);

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
