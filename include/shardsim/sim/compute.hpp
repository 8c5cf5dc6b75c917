#pragma once
// Compute priced by shape (docs/topologies.md, "Compute"): each compute op's GEMMs, fused
// attention, memory-bound traffic and kernel launches (plan::Op::work, from model::call_flops).
//
//   GEMM       2mnk / (peak x gemm_efficiency x wave share x tile share), and never faster than
//              moving its operands and result through HBM (a roofline: small GEMMs are memory-bound;
//              not on a CPU, whose BLAS works from cache-blocked copies).
//              Tiles of tile_m x tile_n outputs run on `sms` SMs in waves: a last wave that fills
//              few SMs, and tiles that stick out of the matrix, are paid for in full (the tile and
//              wave quantisation of NVIDIA's "Matrix Multiplication Background" guide).
//              On a CPU device a 16-bit GEMM is an fp32 one between two passes over its
//              elements: operands widened, the result narrowed (compute.stage_gelems).
//   attention  sdpa / flash kernels: their FLOPs / (peak x attention_efficiency); eager attention's
//              products are GEMMs like the others
//   memory     the op's activation traffic (activations written in forward; read and their
//              gradients written in backward) / (hbm_gbps x elementwise_efficiency): norms, activation
//              functions, softmax, dropout, casts. On a CPU these are scalar loops that a core
//              runs well below its streaming bandwidth: `calibrate --compute` fits the share on
//              the executor's own forward and backward ops (cli/calibrate.cpp)
//   launches   kernels x launch_us
#include "shardsim/config/topology.hpp"
#include "shardsim/core/dtype.hpp"
#include "shardsim/model/flops.hpp"

namespace shardsim::sim {

struct ComputeModel {
    double peak_flops = 0;  // dense peak of the compute dtype, FLOP/s
    double hbm_Bps = 0;     // datasheet memory bandwidth
    config::ComputeSpec spec;
    std::int64_t element_bytes = 2;
    bool cpu = false;  // a CPU device (gpu.kind = cpu)

    static ComputeModel from(const config::TopologyConfig& t, DType compute);
    double gemm_time(const model::Gemm& g) const;
    // The wave share x tile share of a GEMM: the fraction of the SMs' tile work that is useful.
    double quantisation(const model::Gemm& g) const;
    // A CPU device's widening of 16-bit operands and narrowing of the result (0 on a GPU).
    double stage_time(const model::Gemm& g) const;
    double memory_time(double bytes) const;       // streamed: copies, the optimizer step
    double elementwise_time(double bytes) const;  // a compute op's activation traffic
    // `elements` converted from one dtype to another, or added into a buffer: per element on a CPU
    // (compute.stage_gelems, compute.accumulate_gelems), by bytes streamed elsewhere.
    double convert_time(double elements, double src_bytes, double dst_bytes) const;
    double accumulate_time(double elements, double src_bytes, double dst_bytes) const;
    double op_time(const model::ComputeWork& work, double traffic_bytes) const;
};

}  // namespace shardsim::sim
