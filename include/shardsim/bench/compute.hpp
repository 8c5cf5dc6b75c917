#pragma once
// What `shardsim calibrate --compute` measures on this device (the executor's own kernels: the CPU
// device's OpenBLAS GEMMs and loops, or cuBLAS and our CUDA kernels): the quantities the compute
// model prices ops with (sim/compute.hpp).
//   gemm       large GEMMs in the compute dtype: achieved FLOP/s (the median over shapes)
//   attention  batched GEMMs of attention's shape (head_dim 64, heads x sequences): what the
//              executor's sdpa / flash runs (its attention is GEMMs per head, docs/compute.md)
//   memory     an elementwise kernel (axpby) streaming 64 MiB operands: achieved bytes/s
//   launch     the same kernel on 16 elements: the fixed cost of one kernel
// Each figure is the median of repeated timings (device events, after a warm-up).
#include <string>
#include <vector>

#include "shardsim/core/dtype.hpp"
#include "shardsim/device/device.hpp"

namespace shardsim::bench {

struct ComputeSample {
    std::string what;  // "gemm 1024x1024x1024", "axpby 64 MiB", ...
    double seconds = 0;
    double flops = 0;
    double bytes = 0;
};

struct ComputeMeasurement {
    std::string device;
    DType dtype = DType::fp32;
    double gemm_flops_per_s = 0;
    double attention_flops_per_s = 0;
    double memory_Bps = 0;
    double launch_s = 0;
    std::vector<ComputeSample> samples;
};

// `large`: the biggest GEMM edge to try (1024 suits one CPU core, 8192 a GPU).
ComputeMeasurement measure_compute(device::Device& dev, DType dtype, std::int64_t large);
// The GEMM rate alone (the median of the same shapes), in `dtype`; its samples go to `samples`.
double measure_gemm(device::Device& dev, DType dtype, std::int64_t large, std::vector<ComputeSample>& samples);

}  // namespace shardsim::bench
