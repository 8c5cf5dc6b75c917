#pragma once
// Hardware: nodes, GPUs, links. Figures come from datasheets, cited in each topologies/*.ini.
#include <cstdint>
#include <string>
#include <vector>

#include "shardsim/config/schema.hpp"
#include "shardsim/core/dtype.hpp"

namespace shardsim::config {

enum class LinkKind { nvlink, pcie, shm, infiniband, ethernet, none };
std::string link_kind_name(LinkKind k);

struct GpuSpec {
    std::string name;
    std::int64_t memory_bytes = 0;
    double bf16_tflops = 0, fp16_tflops = 0, fp32_tflops = 0;  // dense peak
    double hbm_gbps = 0;                                        // decimal GB/s
    double compute_efficiency = 0.5;  // achieved fraction of peak for GEMM-heavy ops
    std::int64_t runtime_overhead_bytes = 0;  // CUDA context + NCCL buffers + cuBLAS workspace
    double allocator_fragmentation = 0;       // caching-allocator slack, fraction of transient peak
    bool is_cpu = false;                      // a host "device" (CPU runs of the executor)

    double peak_tflops(DType t) const;
};

struct LinkSpec {
    LinkKind kind = LinkKind::none;
    double bandwidth_gbps = 0;  // decimal GB/s, unidirectional, per GPU (intra) or per NIC (inter)
    double latency_us = 0;
    std::int64_t nics = 1;      // inter-node: NICs per node
};

struct HostSpec {
    std::int64_t memory_bytes = 0;
    double h2d_gbps = 0;              // host<->device copy bandwidth per GPU, decimal GB/s
    double cpu_optimizer_gelems = 0;  // CPU optimizer throughput per rank, 1e9 params/s
    std::int64_t process_bytes = 0;   // each training process's own host footprint
};

struct TopologyConfig {
    std::string name;
    std::int64_t nodes = 1;
    std::int64_t gpus_per_node = 1;
    GpuSpec gpu;
    LinkSpec intra;
    LinkSpec inter;
    HostSpec host;

    IniFile source;
    Values values;

    std::int64_t total_gpus() const { return nodes * gpus_per_node; }
    std::string effective_ini() const;
};

const Schema& topology_schema();

// `ref` is a shipped topology name ("6x-a100-40g") or a path (absolute, or relative to `dir`).
// `where` names the key that referred to it, for the error when it cannot be found.
TopologyConfig load_topology(const std::string& ref, const std::string& dir, const std::string& where,
                             const std::vector<Override>& overrides);
TopologyConfig load_topology_text(const std::string& path, const std::string& text,
                                  const std::vector<Override>& overrides);

}  // namespace shardsim::config
