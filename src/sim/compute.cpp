#include "shardsim/sim/compute.hpp"

#include <algorithm>
#include <cmath>

namespace shardsim::sim {

ComputeModel ComputeModel::from(const config::TopologyConfig& t, DType compute) {
    ComputeModel c;
    c.peak_flops = t.gpu.peak_tflops(compute) * 1e12;
    c.hbm_Bps = t.gpu.hbm_gbps * 1e9;
    c.spec = t.compute;
    c.element_bytes = static_cast<std::int64_t>(dtype_size(compute));
    c.cpu = t.gpu.is_cpu;
    return c;
}

namespace {
std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }
}  // namespace

double ComputeModel::quantisation(const model::Gemm& g) const {
    if (g.m <= 0 || g.n <= 0) return 1;
    const std::int64_t tm = std::max<std::int64_t>(1, spec.tile_m), tn = std::max<std::int64_t>(1, spec.tile_n);
    const std::int64_t tiles_m = ceil_div(g.m, tm), tiles_n = ceil_div(g.n, tn);
    const double tile_share = static_cast<double>(g.m) * static_cast<double>(g.n) /
                              (static_cast<double>(tiles_m * tm) * static_cast<double>(tiles_n * tn));
    const std::int64_t sms = std::max<std::int64_t>(1, spec.sms);
    const std::int64_t tiles = tiles_m * tiles_n * std::max<std::int64_t>(1, g.count);
    const double wave_share = static_cast<double>(tiles) / static_cast<double>(ceil_div(tiles, sms) * sms);
    return tile_share * wave_share;
}

double ComputeModel::memory_time(double bytes) const {
    const double bw = hbm_Bps * spec.memory_efficiency;
    return bw > 0 ? bytes / bw : 0.0;
}

double ComputeModel::elementwise_time(double bytes) const {
    const double bw = hbm_Bps * spec.elementwise_efficiency;
    return bw > 0 ? bytes / bw : 0.0;
}

double ComputeModel::convert_time(double elements, double src_bytes, double dst_bytes) const {
    if (cpu && spec.stage_gelems > 0) return elements / (spec.stage_gelems * 1e9);
    return memory_time(elements * (src_bytes + dst_bytes));
}

double ComputeModel::accumulate_time(double elements, double src_bytes, double dst_bytes) const {
    const double rate = dst_bytes >= 4 ? spec.accumulate_fp32_gelems : spec.accumulate_gelems;
    if (cpu && rate > 0) return elements / (rate * 1e9);
    return memory_time(elements * (src_bytes + 2 * dst_bytes));  // read both, write the sum
}

double ComputeModel::gemm_time(const model::Gemm& g) const {
    const double rate = peak_flops * spec.gemm_efficiency * quantisation(g);
    const double compute = rate > 0 ? g.flops() / rate : 0.0;
    const double operands = static_cast<double>(g.m * g.k + g.k * g.n + g.m * g.n) * static_cast<double>(std::max<std::int64_t>(1, g.count)) *
                            static_cast<double>(element_bytes);
    // A CPU's BLAS works from cache-blocked packed copies of its operands: no HBM roofline; what
    // it reads and writes beyond that is the staging of 16-bit operands.
    if (cpu) return compute + stage_time(g);
    return std::max(compute, memory_time(operands));
}

double ComputeModel::stage_time(const model::Gemm& g) const {
    if (element_bytes >= 4 || spec.stage_gelems <= 0) return 0;
    const double elements = static_cast<double>(g.m * g.k + g.k * g.n + g.m * g.n) * static_cast<double>(std::max<std::int64_t>(1, g.count));
    return elements / (spec.stage_gelems * 1e9);
}

double ComputeModel::op_time(const model::ComputeWork& work, double traffic_bytes) const {
    double t = 0;
    for (const auto& g : work.gemms) t += gemm_time(g);
    const double attention_rate = peak_flops * spec.attention_efficiency;
    if (work.fused_attention_flops > 0 && attention_rate > 0) t += work.fused_attention_flops / attention_rate;
    t += elementwise_time(traffic_bytes);
    t += static_cast<double>(work.kernels) * spec.launch_us * 1e-6;
    return t;
}

}  // namespace shardsim::sim
