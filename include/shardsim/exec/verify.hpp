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
//   SGD with fp32 gradient sums (16-bit parameters included): 1e-5 — only the order of
//     floating-point sums differs (measured: below 3e-6 on the tiny models);
//   SGD with 16-bit gradient sums: the dtype's epsilon (bf16 2^-8, fp16 2^-11): sums rounded to
//     16 bits in another order differ by about one unit in the last place;
//   AdamW in fp32: the first moments after the first step (exp_avg = (1 - beta1) x the step's
//     reduced gradients, computed from the same parameters on both sides; the sharded executor
//     keeps them when asked before its first step: Executor::remember_first_step) to 1e-5, and the
//     parameters within AdamW's step: max(1e-5, 2 * lr * steps / max|reference|). AdamW divides
//     each gradient by its own running magnitude, so a gradient that is rounding noise (GPT-2's
//     and BLOOM's key bias, whose true gradient is exactly zero: softmax ignores a constant added
//     to a row of scores) moves its parameter by about lr * sign(noise), whatever the noise. The
//     moments are where a reduction error would show; the parameters are bounded by the step;
//   AdamW with any 16-bit dtype: 2 * lr * steps / max|reference| per tensor: a 16-bit rounding
//     that flips (a master weight a hair from a rounding tie, a gradient near zero) flips a
//     parameter's sign of update, and the gradients of later steps follow other parameters. Only
//     the most the optimizer can move a parameter bounds the difference: a loose check, reported
//     as such.
// Dropout makes near-zero gradients by chance too (masks zeroing a tenth of every branch: some
// elements' gradients sum to within a few eps of zero); the first-moment check covers them.
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

// Collective over `world` (an MPI communicator: the comparison itself runs on the host). Without
// the first step's moments (remember_first_step not called), AdamW in fp32 is checked on its
// parameters only, and the rule says so.
VerifyResult verify_against_reference(const Executor& sharded, int steps, MPI_Comm world);

}  // namespace shardsim::exec
