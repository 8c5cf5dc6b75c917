// CudaDevice: cudaMalloc'd memory through the tracking allocator, three CUDA streams (compute,
// comm, copy), CUDA events for time, cuBLAS for the GEMMs and kernels.cu for the rest.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "cuda_check.hpp"
#include "cuda_kernels.hpp"
#include "shardsim/device/device.hpp"

namespace shardsim::device {

namespace {

cuda::Arr arr(const Tensor& t) { return {t.data, static_cast<int>(t.dtype)}; }
cuda::Arr arr(const void* p, DType dt) { return {const_cast<void*>(p), static_cast<int>(dt)}; }

cudaDataType_t cuda_type(DType t) {
    switch (t) {
        case DType::bf16: return CUDA_R_16BF;
        case DType::fp16: return CUDA_R_16F;
        case DType::fp32: break;
    }
    return CUDA_R_32F;
}

int as_int(std::int64_t v, const char* what) {
    SHARDSIM_ASSERT(v >= 0 && v <= 0x7fffffff, std::string(what) + " does not fit cuBLAS's int");
    return static_cast<int>(v);
}

std::int64_t last_dim(const Tensor& t) { return t.shape.empty() ? 1 : t.shape.back(); }

class CudaDevice final : public Device {
public:
    explicit CudaDevice(int index) : index_(index) {
        SHARDSIM_CUDA_CHECK(cudaSetDevice(index));
        cudaDeviceProp prop{};
        SHARDSIM_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
        name_ = std::string(prop.name) + " (cuda:" + std::to_string(index) + ")";
        for (auto& s : streams_) SHARDSIM_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        SHARDSIM_CUBLAS_CHECK(cublasCreate(&blas_));
        SHARDSIM_CUDA_CHECK(cudaEventCreate(&start_));
        SHARDSIM_CUDA_CHECK(cudaEventRecord(start_, streams_[0]));
        // Device memory is stream-ordered (cudaMallocAsync / cudaFreeAsync on the current stream,
        // from a pool that keeps what it frees): a plain cudaFree would synchronize the whole
        // device and destroy the overlap of the comm stream with compute. The rule that follows,
        // as with PyTorch's caching allocator: release a buffer from a stream ordered after every
        // use of it (the schedule's Free ops depend on its users).
        int pools = 0;
        SHARDSIM_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, index));
        pooled_ = pools != 0;
        if (pooled_) {
            cudaMemPool_t pool = nullptr;
            SHARDSIM_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, index));
            std::uint64_t keep_all = ~std::uint64_t{0};
            SHARDSIM_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all));
        }
        RawMemory dev;
        dev.allocate = [this](std::int64_t bytes) -> void* {
            void* p = nullptr;
            const cudaError_t err = pooled_ ? cudaMallocAsync(&p, static_cast<std::size_t>(bytes), cur())
                                            : cudaMalloc(&p, static_cast<std::size_t>(bytes));
            if (err != cudaSuccess) {
                (void)cudaGetLastError();  // out of memory is reported by the allocator, with who asked
                return nullptr;
            }
            return p;
        };
        dev.release = [this](void* p) {
            if (pooled_)
                SHARDSIM_CUDA_CHECK_NOTHROW(cudaFreeAsync(p, cur()));
            else
                SHARDSIM_CUDA_CHECK_NOTHROW(cudaFree(p));
        };
        dev.name = "cuda:" + std::to_string(index);
        RawMemory host;
        host.allocate = [](std::int64_t bytes) -> void* {
            void* p = nullptr;
            if (cudaMallocHost(&p, static_cast<std::size_t>(bytes)) != cudaSuccess) {
                (void)cudaGetLastError();
                return nullptr;
            }
            return p;
        };
        host.release = [](void* p) { SHARDSIM_CUDA_CHECK_NOTHROW(cudaFreeHost(p)); };
        host.name = "pinned host";
        allocator_ = std::make_unique<TrackingAllocator>(std::move(dev), std::move(host));
    }

    ~CudaDevice() override {
        SHARDSIM_CUDA_CHECK_NOTHROW(cudaDeviceSynchronize());
        stream_ = DeviceStream::compute;
        allocator_.reset();  // releases what is still live while the streams exist
        SHARDSIM_CUDA_CHECK_NOTHROW(cudaDeviceSynchronize());
        for (auto e : events_) SHARDSIM_CUDA_CHECK_NOTHROW(cudaEventDestroy(e));
        SHARDSIM_CUDA_CHECK_NOTHROW(cudaEventDestroy(start_));
        if (cublasDestroy(blas_) != CUBLAS_STATUS_SUCCESS) std::fprintf(stderr, "cublasDestroy failed\n");
        for (auto s : streams_) SHARDSIM_CUDA_CHECK_NOTHROW(cudaStreamDestroy(s));
    }

    std::string name() const override { return name_; }
    bool is_gpu() const override { return true; }

    void set_stream(DeviceStream s) override { stream_ = s; }
    DeviceStream stream() const override { return stream_; }
    Event record() override {
        cudaEvent_t e = nullptr;
        SHARDSIM_CUDA_CHECK(cudaEventCreate(&e));
        SHARDSIM_CUDA_CHECK(cudaEventRecord(e, cur()));
        events_.push_back(e);
        return Event{static_cast<int>(events_.size()) - 1};
    }
    void wait(Event e) override { SHARDSIM_CUDA_CHECK(cudaStreamWaitEvent(cur(), event(e), 0)); }
    void synchronize() override { SHARDSIM_CUDA_CHECK(cudaDeviceSynchronize()); }
    double event_seconds(Event e) override {
        SHARDSIM_CUDA_CHECK(cudaEventSynchronize(event(e)));
        float ms = 0;
        SHARDSIM_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, event(e)));
        return static_cast<double>(ms) * 1e-3;
    }
    void* native_stream() override { return cur(); }
    std::int64_t runtime_bytes() override {
        std::size_t free = 0, total = 0;
        SHARDSIM_CUDA_CHECK(cudaMemGetInfo(&free, &total));
        const auto used = static_cast<std::int64_t>(total - free);
        return std::max<std::int64_t>(0, used - allocator_->current().device_total());
    }

    void copy(void* dst, const void* src, std::int64_t bytes) override {
        if (bytes > 0) SHARDSIM_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(bytes), cudaMemcpyDefault, cur()));
    }
    // Host copies return when the host side may be read or reused.
    void copy_to_host(void* host, const void* dev, std::int64_t bytes) override {
        if (bytes <= 0) return;
        SHARDSIM_CUDA_CHECK(cudaMemcpyAsync(host, dev, static_cast<std::size_t>(bytes), cudaMemcpyDeviceToHost, cur()));
        SHARDSIM_CUDA_CHECK(cudaStreamSynchronize(cur()));
    }
    void copy_from_host(void* dev, const void* host, std::int64_t bytes) override {
        if (bytes <= 0) return;
        SHARDSIM_CUDA_CHECK(cudaMemcpyAsync(dev, host, static_cast<std::size_t>(bytes), cudaMemcpyHostToDevice, cur()));
        SHARDSIM_CUDA_CHECK(cudaStreamSynchronize(cur()));
    }
    void fill_zero(void* dst, std::int64_t bytes) override {
        if (bytes > 0) SHARDSIM_CUDA_CHECK(cudaMemsetAsync(dst, 0, static_cast<std::size_t>(bytes), cur()));
    }
    void convert(const Tensor& src, const Tensor& dst) override {
        SHARDSIM_ASSERT(src.numel() == dst.numel(), "convert: element counts differ");
        cuda::convert(arr(src), arr(dst), src.numel(), cur());
        launched();
    }
    void accumulate(const Tensor& dst, const Tensor& src) override {
        SHARDSIM_ASSERT(src.numel() == dst.numel(), "accumulate: element counts differ");
        cuda::axpby(1.0f, arr(dst), 1.0f, arr(src), arr(dst), dst.numel(), cur());
        launched();
    }

    void norm_forward(const NormOp& op) override {
        cuda::NormArgs a = norm_args(op.kind, op.x);
        a.w = arr(op.weight);
        a.b = arr(op.bias);
        a.y = arr(op.y);
        a.stats = static_cast<float*>(op.stats.data);
        a.eps = op.eps;
        cuda::norm_forward(a, cur());
        launched();
    }
    void norm_backward(const NormGradOp& op) override {
        cuda::NormArgs a = norm_args(op.kind, op.x);
        a.w = arr(op.weight);
        a.stats = static_cast<float*>(op.stats.data);
        a.dy = arr(op.dy);
        a.dx = arr(op.dx);
        a.dw = arr(op.dweight);
        a.db = arr(op.dbias);
        a.accumulate = op.accumulate;
        cuda::norm_backward(a, cur());
        launched();
    }
    void activation_forward(Activation f, const Tensor& x, const Tensor& y) override {
        cuda::activation_forward(static_cast<int>(f), arr(x), arr(y), x.numel(), cur());
        launched();
    }
    void activation_backward(Activation f, const Tensor& x, const Tensor& dy, const Tensor& dx, bool accumulate) override {
        cuda::activation_backward(static_cast<int>(f), arr(x), arr(dy), arr(dx), accumulate, x.numel(), cur());
        launched();
    }
    void mul(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) override {
        cuda::mul(arr(a), arr(b), arr(out), out.numel(), accumulate, cur());
        launched();
    }
    void axpby(float alpha, const Tensor& a, float beta, const Tensor& b, const Tensor& out) override {
        cuda::axpby(alpha, arr(a), beta, arr(b), arr(out), out.numel(), cur());
        launched();
    }
    void add_bias(const Tensor& x, const Tensor& bias) override {
        cuda::add_bias(arr(x), arr(bias), x.numel() / bias.numel(), bias.numel(), cur());
        launched();
    }
    void bias_grad(const Tensor& dy, const Tensor& dbias) override {
        cuda::bias_grad(arr(dy), arr(dbias), dy.numel() / dbias.numel(), dbias.numel(), cur());
        launched();
    }
    void softmax_forward(const SoftmaxOp& op) override {
        SHARDSIM_ASSERT(op.scores.shape.size() == 4 && op.scores.dtype == DType::fp32, "softmax: fp32 [b, h, sq, sk] scores");
        cuda::SoftmaxArgs a = softmax_args(op.scores);
        a.scores = static_cast<const float*>(op.scores.data);
        a.probs = arr(op.probs);
        a.bias = arr(op.bias);
        a.alibi = static_cast<const float*>(op.alibi.data);
        a.scale = op.scale;
        a.causal = op.causal;
        a.lse = static_cast<float*>(op.lse.data);
        a.use_lse = op.use_lse;
        SHARDSIM_ASSERT(!op.use_lse || a.lse, "softmax: use_lse without an lse");
        cuda::softmax_forward(a, cur());
        launched();
    }
    void softmax_backward(const SoftmaxGradOp& op) override {
        cuda::SoftmaxArgs a = softmax_args(op.probs);
        a.probs = arr(op.probs);
        a.dprobs = arr(op.dprobs);
        a.dscores = arr(op.dscores);
        a.dbias = static_cast<float*>(op.dbias.data);
        cuda::softmax_backward(a, cur());
        launched();
    }
    void rotary(const RotaryOp& op) override {
        cuda::RotaryArgs a;
        a.x = arr(op.x);
        a.tokens = op.x.numel() / (op.heads * op.head_dim);
        a.heads = op.heads;
        a.head_dim = op.head_dim;
        a.rotary_dim = op.rotary_dim;
        a.seq = op.seq;
        a.interleaved = op.interleaved;
        a.inverse = op.inverse;
        a.base = op.base;
        cuda::rotary(a, cur());
        launched();
    }
    void embedding_forward(const EmbeddingOp& op) override {
        const std::int64_t d = last_dim(op.out);
        cuda::embedding_forward(arr(op.table), op.ids, arr(op.out), op.out.numel() / d, d, op.accumulate, cur());
        launched();
    }
    void embedding_backward(const EmbeddingOp& op) override;
    void cross_entropy_forward(const CrossEntropyOp& op) override {
        const std::int64_t vocab = last_dim(op.logits);
        cuda::cross_entropy_forward(arr(op.logits), op.targets, arr(op.log_probs),
                                    static_cast<float*>(op.losses.data), op.logits.numel() / vocab, vocab, cur());
        launched();
    }
    void cross_entropy_backward(const CrossEntropyOp& op, float scale, const Tensor& dlogits) override {
        const std::int64_t vocab = last_dim(op.log_probs);
        cuda::cross_entropy_backward(arr(op.log_probs), op.targets, scale, arr(dlogits),
                                     op.log_probs.numel() / vocab, vocab, cur());
        launched();
    }
    void cross_entropy_fused(const CrossEntropyOp& op, float scale) override {
        const std::int64_t vocab = last_dim(op.logits);
        cuda::cross_entropy_fused(arr(op.logits), op.targets, static_cast<float*>(op.losses.data), scale,
                                  op.logits.numel() / vocab, vocab, cur());
        launched();
    }
    void dropout(const DropoutOp& op) override {
        SHARDSIM_ASSERT(op.p >= 0 && op.p < 1 && op.cols <= op.width && op.rows_per_sample > 0, "dropout: bad arguments");
        SHARDSIM_ASSERT(op.x.numel() == op.rows * op.cols && op.out.numel() == op.rows * op.cols, "dropout: tensors of another size");
        cuda::DropoutArgs a;
        a.x = arr(op.x);
        a.out = arr(op.out);
        a.mask_in = op.mask_in;
        a.mask_out = op.mask_out;
        a.p = op.p;
        a.key = op.key;
        a.rows = op.rows;
        a.cols = op.cols;
        a.first_sample = op.first_sample;
        a.row0 = op.row0;
        a.rows_per_sample = op.rows_per_sample;
        a.width = op.width;
        a.accumulate = op.accumulate;
        cuda::dropout(a, cur());
        launched();
    }
    void copy2d(const Copy2dOp& op) override {
        cuda::Copy2dArgs a;
        a.src = arr(op.src, op.src_dtype);
        a.dst = arr(op.dst, op.dst_dtype);
        a.batch = op.batch;
        a.rows = op.rows;
        a.cols = op.cols;
        a.src_ld = op.src_ld;
        a.dst_ld = op.dst_ld;
        a.src_stride = op.src_batch_stride;
        a.dst_stride = op.dst_batch_stride;
        cuda::copy2d(a, cur());
        launched();
    }
    void adamw(const AdamWOp& op) override;
    void sgd(const SgdOp& op) override;

protected:
    void run_gemm(const GemmOp& op) override;

private:
    cudaStream_t cur() const { return streams_[static_cast<int>(stream_)]; }
    cudaEvent_t event(Event e) const {
        SHARDSIM_ASSERT(e.id >= 0 && e.id < static_cast<int>(events_.size()), "unknown event");
        return events_[static_cast<std::size_t>(e.id)];
    }
    static void launched() { SHARDSIM_CUDA_CHECK(cudaGetLastError()); }
    static cuda::NormArgs norm_args(model::NormKind kind, const Tensor& x) {
        cuda::NormArgs a;
        a.layernorm = kind == model::NormKind::layernorm;
        a.x = arr(x);
        a.d = last_dim(x);
        a.rows = x.numel() / a.d;
        return a;
    }
    static cuda::SoftmaxArgs softmax_args(const Tensor& t) {
        cuda::SoftmaxArgs a;
        a.heads = t.shape.at(1);
        a.sq = t.shape.at(2);
        a.sk = t.shape.at(3);
        a.rows = t.numel() / a.sk;
        return a;
    }
    // An fp32 copy of a strided operand (rows x cols per matrix), for dtype mixes cuBLAS lacks.
    Buffer widen(MatrixRef& m, std::int64_t rows, std::int64_t cols, std::int64_t batch, bool load);

    int index_;
    bool pooled_ = false;
    std::string name_;
    cudaStream_t streams_[3] = {nullptr, nullptr, nullptr};
    DeviceStream stream_ = DeviceStream::compute;
    cublasHandle_t blas_ = nullptr;
    cudaEvent_t start_ = nullptr;
    std::vector<cudaEvent_t> events_;
};

Buffer CudaDevice::widen(MatrixRef& m, std::int64_t rows, std::int64_t cols, std::int64_t batch, bool load) {
    const std::int64_t copies = m.batch_stride == 0 ? 1 : batch;
    Buffer buf(*allocator_, copies * rows * cols * 4, MemCategory::temporaries, "GEMM fp32 staging");
    if (load) {
        Copy2dOp c;
        c.src = m.data;
        c.src_dtype = m.dtype;
        c.dst = buf.data();
        c.dst_dtype = DType::fp32;
        c.batch = copies;
        c.rows = rows;
        c.cols = cols;
        c.src_ld = m.ld;
        c.dst_ld = cols;
        c.src_batch_stride = m.batch_stride;
        c.dst_batch_stride = rows * cols;
        copy2d(c);
    }
    m.data = buf.data();
    m.dtype = DType::fp32;
    m.ld = cols;
    m.batch_stride = m.batch_stride == 0 ? 0 : rows * cols;
    return buf;
}

void CudaDevice::run_gemm(const GemmOp& op) {
    GemmOp g = op;
    Buffer sa, sb, sc;
    // cuBLAS with fp32 compute takes a and b of one dtype and c of that dtype or fp32.
    const bool native = g.a.dtype == g.b.dtype && (g.c.dtype == g.a.dtype || g.c.dtype == DType::fp32);
    if (!native) {
        if (g.a.dtype != DType::fp32) sa = widen(g.a, g.a.trans ? g.k : g.m, g.a.trans ? g.m : g.k, g.batch, true);
        if (g.b.dtype != DType::fp32) sb = widen(g.b, g.b.trans ? g.n : g.k, g.b.trans ? g.k : g.n, g.batch, true);
        if (g.c.dtype != DType::fp32) sc = widen(g.c, g.m, g.n, g.batch, g.beta != 0);
    }
    SHARDSIM_CUBLAS_CHECK(cublasSetStream(blas_, cur()));
    // Row-major c = op(a) op(b) is column-major c^T = op(b)^T op(a)^T: the operands swap places.
    const cublasOperation_t ta = g.a.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t tb = g.b.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int m = as_int(g.m, "GEMM m"), n = as_int(g.n, "GEMM n"), k = as_int(g.k, "GEMM k");
    const int lda = std::max(1, as_int(g.a.ld, "lda")), ldb = std::max(1, as_int(g.b.ld, "ldb"));
    const int ldc = std::max(1, as_int(g.c.ld, "ldc"));
    if (g.batch == 1) {
        SHARDSIM_CUBLAS_CHECK(cublasGemmEx(blas_, tb, ta, n, m, k, &g.alpha, g.b.data, cuda_type(g.b.dtype), ldb, g.a.data,
                                           cuda_type(g.a.dtype), lda, &g.beta, g.c.data, cuda_type(g.c.dtype), ldc,
                                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
        SHARDSIM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
            blas_, tb, ta, n, m, k, &g.alpha, g.b.data, cuda_type(g.b.dtype), ldb, g.b.batch_stride, g.a.data,
            cuda_type(g.a.dtype), lda, g.a.batch_stride, &g.beta, g.c.data, cuda_type(g.c.dtype), ldc, g.c.batch_stride,
            as_int(g.batch, "GEMM batch"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    if (sc) {
        Copy2dOp c;
        c.src = sc.data();
        c.src_dtype = DType::fp32;
        c.dst = op.c.data;
        c.dst_dtype = op.c.dtype;
        c.batch = op.c.batch_stride == 0 ? 1 : op.batch;
        c.rows = op.m;
        c.cols = op.n;
        c.src_ld = op.n;
        c.dst_ld = op.c.ld;
        c.src_batch_stride = op.m * op.n;
        c.dst_batch_stride = op.c.batch_stride;
        copy2d(c);
    }
    // The staging buffers are released (cudaFree waits for the GEMM) when this returns.
}

// Rows are grouped by id on the host (the ids are a few KiB), so that each table row is summed
// in fp32 and written once: deterministic, and exact for 16-bit tables up to the final rounding.
void CudaDevice::embedding_backward(const EmbeddingOp& op) {
    const std::int64_t d = last_dim(op.out), rows = op.out.numel() / d;
    if (rows == 0) return;
    std::vector<std::int32_t> ids(static_cast<std::size_t>(rows));
    copy_to_host(ids.data(), op.ids, rows * 4);
    std::vector<std::int32_t> order(ids.size()), start, seg_id;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
        return ids[static_cast<std::size_t>(a)] < ids[static_cast<std::size_t>(b)];
    });
    for (std::size_t q = 0; q < order.size(); ++q) {
        const std::int32_t id = ids[static_cast<std::size_t>(order[q])];
        if (seg_id.empty() || seg_id.back() != id) {
            seg_id.push_back(id);
            start.push_back(static_cast<std::int32_t>(q));
        }
    }
    start.push_back(static_cast<std::int32_t>(order.size()));
    const auto segments = static_cast<std::int64_t>(seg_id.size());
    Buffer buf(*allocator_, (rows + 2 * segments + 1) * 4, MemCategory::temporaries, "embedding backward rows by id");
    auto* d_order = buf.as<std::int32_t>();
    std::int32_t* d_start = d_order + rows;
    std::int32_t* d_seg = d_start + segments + 1;
    copy_from_host(d_order, order.data(), rows * 4);
    copy_from_host(d_start, start.data(), (segments + 1) * 4);
    copy_from_host(d_seg, seg_id.data(), segments * 4);
    cuda::embedding_backward(arr(op.table), d_order, d_start, d_seg, segments, arr(op.out), d, cur());
    launched();
}

void CudaDevice::adamw(const AdamWOp& op) {
    cuda::OptimizerArgs a;
    a.param = arr(op.param);
    a.grad = arr(op.grad);
    a.m = arr(op.exp_avg);
    a.v = arr(op.exp_avg_sq);
    a.copy = arr(op.param_copy);
    a.n = op.param.numel();
    a.lr = op.lr;
    a.beta1 = op.beta1;
    a.beta2 = op.beta2;
    a.eps = op.eps;
    a.weight_decay = op.weight_decay;
    a.grad_scale = op.grad_scale;
    a.step_size = static_cast<float>(op.lr / (1.0 - std::pow(static_cast<double>(op.beta1), static_cast<double>(op.step))));
    a.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(static_cast<double>(op.beta2), static_cast<double>(op.step))));
    cuda::adamw(a, cur());
    launched();
}

void CudaDevice::sgd(const SgdOp& op) {
    cuda::OptimizerArgs a;
    a.param = arr(op.param);
    a.grad = arr(op.grad);
    a.m = arr(op.momentum_buf);
    a.copy = arr(op.param_copy);
    a.n = op.param.numel();
    a.lr = op.lr;
    a.momentum = op.momentum;
    a.weight_decay = op.weight_decay;
    a.grad_scale = op.grad_scale;
    cuda::sgd(a, cur());
    launched();
}

}  // namespace

// Without a GPU (or a driver) cudaGetDeviceCount fails and may leave the count unset: any error
// means "no GPU", with the runtime's words for why.
bool cuda_probe(std::string* why) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        if (why) *why = std::string("no usable GPU: cudaGetDeviceCount: ") + cudaGetErrorName(err) + ": " + cudaGetErrorString(err);
        return false;
    }
    if (count <= 0) {
        if (why) *why = "no GPU visible to this process (check CUDA_VISIBLE_DEVICES)";
        return false;
    }
    if (why) *why = std::to_string(count) + " GPU(s) visible";
    return true;
}

// 0 when the runtime finds no driver or no GPU (cudaGetDeviceCount may leave the count unset).
int cuda_count() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return count;
}

std::unique_ptr<Device> make_cuda_device_checked(int index) {
    std::string why;
    if (!cuda_probe(&why)) throw Error("CUDA device " + std::to_string(index) + " requested: " + why);
    int count = 0;
    SHARDSIM_CUDA_CHECK(cudaGetDeviceCount(&count));
    if (index < 0 || index >= count)
        throw Error("CUDA device " + std::to_string(index) + " requested, but " + std::to_string(count) + " GPU(s) are visible");
    return std::make_unique<CudaDevice>(index);
}

}  // namespace shardsim::device
