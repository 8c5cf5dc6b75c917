#pragma once
// Launchers of the CUDA device's own kernels (kernels.cu). Plain C++17 types only: nvcc compiles
// kernels.cu without the project's C++20 headers. Every launcher enqueues on `s` and returns.
#include <cuda_runtime.h>

#include <cstdint>

namespace shardsim::device::cuda {

// dtype codes, in the order of shardsim::DType.
enum : int { kF32 = 0, kBF16 = 1, kF16 = 2 };

// A device array of one dtype; p == nullptr means "absent" where an argument is optional.
struct Arr {
    void* p = nullptr;
    int dt = kF32;
};

void convert(Arr src, Arr dst, std::int64_t n, cudaStream_t s);
void axpby(float alpha, Arr a, float beta, Arr b, Arr out, std::int64_t n, cudaStream_t s);
void mul(Arr a, Arr b, Arr out, std::int64_t n, bool accumulate, cudaStream_t s);
void add_bias(Arr x, Arr bias, std::int64_t rows, std::int64_t n, cudaStream_t s);
void bias_grad(Arr dy, Arr dbias, std::int64_t rows, std::int64_t n, cudaStream_t s);

struct NormArgs {
    bool layernorm = true;
    Arr x, w, b, y, dy, dx, dw, db;
    float* stats = nullptr;
    std::int64_t rows = 0, d = 0;
    float eps = 1e-5f;
    bool accumulate = false;
};
void norm_forward(const NormArgs& a, cudaStream_t s);
void norm_backward(const NormArgs& a, cudaStream_t s);

// f: 0 gelu_tanh, 1 relu, 2 silu (the order of device::Activation).
void activation_forward(int f, Arr x, Arr y, std::int64_t n, cudaStream_t s);
void activation_backward(int f, Arr x, Arr dy, Arr dx, bool accumulate, std::int64_t n, cudaStream_t s);

struct SoftmaxArgs {
    const float* scores = nullptr;
    Arr probs, dprobs, dscores, bias;
    const float* alibi = nullptr;
    float* dbias = nullptr;
    float* lse = nullptr;  // forward: written when given, read instead of the reductions with use_lse
    bool use_lse = false;
    float scale = 1;
    bool causal = false;
    std::int64_t rows = 0, heads = 0, sq = 0, sk = 0;
};
void softmax_forward(const SoftmaxArgs& a, cudaStream_t s);
void softmax_backward(const SoftmaxArgs& a, cudaStream_t s);

struct RotaryArgs {
    Arr x;
    std::int64_t tokens = 0, heads = 0, head_dim = 0, rotary_dim = 0, seq = 1;
    bool interleaved = false, inverse = false;
    float base = 10000;
};
void rotary(const RotaryArgs& a, cudaStream_t s);

void embedding_forward(Arr table, const std::int32_t* ids, Arr out, std::int64_t rows, std::int64_t d, bool accumulate,
                       cudaStream_t s);
// Rows of dout grouped by id: segment k holds rows order[start[k] .. start[k+1]) of id seg_id[k].
void embedding_backward(Arr dtable, const std::int32_t* order, const std::int32_t* start, const std::int32_t* seg_id,
                        std::int64_t segments, Arr dout, std::int64_t d, cudaStream_t s);

void cross_entropy_forward(Arr logits, const std::int32_t* targets, Arr log_probs, float* losses,
                           std::int64_t rows, std::int64_t vocab, cudaStream_t s);
void cross_entropy_backward(Arr log_probs, const std::int32_t* targets, float scale, Arr dlogits,
                            std::int64_t rows, std::int64_t vocab, cudaStream_t s);

// logits (any dtype) := scale * (softmax - onehot), losses[r] = lse - logits[r, target].
void cross_entropy_fused(Arr logits, const std::int32_t* targets, float* losses, float scale, std::int64_t rows,
                         std::int64_t vocab, cudaStream_t s);

// device::DropoutOp, the keep bits from dropout_bits.hpp.
struct DropoutArgs {
    Arr x, out;
    const std::uint8_t* mask_in = nullptr;
    std::uint8_t* mask_out = nullptr;
    float p = 0;
    std::uint64_t key = 0;
    std::int64_t rows = 0, cols = 0, first_sample = 0, row0 = 0, rows_per_sample = 1, width = 0;
    bool accumulate = false;
};
void dropout(const DropoutArgs& a, cudaStream_t s);

struct Copy2dArgs {
    Arr src, dst;
    std::int64_t batch = 1, rows = 0, cols = 0, src_ld = 0, dst_ld = 0, src_stride = 0, dst_stride = 0;
};
void copy2d(const Copy2dArgs& a, cudaStream_t s);

struct OptimizerArgs {
    Arr param, grad, m, v, copy;  // SGD: m is the momentum buffer (may be absent), v unused
    std::int64_t n = 0;
    float lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0, grad_scale = 1, momentum = 0;
    float step_size = 0, bc2_sqrt = 1;  // AdamW: lr / (1 - beta1^t), sqrt(1 - beta2^t)
};
void adamw(const OptimizerArgs& a, cudaStream_t s);
void sgd(const OptimizerArgs& a, cudaStream_t s);

}  // namespace shardsim::device::cuda
