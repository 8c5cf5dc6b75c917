#include "shardsim/bench/compute.hpp"

#include <algorithm>
#include <functional>

#include "shardsim/core/stats.hpp"
#include "shardsim/device/memory.hpp"

namespace shardsim::bench {

namespace {

// Median seconds of `reps` timed calls of `kernel` (device events around each, one untimed first).
double median_seconds(device::Device& dev, const std::function<void()>& kernel, int reps) {
    kernel();
    dev.synchronize();
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
        const device::Event a = dev.record();
        kernel();
        const device::Event b = dev.record();
        dev.synchronize();
        t.push_back(dev.event_seconds(b) - dev.event_seconds(a));
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

device::Buffer zeros(device::Device& dev, std::int64_t bytes, const std::string& what) {
    device::Buffer b(dev.allocator(), bytes, MemCategory::temporaries, what);
    dev.fill_zero(b.data(), bytes);
    return b;
}

// One GEMM (batch of `batch`) of m x k by k x n, timed; its FLOP/s.
double gemm_rate(device::Device& dev, DType dt, std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t batch,
                 std::vector<ComputeSample>& out) {
    const std::int64_t e = static_cast<std::int64_t>(dtype_size(dt));
    device::Buffer a = zeros(dev, m * k * batch * e, "calibrate A"), b = zeros(dev, k * n * batch * e, "calibrate B"),
                   c = zeros(dev, m * n * batch * e, "calibrate C");
    device::GemmOp op;
    op.a = {a.data(), dt, k, m * k, false};
    op.b = {b.data(), dt, n, k * n, false};
    op.c = {c.data(), dt, n, m * n, false};
    op.m = m, op.n = n, op.k = k, op.batch = batch;
    const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(batch);
    const int reps = flops > 5e10 ? 5 : 9;
    const double s = median_seconds(dev, [&] { dev.gemm(op); }, reps);
    out.push_back({"gemm " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) +
                       (batch > 1 ? " x" + std::to_string(batch) : ""),
                   s, flops, 0});
    return s > 0 ? flops / s : 0.0;
}

// axpby over `n` fp32 elements: reads two operands, writes one.
double axpby_seconds(device::Device& dev, std::int64_t n, std::vector<ComputeSample>& out, const std::string& what) {
    device::Buffer x = zeros(dev, n * 4, "calibrate x"), y = zeros(dev, n * 4, "calibrate y"), z = zeros(dev, n * 4, "calibrate z");
    const device::Tensor tx{x.data(), DType::fp32, {n}}, ty{y.data(), DType::fp32, {n}}, tz{z.data(), DType::fp32, {n}};
    const double s = median_seconds(dev, [&] { dev.axpby(1.0f, tx, 1.0f, ty, tz); }, n > 1024 ? 9 : 101);
    out.push_back({what, s, 0, 3.0 * 4.0 * static_cast<double>(n)});
    return s;
}

}  // namespace

double measure_gemm(device::Device& dev, DType dtype, std::int64_t large, std::vector<ComputeSample>& samples) {
    dev.set_stream(device::DeviceStream::compute);
    const std::size_t first = samples.size();
    std::vector<double> rates;
    for (std::int64_t edge = large / 4; edge <= large; edge *= 2) rates.push_back(gemm_rate(dev, dtype, edge, edge, edge, 1, samples));
    // A transformer projection: tokens x (4 x width) from width.
    rates.push_back(gemm_rate(dev, dtype, large, large, large / 4, 1, samples));
    for (std::size_t i = first; i < samples.size(); ++i) samples[i].what += " " + std::string(dtype_name(dtype));
    return median(rates);
}

double measure_stage(device::Device& dev, DType dtype, std::vector<ComputeSample>& samples) {
    dev.set_stream(device::DeviceStream::compute);
    // A transformer's projections and MLP at the token counts one CPU rank trains with (128-512
    // tokens of width 256-1024): the same GEMM in `dtype` and in fp32; what the 16-bit one takes
    // beyond the fp32 one is its staging.
    const std::int64_t shapes[][3] = {{128, 768, 256}, {128, 256, 688}, {256, 1024, 256}, {512, 512, 512}, {256, 256, 1024}};
    std::vector<double> rates;
    for (const auto& sh : shapes) {
        std::vector<ComputeSample> pair;
        const double f32 = gemm_rate(dev, DType::fp32, sh[0], sh[1], sh[2], 1, pair);
        const double f16 = gemm_rate(dev, dtype, sh[0], sh[1], sh[2], 1, pair);
        const double flops = pair.front().flops;
        const double extra = flops / f16 - flops / f32;
        const double elements = static_cast<double>(sh[0] * sh[2] + sh[2] * sh[1] + sh[0] * sh[1]);
        pair.back().what += " " + std::string(dtype_name(dtype));
        pair.front().what += " fp32";
        for (auto& p : pair) samples.push_back(p);
        if (extra > 0) rates.push_back(elements / extra);
    }
    return median(rates);
}

double measure_optimizer(device::Device& dev, std::vector<ComputeSample>& samples) {
    dev.set_stream(device::DeviceStream::compute);
    const std::int64_t n = 1 << 20;
    device::Buffer g16 = zeros(dev, n * 2, "calibrate grads bf16"), g = zeros(dev, n * 4, "calibrate grads"),
                   p = zeros(dev, n * 4, "calibrate master"), m1 = zeros(dev, n * 4, "calibrate exp_avg"),
                   m2 = zeros(dev, n * 4, "calibrate exp_avg_sq"), p16 = zeros(dev, n * 2, "calibrate params bf16");
    auto t = [&](device::Buffer& b, DType d) { return device::Tensor{b.data(), d, {n}}; };
    device::AdamWOp a{t(p, DType::fp32), t(g, DType::fp32), t(m1, DType::fp32), t(m2, DType::fp32), t(p16, DType::bf16)};
    a.weight_decay = 0.01f;
    const double s = median_seconds(dev, [&] {
        dev.convert(t(g16, DType::bf16), t(g, DType::fp32));
        dev.adamw(a);
    }, 9);
    samples.push_back({"adamw 1M params (bf16 grads, fp32 master)", s, 0, 0});
    return s > 0 ? static_cast<double>(n) / s : 0.0;
}

double measure_accumulate(device::Device& dev, DType into, std::vector<ComputeSample>& samples) {
    dev.set_stream(device::DeviceStream::compute);
    const std::int64_t n = 1 << 20;
    device::Buffer src = zeros(dev, n * 2, "calibrate reduced bf16"), dst = zeros(dev, n * static_cast<std::int64_t>(dtype_size(into)), "calibrate shard");
    const device::Tensor ts{src.data(), DType::bf16, {n}}, td{dst.data(), into, {n}};
    const double s = median_seconds(dev, [&] { dev.accumulate(td, ts); }, 9);
    samples.push_back({"accumulate 1M bf16 into " + std::string(dtype_name(into)), s, 0, 0});
    return s > 0 ? static_cast<double>(n) / s : 0.0;
}

ComputeMeasurement measure_compute(device::Device& dev, DType dtype, std::int64_t large) {
    ComputeMeasurement m;
    m.device = dev.name();
    m.dtype = dtype;
    m.gemm_flops_per_s = measure_gemm(dev, dtype, large, m.samples);
    // Attention's products: [s x 64] x [64 x s] scores and [s x s] x [s x 64] context, per head.
    const std::int64_t s = large / 2, heads = 8;
    m.attention_flops_per_s = median({gemm_rate(dev, dtype, s, s, 64, heads, m.samples), gemm_rate(dev, dtype, s, 64, s, heads, m.samples)});
    const std::int64_t n = (64LL << 20) / 4;
    m.memory_Bps = 3.0 * 4.0 * static_cast<double>(n) / axpby_seconds(dev, n, m.samples, "axpby 64 MiB");
    m.launch_s = axpby_seconds(dev, 16, m.samples, "axpby 16 elements");
    return m;
}

}  // namespace shardsim::bench
