// The CUDA device's own kernels: everything but the GEMMs (cuBLAS). Values are loaded from their
// storage dtype into fp32, computed in fp32 and rounded once with __float2bfloat16_rn /
// __float2half_rn (round-to-nearest-even, as half.hpp on the host). Row-wise kernels (norms,
// softmax, cross-entropy) run one block per row; the rest one thread per element.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "cuda_kernels.hpp"
#include "dropout_bits.hpp"

namespace shardsim::device::cuda {

namespace {

constexpr int kThreads = 256;
constexpr float kGeluC = 0.7978845608028654f;
constexpr float kGeluK = 0.044715f;

__device__ __forceinline__ float ld(const void* p, int dt, std::int64_t i) {
    if (dt == kBF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    if (dt == kF16) return __half2float(static_cast<const __half*>(p)[i]);
    return static_cast<const float*>(p)[i];
}

__device__ __forceinline__ void st(void* p, int dt, std::int64_t i, float v) {
    if (dt == kBF16)
        static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
    else if (dt == kF16)
        static_cast<__half*>(p)[i] = __float2half_rn(v);
    else
        static_cast<float*>(p)[i] = v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// The sum (or max) over the block, returned to every thread. blockDim.x is a multiple of 32.
__device__ float block_reduce(float v, bool is_max) {
    __shared__ float sh[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = is_max ? warp_max(v) : warp_sum(v);
    __syncthreads();  // sh may still be read from the previous call
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < warps ? sh[lane] : (is_max ? -INFINITY : 0.0f);
        w = is_max ? warp_max(w) : warp_sum(w);
        if (lane == 0) sh[0] = w;
    }
    __syncthreads();
    return sh[0];
}

int blocks_for(std::int64_t n) {
    const std::int64_t b = (n + kThreads - 1) / kThreads;
    return static_cast<int>(b < 65536 ? (b < 1 ? 1 : b) : 65536);
}

#define GRID_STRIDE(i, n) \
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < (n); \
         i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)

__global__ void k_convert(Arr src, Arr dst, std::int64_t n) {
    GRID_STRIDE(i, n) st(dst.p, dst.dt, i, ld(src.p, src.dt, i));
}

__global__ void k_axpby(float alpha, Arr a, float beta, Arr b, Arr out, std::int64_t n) {
    GRID_STRIDE(i, n) {
        float v = alpha * ld(a.p, a.dt, i);
        if (b.p) v += beta * ld(b.p, b.dt, i);
        st(out.p, out.dt, i, v);
    }
}

__global__ void k_mul(Arr a, Arr b, Arr out, std::int64_t n, bool acc) {
    GRID_STRIDE(i, n) {
        float v = ld(a.p, a.dt, i) * ld(b.p, b.dt, i);
        if (acc) v += ld(out.p, out.dt, i);
        st(out.p, out.dt, i, v);
    }
}

__global__ void k_add_bias(Arr x, Arr bias, std::int64_t rows, std::int64_t n) {
    GRID_STRIDE(i, rows * n) st(x.p, x.dt, i, ld(x.p, x.dt, i) + ld(bias.p, bias.dt, i % n));
}

__global__ void k_bias_grad(Arr dy, Arr db, std::int64_t rows, std::int64_t n) {
    GRID_STRIDE(j, n) {
        float s = 0;
        for (std::int64_t r = 0; r < rows; ++r) s += ld(dy.p, dy.dt, r * n + j);
        st(db.p, db.dt, j, ld(db.p, db.dt, j) + s);
    }
}

__global__ void k_norm_forward(NormArgs a) {
    const std::int64_t r = blockIdx.x, base = r * a.d;
    float mean = 0;
    if (a.layernorm) {
        float s = 0;
        for (std::int64_t i = threadIdx.x; i < a.d; i += blockDim.x) s += ld(a.x.p, a.x.dt, base + i);
        mean = block_reduce(s, false) / static_cast<float>(a.d);
    }
    float sq = 0;
    for (std::int64_t i = threadIdx.x; i < a.d; i += blockDim.x) {
        const float c = ld(a.x.p, a.x.dt, base + i) - mean;
        sq += c * c;
    }
    const float rstd = rsqrtf(block_reduce(sq, false) / static_cast<float>(a.d) + a.eps);
    for (std::int64_t i = threadIdx.x; i < a.d; i += blockDim.x) {
        float y = (ld(a.x.p, a.x.dt, base + i) - mean) * rstd * ld(a.w.p, a.w.dt, i);
        if (a.b.p) y += ld(a.b.p, a.b.dt, i);
        st(a.y.p, a.y.dt, base + i, y);
    }
    if (threadIdx.x == 0) {
        if (a.layernorm) {
            a.stats[2 * r] = mean;
            a.stats[2 * r + 1] = rstd;
        } else {
            a.stats[r] = rstd;
        }
    }
}

__global__ void k_norm_backward_dx(NormArgs a) {
    const std::int64_t r = blockIdx.x, base = r * a.d;
    const float mean = a.layernorm ? a.stats[2 * r] : 0.0f;
    const float rstd = a.layernorm ? a.stats[2 * r + 1] : a.stats[r];
    float s1 = 0, s2 = 0;
    for (std::int64_t i = threadIdx.x; i < a.d; i += blockDim.x) {
        const float xhat = (ld(a.x.p, a.x.dt, base + i) - mean) * rstd;
        const float g = ld(a.dy.p, a.dy.dt, base + i) * ld(a.w.p, a.w.dt, i);
        s1 += g;
        s2 += g * xhat;
    }
    const float m1 = a.layernorm ? block_reduce(s1, false) / static_cast<float>(a.d) : 0.0f;
    const float m2 = block_reduce(s2, false) / static_cast<float>(a.d);
    for (std::int64_t i = threadIdx.x; i < a.d; i += blockDim.x) {
        const float xhat = (ld(a.x.p, a.x.dt, base + i) - mean) * rstd;
        const float g = ld(a.dy.p, a.dy.dt, base + i) * ld(a.w.p, a.w.dt, i);
        float v = rstd * (g - m1 - xhat * m2);
        if (a.accumulate) v += ld(a.dx.p, a.dx.dt, base + i);
        st(a.dx.p, a.dx.dt, base + i, v);
    }
}

// One thread per column, summing over rows in order: deterministic.
__global__ void k_norm_backward_params(NormArgs a) {
    GRID_STRIDE(j, a.d) {
        float dw = 0, db = 0;
        for (std::int64_t r = 0; r < a.rows; ++r) {
            const float mean = a.layernorm ? a.stats[2 * r] : 0.0f;
            const float rstd = a.layernorm ? a.stats[2 * r + 1] : a.stats[r];
            const float dy = ld(a.dy.p, a.dy.dt, r * a.d + j);
            dw += dy * (ld(a.x.p, a.x.dt, r * a.d + j) - mean) * rstd;
            db += dy;
        }
        if (a.dw.p) st(a.dw.p, a.dw.dt, j, ld(a.dw.p, a.dw.dt, j) + dw);
        if (a.db.p) st(a.db.p, a.db.dt, j, ld(a.db.p, a.db.dt, j) + db);
    }
}

__device__ __forceinline__ float act(int f, float x) {
    if (f == 0) return 0.5f * x * (1.0f + tanhf(kGeluC * (x + kGeluK * x * x * x)));
    if (f == 1) return x > 0 ? x : 0.0f;
    return x / (1.0f + expf(-x));
}

__device__ __forceinline__ float act_grad(int f, float x) {
    if (f == 0) {
        const float t = tanhf(kGeluC * (x + kGeluK * x * x * x));
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kGeluC * (1.0f + 3.0f * kGeluK * x * x);
    }
    if (f == 1) return x > 0 ? 1.0f : 0.0f;
    const float s = 1.0f / (1.0f + expf(-x));
    return s * (1.0f + x * (1.0f - s));
}

__global__ void k_act_forward(int f, Arr x, Arr y, std::int64_t n) {
    GRID_STRIDE(i, n) st(y.p, y.dt, i, act(f, ld(x.p, x.dt, i)));
}

__global__ void k_act_backward(int f, Arr x, Arr dy, Arr dx, bool acc, std::int64_t n) {
    GRID_STRIDE(i, n) {
        float v = ld(dy.p, dy.dt, i) * act_grad(f, ld(x.p, x.dt, i));
        if (acc) v += ld(dx.p, dx.dt, i);
        st(dx.p, dx.dt, i, v);
    }
}

__device__ __forceinline__ float score(const SoftmaxArgs& a, std::int64_t r, std::int64_t h, std::int64_t i,
                                       std::int64_t j) {
    if (a.causal && j > i + (a.sk - a.sq)) return -INFINITY;
    float x = a.scale * a.scores[r * a.sk + j];
    if (a.bias.p) x += ld(a.bias.p, a.bias.dt, (h * a.sq + i) * a.sk + j);
    if (a.alibi) x += a.alibi[h] * static_cast<float>(j);
    return x;
}

__global__ void k_softmax_forward(SoftmaxArgs a) {
    const std::int64_t r = blockIdx.x, i = r % a.sq, h = (r / a.sq) % a.heads;
    if (a.use_lse) {  // an sdpa / flash backward: the probabilities from the kept log-sum-exp
        for (std::int64_t j = threadIdx.x; j < a.sk; j += blockDim.x)
            st(a.probs.p, a.probs.dt, r * a.sk + j, expf(score(a, r, h, i, j) - a.lse[r]));
        return;
    }
    float mx = -INFINITY;
    for (std::int64_t j = threadIdx.x; j < a.sk; j += blockDim.x) mx = fmaxf(mx, score(a, r, h, i, j));
    mx = block_reduce(mx, true);
    float sum = 0;
    for (std::int64_t j = threadIdx.x; j < a.sk; j += blockDim.x) sum += expf(score(a, r, h, i, j) - mx);
    sum = block_reduce(sum, false);
    const float inv = 1.0f / sum;
    for (std::int64_t j = threadIdx.x; j < a.sk; j += blockDim.x)
        st(a.probs.p, a.probs.dt, r * a.sk + j, expf(score(a, r, h, i, j) - mx) * inv);
    if (a.lse && threadIdx.x == 0) a.lse[r] = mx + logf(sum);
}

__global__ void k_softmax_backward(SoftmaxArgs a) {
    const std::int64_t r = blockIdx.x, i = r % a.sq, h = (r / a.sq) % a.heads, base = r * a.sk;
    float dot = 0;
    for (std::int64_t j = threadIdx.x; j < a.sk; j += blockDim.x)
        dot += ld(a.probs.p, a.probs.dt, base + j) * ld(a.dprobs.p, a.dprobs.dt, base + j);
    dot = block_reduce(dot, false);
    // Each thread reads and writes only its own j, so dscores may be dprobs.
    for (std::int64_t j = threadIdx.x; j < a.sk; j += blockDim.x) {
        const float ds = ld(a.probs.p, a.probs.dt, base + j) * (ld(a.dprobs.p, a.dprobs.dt, base + j) - dot);
        st(a.dscores.p, a.dscores.dt, base + j, ds);
        if (a.dbias) atomicAdd(a.dbias + (h * a.sq + i) * a.sk + j, ds);
    }
}

__global__ void k_rotary(RotaryArgs a) {
    const std::int64_t half = a.rotary_dim / 2;
    GRID_STRIDE(idx, a.tokens * a.heads * half) {
        const std::int64_t i = idx % half, th = idx / half, t = th / a.heads;
        const float inv_freq = 1.0f / powf(a.base, static_cast<float>(2 * i) / static_cast<float>(a.rotary_dim));
        const float angle = static_cast<float>(t % a.seq) * inv_freq;
        const float c = cosf(angle), s = a.inverse ? -sinf(angle) : sinf(angle);
        const std::int64_t base = th * a.head_dim;
        const std::int64_t i1 = base + (a.interleaved ? 2 * i : i), i2 = base + (a.interleaved ? 2 * i + 1 : i + half);
        const float x1 = ld(a.x.p, a.x.dt, i1), x2 = ld(a.x.p, a.x.dt, i2);
        st(a.x.p, a.x.dt, i1, x1 * c - x2 * s);
        st(a.x.p, a.x.dt, i2, x2 * c + x1 * s);
    }
}

__global__ void k_embedding_forward(Arr table, const std::int32_t* ids, Arr out, std::int64_t rows, std::int64_t d,
                                    bool acc) {
    GRID_STRIDE(idx, rows * d) {
        const std::int64_t t = idx / d, j = idx % d;
        float v = ld(table.p, table.dt, static_cast<std::int64_t>(ids[t]) * d + j);
        if (acc) v += ld(out.p, out.dt, idx);
        st(out.p, out.dt, idx, v);
    }
}

// One block per distinct id: its rows summed in fp32, then added to the table row once.
__global__ void k_embedding_backward(Arr dtable, const std::int32_t* order, const std::int32_t* start,
                                     const std::int32_t* seg_id, Arr dout, std::int64_t d) {
    const std::int64_t k = blockIdx.x, row = seg_id[k];
    for (std::int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        float s = 0;
        for (std::int32_t q = start[k]; q < start[k + 1]; ++q) s += ld(dout.p, dout.dt, static_cast<std::int64_t>(order[q]) * d + j);
        st(dtable.p, dtable.dt, row * d + j, ld(dtable.p, dtable.dt, row * d + j) + s);
    }
}

__global__ void k_cross_entropy_forward(Arr logits, const std::int32_t* targets, Arr lp, float* losses, std::int64_t vocab) {
    const std::int64_t r = blockIdx.x, row = r * vocab;
    float mx = -INFINITY;
    for (std::int64_t j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, ld(logits.p, logits.dt, row + j));
    mx = block_reduce(mx, true);
    float sum = 0;
    for (std::int64_t j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(ld(logits.p, logits.dt, row + j) - mx);
    const float lse = mx + logf(block_reduce(sum, false));
    for (std::int64_t j = threadIdx.x; j < vocab; j += blockDim.x) st(lp.p, lp.dt, row + j, ld(logits.p, logits.dt, row + j) - lse);
    __syncthreads();  // the loss reads the stored log-probability (nll_loss on log_softmax's output)
    if (threadIdx.x == 0) losses[r] = -ld(lp.p, lp.dt, row + targets[r]);
}

__global__ void k_cross_entropy_backward(Arr lp, const std::int32_t* targets, float scale, Arr dlogits,
                                         std::int64_t rows, std::int64_t vocab) {
    GRID_STRIDE(idx, rows * vocab) {
        const std::int64_t r = idx / vocab, j = idx % vocab;
        st(dlogits.p, dlogits.dt, idx, scale * (expf(ld(lp.p, lp.dt, idx)) - (j == targets[r] ? 1.0f : 0.0f)));
    }
}

// One block per row; the target's logit is read before the reductions' barriers, so no thread has
// overwritten it yet.
__global__ void k_cross_entropy_fused(Arr x, const std::int32_t* targets, float* losses, float scale, std::int64_t vocab) {
    const std::int64_t r = blockIdx.x, base = r * vocab, t = targets[r];
    const float target_logit = threadIdx.x == 0 ? ld(x.p, x.dt, base + t) : 0.0f;
    float mx = -INFINITY;
    for (std::int64_t j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, ld(x.p, x.dt, base + j));
    mx = block_reduce(mx, true);
    float sum = 0;
    for (std::int64_t j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(ld(x.p, x.dt, base + j) - mx);
    const float lse = mx + logf(block_reduce(sum, false));
    if (threadIdx.x == 0) losses[r] = lse - target_logit;
    for (std::int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
        st(x.p, x.dt, base + j, scale * (expf(ld(x.p, x.dt, base + j) - lse) - (j == t ? 1.0f : 0.0f)));
}

__global__ void k_dropout(DropoutArgs a, std::uint32_t threshold, float scale) {
    GRID_STRIDE(i, a.rows * a.cols) {
        const std::int64_t r = i / a.cols, c = i % a.cols;
        const bool keep = a.mask_in ? a.mask_in[i] != 0
                                    : dropout_bits::keep_at(a.key, a.first_sample, a.row0, a.rows_per_sample, a.width, r, c, threshold);
        if (a.mask_out) a.mask_out[i] = keep ? 1 : 0;
        float v = keep ? ld(a.x.p, a.x.dt, i) * scale : 0.0f;
        if (a.accumulate) v += ld(a.out.p, a.out.dt, i);
        st(a.out.p, a.out.dt, i, v);
    }
}

__global__ void k_copy2d(Copy2dArgs a) {
    GRID_STRIDE(idx, a.batch * a.rows * a.cols) {
        const std::int64_t j = idx % a.cols, i = (idx / a.cols) % a.rows, b = idx / (a.cols * a.rows);
        st(a.dst.p, a.dst.dt, b * a.dst_stride + i * a.dst_ld + j, ld(a.src.p, a.src.dt, b * a.src_stride + i * a.src_ld + j));
    }
}

__global__ void k_adamw(OptimizerArgs a) {
    GRID_STRIDE(i, a.n) {
        const float g = ld(a.grad.p, a.grad.dt, i) * a.grad_scale;
        float p = ld(a.param.p, a.param.dt, i) * (1.0f - a.lr * a.weight_decay);
        const float m = a.beta1 * ld(a.m.p, a.m.dt, i) + (1.0f - a.beta1) * g;
        const float v = a.beta2 * ld(a.v.p, a.v.dt, i) + (1.0f - a.beta2) * g * g;
        p -= a.step_size * m / (sqrtf(v) / a.bc2_sqrt + a.eps);
        st(a.m.p, a.m.dt, i, m);
        st(a.v.p, a.v.dt, i, v);
        st(a.param.p, a.param.dt, i, p);
        if (a.copy.p) st(a.copy.p, a.copy.dt, i, p);
    }
}

__global__ void k_sgd(OptimizerArgs a) {
    GRID_STRIDE(i, a.n) {
        float p = ld(a.param.p, a.param.dt, i);
        float d = ld(a.grad.p, a.grad.dt, i) * a.grad_scale + a.weight_decay * p;
        if (a.m.p) {
            d += a.momentum * ld(a.m.p, a.m.dt, i);
            st(a.m.p, a.m.dt, i, d);
        }
        p -= a.lr * d;
        st(a.param.p, a.param.dt, i, p);
        if (a.copy.p) st(a.copy.p, a.copy.dt, i, p);
    }
}

int row_grid(std::int64_t rows) { return static_cast<int>(rows); }

}  // namespace

void convert(Arr src, Arr dst, std::int64_t n, cudaStream_t s) {
    if (n > 0) k_convert<<<blocks_for(n), kThreads, 0, s>>>(src, dst, n);
}
void axpby(float alpha, Arr a, float beta, Arr b, Arr out, std::int64_t n, cudaStream_t s) {
    if (n > 0) k_axpby<<<blocks_for(n), kThreads, 0, s>>>(alpha, a, beta, b, out, n);
}
void mul(Arr a, Arr b, Arr out, std::int64_t n, bool accumulate, cudaStream_t s) {
    if (n > 0) k_mul<<<blocks_for(n), kThreads, 0, s>>>(a, b, out, n, accumulate);
}
void add_bias(Arr x, Arr bias, std::int64_t rows, std::int64_t n, cudaStream_t s) {
    if (rows * n > 0) k_add_bias<<<blocks_for(rows * n), kThreads, 0, s>>>(x, bias, rows, n);
}
void bias_grad(Arr dy, Arr dbias, std::int64_t rows, std::int64_t n, cudaStream_t s) {
    if (n > 0) k_bias_grad<<<blocks_for(n), kThreads, 0, s>>>(dy, dbias, rows, n);
}
void norm_forward(const NormArgs& a, cudaStream_t s) {
    if (a.rows > 0) k_norm_forward<<<row_grid(a.rows), kThreads, 0, s>>>(a);
}
void norm_backward(const NormArgs& a, cudaStream_t s) {
    if (a.rows <= 0) return;
    if (a.dx.p) k_norm_backward_dx<<<row_grid(a.rows), kThreads, 0, s>>>(a);
    if (a.dw.p || a.db.p) k_norm_backward_params<<<blocks_for(a.d), kThreads, 0, s>>>(a);
}
void activation_forward(int f, Arr x, Arr y, std::int64_t n, cudaStream_t s) {
    if (n > 0) k_act_forward<<<blocks_for(n), kThreads, 0, s>>>(f, x, y, n);
}
void activation_backward(int f, Arr x, Arr dy, Arr dx, bool accumulate, std::int64_t n, cudaStream_t s) {
    if (n > 0) k_act_backward<<<blocks_for(n), kThreads, 0, s>>>(f, x, dy, dx, accumulate, n);
}
void softmax_forward(const SoftmaxArgs& a, cudaStream_t s) {
    if (a.rows > 0) k_softmax_forward<<<row_grid(a.rows), kThreads, 0, s>>>(a);
}
void softmax_backward(const SoftmaxArgs& a, cudaStream_t s) {
    if (a.rows > 0) k_softmax_backward<<<row_grid(a.rows), kThreads, 0, s>>>(a);
}
void rotary(const RotaryArgs& a, cudaStream_t s) {
    const std::int64_t n = a.tokens * a.heads * (a.rotary_dim / 2);
    if (n > 0) k_rotary<<<blocks_for(n), kThreads, 0, s>>>(a);
}
void embedding_forward(Arr table, const std::int32_t* ids, Arr out, std::int64_t rows, std::int64_t d, bool accumulate,
                       cudaStream_t s) {
    if (rows * d > 0) k_embedding_forward<<<blocks_for(rows * d), kThreads, 0, s>>>(table, ids, out, rows, d, accumulate);
}
void embedding_backward(Arr dtable, const std::int32_t* order, const std::int32_t* start, const std::int32_t* seg_id,
                        std::int64_t segments, Arr dout, std::int64_t d, cudaStream_t s) {
    if (segments > 0) k_embedding_backward<<<row_grid(segments), kThreads, 0, s>>>(dtable, order, start, seg_id, dout, d);
}
void cross_entropy_forward(Arr logits, const std::int32_t* targets, Arr log_probs, float* losses,
                           std::int64_t rows, std::int64_t vocab, cudaStream_t s) {
    if (rows > 0) k_cross_entropy_forward<<<row_grid(rows), kThreads, 0, s>>>(logits, targets, log_probs, losses, vocab);
}
void cross_entropy_backward(Arr log_probs, const std::int32_t* targets, float scale, Arr dlogits,
                            std::int64_t rows, std::int64_t vocab, cudaStream_t s) {
    if (rows * vocab > 0)
        k_cross_entropy_backward<<<blocks_for(rows * vocab), kThreads, 0, s>>>(log_probs, targets, scale, dlogits, rows, vocab);
}
void cross_entropy_fused(Arr logits, const std::int32_t* targets, float* losses, float scale, std::int64_t rows,
                         std::int64_t vocab, cudaStream_t s) {
    if (rows > 0) k_cross_entropy_fused<<<row_grid(rows), kThreads, 0, s>>>(logits, targets, losses, scale, vocab);
}
void dropout(const DropoutArgs& a, cudaStream_t s) {
    const std::int64_t n = a.rows * a.cols;
    if (n > 0) k_dropout<<<blocks_for(n), kThreads, 0, s>>>(a, dropout_bits::threshold(a.p), 1.0f / (1.0f - a.p));
}
void copy2d(const Copy2dArgs& a, cudaStream_t s) {
    const std::int64_t n = a.batch * a.rows * a.cols;
    if (n > 0) k_copy2d<<<blocks_for(n), kThreads, 0, s>>>(a);
}
void adamw(const OptimizerArgs& a, cudaStream_t s) {
    if (a.n > 0) k_adamw<<<blocks_for(a.n), kThreads, 0, s>>>(a);
}
void sgd(const OptimizerArgs& a, cudaStream_t s) {
    if (a.n > 0) k_sgd<<<blocks_for(a.n), kThreads, 0, s>>>(a);
}

}  // namespace shardsim::device::cuda
