#pragma once
// A compute device: tracked allocation, data movement, GEMMs, the elementwise and reduction
// kernels the transformer needs, and timing. CpuDevice (CBLAS, one thread per rank) always;
// CudaDevice (cuBLAS + our kernels) when built with CUDA.
//
// Streams: kernels run on the device's current stream (compute, comm or copy). On the CPU every
// stream runs on the calling thread at once; on a GPU they are CUDA streams, and an Event
// recorded on one stream can be waited for on another — overlap without a host sync.
#include <cstdint>
#include <memory>
#include <string>

#include "shardsim/device/memory.hpp"
#include "shardsim/device/tensor.hpp"
#include "shardsim/model/spec.hpp"

namespace shardsim::device {

enum class DeviceStream { compute, comm, copy };

// --- kernel arguments ------------------------------------------------------------------------
// Every kernel reads 16-bit values as stored, computes in fp32 and rounds each result once
// (round-to-nearest-even) into the output's dtype. Shapes are row-major. Token-indexed tensors
// are [tokens, width] with tokens = batch * seq, batch-major.

// One GEMM operand or result: element (i, j) of matrix b is data[b * batch_stride + i * ld + j].
struct MatrixRef {
    void* data = nullptr;
    DType dtype = DType::fp32;
    std::int64_t ld = 0;
    std::int64_t batch_stride = 0;
    bool trans = false;  // operands: read the transpose
};

// c = alpha * op(a) op(b) + beta * c for each of `batch` matrices; op(a) is m x k, op(b) k x n.
// beta == 0 never reads c.
struct GemmOp {
    MatrixRef a, b, c;
    std::int64_t m = 0, n = 0, k = 0, batch = 1;
    float alpha = 1, beta = 0;
};

// y = norm(x) * weight (+ bias) over the last dim d of x [rows, d]. stats (fp32) receives
// (mean, rstd) per row for LayerNorm, rstd per row for RMSNorm (T5LayerNorm, Llama RMSNorm).
struct NormOp {
    model::NormKind kind = model::NormKind::layernorm;
    Tensor x, weight, bias, y, stats;  // bias may be empty
    float eps = 1e-5f;
};

// dx (= or +=) from dy; dweight and dbias += (empty: not wanted).
struct NormGradOp {
    model::NormKind kind = model::NormKind::layernorm;
    Tensor x, weight, stats, dy, dx, dweight, dbias;
    bool accumulate = false;
};

enum class Activation {
    gelu_tanh,  // GPT-2/BLOOM/T5 v1.1/CodeGen "gelu_new": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    relu,
    silu,
};

// Softmax over the last dim of fp32 scores [batch, heads, sq, sk]:
//   probs = softmax(scale * scores + bias + alibi, masked) in probs' dtype.
// `lse` (fp32, one per row), when given, receives each row's log-sum-exp of the scaled, masked
// scores; with `use_lse` it is read instead and probs = exp(x - lse) (no reductions): how an sdpa
// / flash backward rebuilds the probabilities from what its forward kept.
struct SoftmaxOp {
    Tensor scores;       // fp32
    Tensor probs;
    float scale = 1;
    bool causal = false;  // key j is masked for query i when j > i + (sk - sq)
    Tensor bias;          // [heads, sq, sk], shared by the batch (T5 relative position bias), or empty
    Tensor alibi;         // fp32 [heads]: slope * key position is added (BLOOM), or empty
    Tensor lse;           // fp32 [batch * heads * sq], or empty
    bool use_lse = false;
};

// dscores = probs * (dprobs - sum(probs * dprobs)); dscores may be dprobs itself. dbias (fp32,
// [heads, sq, sk]) += dscores summed over the batch, when not empty.
struct SoftmaxGradOp {
    Tensor probs, dprobs, dscores, dbias;
};

// Rotary position embedding on x [tokens, heads, head_dim] in place, on the first rotary_dim
// dims of each head; token t is at position t % seq. Pair i (of rotary_dim / 2) turns by
// position * base^(-2i / rotary_dim). Llama pairs dims (i, i + rotary_dim/2) (rotate_half);
// CodeGen/GPT-J pairs (2i, 2i+1) (rotate_every_two). `inverse` turns the other way: the backward.
struct RotaryOp {
    Tensor x;
    std::int64_t heads = 0, head_dim = 0, rotary_dim = 0, seq = 1;
    bool interleaved = false;
    bool inverse = false;
    float base = 10000;
};

// Row gathers: out[t] (= or +=) table[ids[t]]; the backward dtable[ids[t]] += dout[t], summed in
// fp32 per row of the table before it is added. ids are int32 in device memory, one per row of
// out / dout.
struct EmbeddingOp {
    Tensor table, out;
    const std::int32_t* ids = nullptr;
    bool accumulate = false;
};

// Cross-entropy of fp32 logits [tokens, vocab] against int32 targets: log_probs (fp32, same
// shape) and the per-token loss (fp32 [tokens]). Backward: dlogits = scale * (softmax - onehot).
// The fused form (a Liger-style kernel) reads logits of any dtype, writes the per-token loss and
// overwrites the logits with scale * (softmax - onehot) in their dtype: no log_probs.
struct CrossEntropyOp {
    Tensor logits, log_probs, losses;
    const std::int32_t* targets = nullptr;
};

// Dropout, PyTorch's rule: out (= or +=) x * keep / (1 - p), keep = 1 with probability 1 - p.
// The keep bits are read from `mask_in` when given (backward: the same op on the gradient);
// otherwise drawn from a counter-based hash of (key, global sample, element within the sample),
// the same on every device, rank and recompute (so a sharded run draws what a single process
// draws for the same sample), and stored in `mask_out` (1 byte per element) when given. x and out
// are [rows, cols] row-major (out may be x); physical row r is logical row row0 + r of a tensor
// whose samples have rows_per_sample rows of `width` logical columns (cols <= width: a block of
// an attention row).
struct DropoutOp {
    Tensor x, out;
    const std::uint8_t* mask_in = nullptr;
    std::uint8_t* mask_out = nullptr;
    float p = 0;
    std::uint64_t key = 0;
    std::int64_t rows = 0, cols = 0;
    std::int64_t first_sample = 0, row0 = 0, rows_per_sample = 1, width = 0;
    bool accumulate = false;
};

// A strided copy with dtype conversion: for b < batch, i < rows, j < cols
//   dst[b * dst_batch_stride + i * dst_ld + j] = src[b * src_batch_stride + i * src_ld + j].
struct Copy2dOp {
    const void* src = nullptr;
    DType src_dtype = DType::fp32;
    void* dst = nullptr;
    DType dst_dtype = DType::fp32;
    std::int64_t batch = 1, rows = 0, cols = 0;
    std::int64_t src_ld = 0, dst_ld = 0, src_batch_stride = 0, dst_batch_stride = 0;
};

// Optimizer updates on flat shards. `param` is what is updated (fp32 master weights, or the
// parameters themselves when there are none); `param_copy`, when not empty, receives the updated
// values in its (16-bit) dtype. The gradient is multiplied by grad_scale first.
struct AdamWOp {
    Tensor param, grad, exp_avg, exp_avg_sq, param_copy;
    float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0, grad_scale = 1;
    std::int64_t step = 1;  // 1-based, for the bias corrections
};

// PyTorch SGD: d = g + wd * p; buf = momentum * buf + d (no momentum: buf = d); p -= lr * buf.
struct SgdOp {
    Tensor param, grad, momentum_buf, param_copy;  // momentum_buf empty when momentum == 0
    float lr = 1e-2f, momentum = 0, weight_decay = 0, grad_scale = 1;
};

// A point on a stream; its time becomes readable once the stream has passed it.
struct Event {
    int id = -1;
};

class Device {
public:
    virtual ~Device() = default;
    virtual std::string name() const = 0;
    virtual bool is_gpu() const = 0;
    TrackingAllocator& allocator() { return *allocator_; }

    // --- streams, events, time -----------------------------------------------------------
    virtual void set_stream(DeviceStream s) = 0;
    virtual DeviceStream stream() const = 0;
    virtual Event record() = 0;                 // on the current stream
    virtual void wait(Event e) = 0;             // the current stream waits for e
    virtual void synchronize() = 0;             // the host waits for every stream
    virtual double event_seconds(Event e) = 0;  // time of e since the device was made (after it completed)
    // The current stream's native handle (a cudaStream_t; nullptr on the CPU), for NCCL.
    virtual void* native_stream() { return nullptr; }
    // Bytes the runtime itself holds on the device (CUDA context etc.; 0 on the CPU).
    virtual std::int64_t runtime_bytes() = 0;

    // --- data movement ---------------------------------------------------------------------
    virtual void copy(void* dst, const void* src, std::int64_t bytes) = 0;            // device -> device
    virtual void copy_to_host(void* host, const void* dev, std::int64_t bytes) = 0;   // device -> host
    virtual void copy_from_host(void* dev, const void* host, std::int64_t bytes) = 0; // host -> device
    virtual void fill_zero(void* dst, std::int64_t bytes) = 0;
    // dst = src converted between dtypes (round-to-nearest-even into 16 bits); same numel.
    virtual void convert(const Tensor& src, const Tensor& dst) = 0;
    // dst += src (dst and src of any dtypes, same numel), accumulating in fp32.
    virtual void accumulate(const Tensor& dst, const Tensor& src) = 0;

    // --- kernels (arguments above) ------------------------------------------------------------
    // Counts 2 * m * n * k * batch FLOPs, then runs.
    void gemm(const GemmOp& op);
    virtual void norm_forward(const NormOp& op) = 0;
    virtual void norm_backward(const NormGradOp& op) = 0;
    virtual void activation_forward(Activation f, const Tensor& x, const Tensor& y) = 0;
    // dx (= or +=) dy * f'(x). ReLU may be given its output in place of x (the sign is the same).
    virtual void activation_backward(Activation f, const Tensor& x, const Tensor& dy, const Tensor& dx,
                                     bool accumulate) = 0;
    // out (= or +=) a * b, elementwise.
    virtual void mul(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) = 0;
    // out = alpha * a + beta * b (b may be empty); out may alias a or b.
    virtual void axpby(float alpha, const Tensor& a, float beta, const Tensor& b, const Tensor& out) = 0;
    // x [rows, n] += bias [n] on every row; dbias [n] += the column sums of dy [rows, n].
    virtual void add_bias(const Tensor& x, const Tensor& bias) = 0;
    virtual void bias_grad(const Tensor& dy, const Tensor& dbias) = 0;
    virtual void softmax_forward(const SoftmaxOp& op) = 0;
    virtual void softmax_backward(const SoftmaxGradOp& op) = 0;
    virtual void rotary(const RotaryOp& op) = 0;
    virtual void embedding_forward(const EmbeddingOp& op) = 0;
    virtual void embedding_backward(const EmbeddingOp& op) = 0;  // table: the gradient, out: dout
    virtual void cross_entropy_forward(const CrossEntropyOp& op) = 0;
    virtual void cross_entropy_backward(const CrossEntropyOp& op, float scale, const Tensor& dlogits) = 0;
    virtual void cross_entropy_fused(const CrossEntropyOp& op, float scale) = 0;
    virtual void dropout(const DropoutOp& op) = 0;
    virtual void copy2d(const Copy2dOp& op) = 0;
    virtual void adamw(const AdamWOp& op) = 0;
    virtual void sgd(const SgdOp& op) = 0;

    // GEMM FLOPs performed on this device (2 per multiply-add).
    double gemm_flops() const { return gemm_flops_; }

protected:
    virtual void run_gemm(const GemmOp& op) = 0;
    std::unique_ptr<TrackingAllocator> allocator_;
    double gemm_flops_ = 0;
};

// One thread per process unless `threads` says otherwise.
std::unique_ptr<Device> make_cpu_device(int threads = 1);
// Whether this build has CUDA and a GPU is visible; `why` says why not.
bool cuda_available(std::string* why);
// GPUs this process sees (0 without CUDA or a driver).
int cuda_device_count();
// The GPU `index` as seen by this process (after CUDA_VISIBLE_DEVICES).
std::unique_ptr<Device> make_cuda_device(int index);

}  // namespace shardsim::device
