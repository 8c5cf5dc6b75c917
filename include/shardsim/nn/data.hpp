#pragma once
// Synthetic training data: token sequences from a seeded generator with a learnable pattern,
// indexed by global sample id, so every world size sees the same global batches.
#include <cstdint>
#include <vector>

#include "shardsim/model/flops.hpp"

namespace shardsim::nn {

struct Batch {
    std::int64_t batch = 0;
    std::int64_t first = 0;                 // global id of the first sample (dropout masks follow it)
    std::vector<std::int32_t> encoder_ids;  // [batch, enc_len] (encoder-decoder only)
    std::vector<std::int32_t> input_ids;    // [batch, dec_len] decoder input
    std::vector<std::int32_t> targets;      // [batch, dec_len] next tokens the loss predicts
};

// Samples [first, first + count) of the stream defined by `seed`.
Batch make_batch(std::uint64_t seed, std::int64_t first_sample, std::int64_t count, const model::BatchShape& shape,
                 std::int64_t vocab);

// The global sample ids one rank trains on: step s, micro-batch m, rank r of `world`, with
// `micro_batch` sequences each. A single process with world 1 and grad_accum * world micro-batches
// sees the same samples in the same global order.
std::int64_t first_sample(std::int64_t step, std::int64_t micro, std::int64_t rank, std::int64_t world,
                          std::int64_t grad_accum, std::int64_t micro_batch);

}  // namespace shardsim::nn
