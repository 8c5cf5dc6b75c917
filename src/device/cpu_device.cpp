// CpuDevice: memory, streams, copies, GEMM (CBLAS) and the optimizer updates. The other kernels
// are in cpu_kernels.cpp.
#include "cpu_device.hpp"

#include <cblas.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "shardsim/core/error.hpp"
#include "shardsim/core/half.hpp"

namespace shardsim::device {

namespace {

RawMemory host_memory(const std::string& name) {
    RawMemory m;
    m.allocate = [](std::int64_t bytes) -> void* {
        const auto size = static_cast<std::size_t>(ceil_div(bytes, 64) * 64);
        return std::aligned_alloc(64, size);
    };
    m.release = [](void* p) { std::free(p); };
    m.name = name;
    return m;
}

// Row-major view of one stored operand: `rows` x `cols` elements at `p` with leading dim `ld`.
const float* stage(const void* p, DType dt, std::int64_t rows, std::int64_t cols, std::int64_t ld,
                   std::vector<float>& buf, std::int64_t& ld_out) {
    if (dt == DType::fp32) {
        ld_out = ld;
        return static_cast<const float*>(p);
    }
    buf.resize(static_cast<std::size_t>(rows * cols));
    for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < cols; ++j) buf[static_cast<std::size_t>(i * cols + j)] = load_value(p, dt, i * ld + j);
    ld_out = cols;
    return buf.data();
}

const char* offset(const void* p, DType dt, std::int64_t elements) {
    return static_cast<const char*>(p) + elements * dtype_size(dt);
}

}  // namespace

CpuDevice::CpuDevice(int threads) : threads_(threads < 1 ? 1 : threads), start_(std::chrono::steady_clock::now()) {
    allocator_ = std::make_unique<TrackingAllocator>(host_memory("host"), host_memory("host"));
    openblas_set_num_threads(threads_);
}

std::string CpuDevice::name() const {
    return "cpu (OpenBLAS, " + std::to_string(threads_) + (threads_ == 1 ? " thread)" : " threads)");
}

Event CpuDevice::record() {
    std::lock_guard<std::mutex> lock(events_mu_);
    events_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    return Event{static_cast<int>(events_.size()) - 1};
}

double CpuDevice::event_seconds(Event e) {
    std::lock_guard<std::mutex> lock(events_mu_);
    SHARDSIM_ASSERT(e.id >= 0 && e.id < static_cast<int>(events_.size()), "unknown event");
    return events_[static_cast<std::size_t>(e.id)];
}

void CpuDevice::copy(void* dst, const void* src, std::int64_t bytes) {
    if (bytes > 0 && dst != src) std::memmove(dst, src, static_cast<std::size_t>(bytes));
}
void CpuDevice::copy_to_host(void* host, const void* dev, std::int64_t bytes) { copy(host, dev, bytes); }
void CpuDevice::copy_from_host(void* dev, const void* host, std::int64_t bytes) { copy(dev, host, bytes); }
void CpuDevice::fill_zero(void* dst, std::int64_t bytes) {
    if (bytes > 0) std::memset(dst, 0, static_cast<std::size_t>(bytes));
}

void CpuDevice::convert(const Tensor& src, const Tensor& dst) {
    SHARDSIM_ASSERT(src.numel() == dst.numel(), "convert: element counts differ");
    const std::int64_t n = src.numel();
    for (std::int64_t i = 0; i < n; ++i) store_value(dst.data, dst.dtype, i, load_value(src.data, src.dtype, i));
}

void CpuDevice::accumulate(const Tensor& dst, const Tensor& src) {
    SHARDSIM_ASSERT(src.numel() == dst.numel(), "accumulate: element counts differ");
    const std::int64_t n = src.numel();
    for (std::int64_t i = 0; i < n; ++i)
        store_value(dst.data, dst.dtype, i, load_value(dst.data, dst.dtype, i) + load_value(src.data, src.dtype, i));
}

void CpuDevice::run_gemm(const GemmOp& g) {
    // fp32 staging of 16-bit operands: the CPU's stand-in for a tensor core widening them in
    // registers. Internal to the device (per thread: lanes may run GEMMs concurrently) and
    // reused, so not tracked as model memory.
    thread_local std::vector<float> stage_a, stage_b, stage_c;
    const auto ta = g.a.trans ? CblasTrans : CblasNoTrans;
    const auto tb = g.b.trans ? CblasTrans : CblasNoTrans;
    const std::int64_t a_rows = g.a.trans ? g.k : g.m, a_cols = g.a.trans ? g.m : g.k;
    const std::int64_t b_rows = g.b.trans ? g.n : g.k, b_cols = g.b.trans ? g.k : g.n;
    for (std::int64_t bi = 0; bi < g.batch; ++bi) {
        const void* pa = offset(g.a.data, g.a.dtype, bi * g.a.batch_stride);
        const void* pb = offset(g.b.data, g.b.dtype, bi * g.b.batch_stride);
        void* pc = const_cast<char*>(offset(g.c.data, g.c.dtype, bi * g.c.batch_stride));
        std::int64_t lda = 0, ldb = 0, ldc = g.c.ld;
        const float* a = stage(pa, g.a.dtype, a_rows, a_cols, g.a.ld, stage_a, lda);
        const float* b = stage(pb, g.b.dtype, b_rows, b_cols, g.b.ld, stage_b, ldb);
        float* c = static_cast<float*>(pc);
        const bool staged_c = g.c.dtype != DType::fp32;
        if (staged_c) {
            stage_c.assign(static_cast<std::size_t>(g.m * g.n), 0.0f);
            if (g.beta != 0)
                for (std::int64_t i = 0; i < g.m; ++i)
                    for (std::int64_t j = 0; j < g.n; ++j)
                        stage_c[static_cast<std::size_t>(i * g.n + j)] = load_value(pc, g.c.dtype, i * g.c.ld + j);
            c = stage_c.data();
            ldc = g.n;
        }
        if (g.k == 0) {
            for (std::int64_t i = 0; i < g.m; ++i)
                for (std::int64_t j = 0; j < g.n; ++j) c[i * ldc + j] = g.beta == 0 ? 0.0f : g.beta * c[i * ldc + j];
        } else {
            cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(g.m), static_cast<int>(g.n), static_cast<int>(g.k),
                        g.alpha, a, static_cast<int>(std::max<std::int64_t>(lda, 1)), b,
                        static_cast<int>(std::max<std::int64_t>(ldb, 1)), g.beta, c,
                        static_cast<int>(std::max<std::int64_t>(ldc, 1)));
        }
        if (staged_c)
            for (std::int64_t i = 0; i < g.m; ++i)
                for (std::int64_t j = 0; j < g.n; ++j)
                    store_value(pc, g.c.dtype, i * g.c.ld + j, stage_c[static_cast<std::size_t>(i * g.n + j)]);
    }
}

void CpuDevice::copy2d(const Copy2dOp& op) {
    for (std::int64_t b = 0; b < op.batch; ++b)
        for (std::int64_t i = 0; i < op.rows; ++i)
            for (std::int64_t j = 0; j < op.cols; ++j)
                store_value(op.dst, op.dst_dtype, b * op.dst_batch_stride + i * op.dst_ld + j,
                            load_value(op.src, op.src_dtype, b * op.src_batch_stride + i * op.src_ld + j));
}

void CpuDevice::adamw(const AdamWOp& op) {
    const std::int64_t n = op.param.numel();
    SHARDSIM_ASSERT(op.grad.numel() == n && op.exp_avg.numel() == n && op.exp_avg_sq.numel() == n,
                    "adamw: shard sizes differ");
    const double bc1 = 1.0 - std::pow(static_cast<double>(op.beta1), static_cast<double>(op.step));
    const double bc2 = 1.0 - std::pow(static_cast<double>(op.beta2), static_cast<double>(op.step));
    const float step_size = static_cast<float>(op.lr / bc1);
    const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    const float decay = 1.0f - op.lr * op.weight_decay;
    for (std::int64_t i = 0; i < n; ++i) {
        const float g = load_value(op.grad.data, op.grad.dtype, i) * op.grad_scale;
        float p = load_value(op.param.data, op.param.dtype, i) * decay;
        const float m = op.beta1 * load_value(op.exp_avg.data, op.exp_avg.dtype, i) + (1.0f - op.beta1) * g;
        const float v = op.beta2 * load_value(op.exp_avg_sq.data, op.exp_avg_sq.dtype, i) + (1.0f - op.beta2) * g * g;
        p -= step_size * m / (std::sqrt(v) / bc2_sqrt + op.eps);
        store_value(op.exp_avg.data, op.exp_avg.dtype, i, m);
        store_value(op.exp_avg_sq.data, op.exp_avg_sq.dtype, i, v);
        store_value(op.param.data, op.param.dtype, i, p);
        if (!op.param_copy.empty()) store_value(op.param_copy.data, op.param_copy.dtype, i, p);
    }
}

void CpuDevice::sgd(const SgdOp& op) {
    const std::int64_t n = op.param.numel();
    SHARDSIM_ASSERT(op.grad.numel() == n, "sgd: shard sizes differ");
    for (std::int64_t i = 0; i < n; ++i) {
        float p = load_value(op.param.data, op.param.dtype, i);
        float d = load_value(op.grad.data, op.grad.dtype, i) * op.grad_scale + op.weight_decay * p;
        if (!op.momentum_buf.empty()) {
            d += op.momentum * load_value(op.momentum_buf.data, op.momentum_buf.dtype, i);
            store_value(op.momentum_buf.data, op.momentum_buf.dtype, i, d);
        }
        p -= op.lr * d;
        store_value(op.param.data, op.param.dtype, i, p);
        if (!op.param_copy.empty()) store_value(op.param_copy.data, op.param_copy.dtype, i, p);
    }
}

std::unique_ptr<Device> make_cpu_device(int threads) { return std::make_unique<CpuDevice>(threads); }

}  // namespace shardsim::device
