#pragma once
// --verify: the sharded result against an unsharded single-process reference trained on the
// same global batches from the same seed. Every rank trains the reference itself (it is small)
// and compares the rows it owns; the maximum over ranks is the answer.
//
// The measure, per trainable tensor: max |sharded - reference| / max |reference| over the
// tensor (a relative error that does not blow up on near-zero elements); the run's figure is the
// maximum over tensors. Trained values are compared at full precision (fp32 master weights when
// the parameters are 16-bit).
// Tolerances (what two correct runs can agree to is set by the dtypes and the optimizer):
//   everything in fp32, or SGD with fp32 gradient sums (16-bit parameters included): 1e-5 —
//     only the order of floating-point sums differs (measured: below 3e-6 on the tiny models);
//   SGD with 16-bit gradient sums: the dtype's epsilon (bf16 2^-8, fp16 2^-11): sums rounded to
//     16 bits in another order differ by about one unit in the last place;
//   AdamW with any 16-bit dtype: 2 * lr * steps / max|reference| per tensor. AdamW divides each
//     gradient by its own running magnitude, so its first steps move a parameter by about
//     lr * sign(gradient); a 16-bit rounding that flips (a master weight a hair from a rounding
//     tie, a gradient near zero) flips that sign. Only the most the optimizer can move a
//     parameter bounds the difference: a loose check, reported as such.
// A related effect in fp32: a parameter whose true gradient is exactly zero (GPT-2's and BLOOM's
// key bias: softmax ignores a constant added to a whole row of scores) gets rounding noise as its
// gradient, which AdamW amplifies the same way. Verify such models with SGD. Dropout makes the
// same happen by chance: with masks zeroing a tenth of every branch, some elements' gradients sum
// to within a few eps of zero (tiny-t5 with its 0.1 on 6 ranks, seed 1234: 1.6e-5 under AdamW,
// 1e-7 under SGD, 2e-6 with AdamW's eps at 1e-6); the dropout tests verify with SGD.
#include <mpi.h>

#include <string>

#include "shardsim/exec/executor.hpp"

namespace shardsim::exec {

inline constexpr double kToleranceFp32 = 1e-5;

struct VerifyResult {
    double max_rel_diff = 0;   // the largest relative difference of any tensor
    std::string worst_tensor;  // which one
    double tolerance = 0;      // the worst tensor's tolerance
    std::string rule;          // which tolerance rule applied
    bool passed = false;       // every tensor within its tolerance
};

// Collective over `world` (an MPI communicator: the comparison itself runs on the host).
VerifyResult verify_against_reference(const Executor& sharded, int steps, MPI_Comm world);

}  // namespace shardsim::exec
