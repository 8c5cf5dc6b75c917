#pragma once
// Deterministic initial weights: every element is a function of (seed, tensor name, element
// index), so each rank fills exactly the rows it owns and any world size — including the
// single-process reference of --verify — starts from the same model.
//   projections, embeddings, position tables, T5 position biases: N(0, 0.02) (GPT-2's init)
//   norm weights 1, norm and projection biases 0
//   LoRA A: N(0, 1/sqrt(in)); LoRA B: 0 (so the adapted model starts equal to the base, as PEFT)
#include <cstdint>
#include <vector>

#include "shardsim/model/units.hpp"

namespace shardsim::nn {

// Values of elements [first, first + count) of `tensor` (row-major), in fp32.
std::vector<float> initial_values(std::uint64_t seed, const model::TensorSpec& tensor, std::int64_t first,
                                  std::int64_t count);

}  // namespace shardsim::nn
