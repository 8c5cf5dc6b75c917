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
    // A CPU device only (0 elsewhere): measure_stage's rate, and measure_optimizer's.
    double stage_elements_per_s = 0;
    double optimizer_elements_per_s = 0;
    double accumulate_elements_per_s = 0;       // into bf16
    double accumulate_fp32_elements_per_s = 0;  // into fp32
    std::vector<ComputeSample> samples;
};

// `large`: the biggest GEMM edge to try (1024 suits one CPU core, 8192 a GPU).
ComputeMeasurement measure_compute(device::Device& dev, DType dtype, std::int64_t large);
// A CPU device's staging of 16-bit GEMM operands (widened to fp32, the result narrowed back):
// elements per second, from the same GEMMs of a transformer's shapes timed in `dtype` and in fp32
// (the difference over the elements staged); 0 when the 16-bit ones were not slower.
double measure_stage(device::Device& dev, DType dtype, std::vector<ComputeSample>& samples);
// The optimizer step as the executor runs it on a CPU device, per parameter: the rank's gradient
// rows converted to fp32, then AdamW on fp32 master weights writing their bf16 copy. Elements/s.
double measure_optimizer(device::Device& dev, std::vector<ComputeSample>& samples);
// A CPU device's addition of a reduced bf16 shard into the accumulated one of dtype `into`,
// element by element: what lands a reduce-scatter. Elements/s.
double measure_accumulate(device::Device& dev, DType into, std::vector<ComputeSample>& samples);
// The GEMM rate alone (the median of the same shapes), in `dtype`; its samples go to `samples`.
double measure_gemm(device::Device& dev, DType dtype, std::int64_t large, std::vector<ComputeSample>& samples);

}  // namespace shardsim::bench
