#pragma once
// Hardware: nodes, GPUs, links. Figures come from datasheets, cited in each topologies/*.ini.
#include <cstdint>
#include <string>
#include <vector>

#include "shardsim/config/schema.hpp"
#include "shardsim/core/dtype.hpp"

namespace shardsim::config {

// How GPUs of a node (or nodes) are linked; the collective model (sim/links.hpp) behaves
// differently per kind (docs/topologies.md): nvlink / nvswitch direct GPU-to-GPU links,
// pcie with peer-to-peer through the PCIe fabric, pcie_no_p2p staged through host memory (and
// sharing the host path with offload copies), shm a CPU host's shared memory (MPI).
enum class LinkKind { nvlink, nvswitch, pcie, pcie_no_p2p, shm, infiniband, ethernet, none };
std::string link_kind_name(LinkKind k);  // as the topology spells it: "pcie-no-p2p"

struct GpuSpec {
    std::string name;
    std::int64_t memory_bytes = 0;
    double bf16_tflops = 0, fp16_tflops = 0, fp32_tflops = 0;  // dense peak
    double hbm_gbps = 0;                                        // decimal GB/s
    double compute_efficiency = 0.5;  // superseded by compute.gemm_efficiency (its default)
    double reduce_gbps = 0;           // rate a rank adds received data in a reducing collective
                                      // (decimal GB/s of reduced bytes); 0: the reduction rides
                                      // along the transfer, as NCCL fuses it into its copy kernel
    std::int64_t runtime_overhead_bytes = 0;  // CUDA context + NCCL buffers + cuBLAS workspace
    double allocator_fragmentation = 0;       // caching-allocator slack, fraction of transient peak
    double usd_per_gpu_hour = 0;              // on-demand price, 0: unknown (the plan search's cost objectives)
    bool is_cpu = false;                      // a host "device" (CPU runs of the executor)

    double peak_tflops(DType t) const;
};

// How compute ops are priced by shape (sim/compute.hpp); figures cited per topology.
struct ComputeSpec {
    std::int64_t sms = 1;             // streaming multiprocessors (a CPU rank: 1)
    std::int64_t tile_m = 1, tile_n = 1;  // the GEMM output tile one SM computes at a time
    double gemm_efficiency = 0.5;     // achieved share of peak of a large, well-shaped GEMM
    double attention_efficiency = 0.5;  // of fused sdpa / flash attention kernels
    double memory_efficiency = 1;     // achieved share of hbm_gbps in memory-bound kernels (copies, the optimizer)
    double elementwise_efficiency = 1;  // ... by a forward or backward op's elementwise kernels (norms, softmax, ...)
    double launch_us = 0;             // per kernel
    double stage_gelems = 0;          // a CPU: 16-bit GEMM operands widened to fp32 (and back), 1e9/s; 0: none
    double accumulate_gelems = 0;       // a CPU: elements added one by one into a 16-bit buffer, 1e9/s; 0: by bytes
    double accumulate_fp32_gelems = 0;  // ... into an fp32 buffer
    double time_cv = 0;               // spread of one compute op's time from run to run (coefficient of variation)
    std::string source;               // where calibrated values came from ("" when from datasheets)
};

struct LinkSpec {
    LinkKind kind = LinkKind::none;
    double bandwidth_gbps = 0;  // decimal GB/s, unidirectional, per GPU (intra) or per NIC (inter)
    double efficiency = 1;      // achieved bus bandwidth / bandwidth_gbps at large sizes (cited per file)
    double latency_us = 0;      // per hop of a ring, NCCL's Simple protocol
    std::int64_t nics = 1;      // inter-node: NICs per node
    double host_bus_gbps = 0;   // intra, pcie-no-p2p: the node's path to host memory, shared by its GPUs
    // intra, shm ([Note: a CPU host's cache]): the share of the node's last-level cache a
    // collective's buffers stay in, and how many times longer the bytes beyond it take.
    double cache_mib = 0;
    double spill_slowdown = 1;
    // intra, shm ([Note: MPI's out-of-place copy]): the rate a rank copies its own data between
    // the send and receive buffers of a collective; 0: free.
    double copy_gbps = 0;
};

// Published nccl-tests figures a topology cites ([nccl_tests] section): bus bandwidth by size,
// per collective, on `ranks` ranks of the topology. A test holds the model to them.
struct PublishedBusbw {
    std::string op;  // all_gather | reduce_scatter | all_reduce
    std::int64_t size_bytes = 0;
    double busbw_gbps = 0;
};
struct PublishedSweep {
    std::string source;  // where the figures come from, with its date
    std::int64_t ranks = 0;
    std::vector<PublishedBusbw> points;
};

struct HostSpec {
    std::int64_t memory_bytes = 0;
    double h2d_gbps = 0;              // host<->device copy bandwidth per GPU, decimal GB/s
    double cpu_optimizer_gelems = 0;  // CPU optimizer throughput per rank, 1e9 params/s
    std::int64_t process_bytes = 0;   // each training process's own host footprint
    // The cores one node's ranks may run on (a CPU host: the union of their cpusets).
    std::int64_t cpu_cores = 1;
};

// [Note: a CPU host's cores] A CPU rank runs its compute (BLAS and our kernels, one thread) on
// the thread that walks the schedule, and its collectives and copies on threads of their own only
// when it has a core for them beside the compute thread (cores per rank >= 2): a blocking MPI
// collective then progresses while the compute thread works, as a GPU's comm stream does. With
// one core (or less) per rank there is no such overlap to be had: a second thread would take
// turns with the compute thread on the same core, and a collective, which needs every rank's
// thread running at once to move a chunk, would creep along in the slices the two schedulers
// happen to line up (measured: a 1.5 MB all-gather beside a backward GEMM took the GEMM's 4 ms,
// alone 0.2 ms). So the executor runs them in schedule order on the compute thread, and the
// simulator prices them there. Ranks beyond the cores share them: every op takes
// ranks / cores as long. Both engines read these two rules from here.
struct CpuHost {
    double cores_per_rank = 1;
    bool comm_thread = false;     // collectives and copies overlap compute (cores_per_rank >= 2)
    double slowdown = 1;          // ranks / cores when the ranks outnumber the cores, else 1
    static CpuHost of(std::int64_t cores, std::int64_t ranks);
};

struct TopologyConfig {
    std::string name;
    std::int64_t nodes = 1;
    std::int64_t gpus_per_node = 1;
    GpuSpec gpu;
    ComputeSpec compute;
    LinkSpec intra;
    LinkSpec inter;
    HostSpec host;
    PublishedSweep published;  // empty when the file cites none

    IniFile source;
    Values values;

    std::int64_t total_gpus() const { return nodes * gpus_per_node; }
    std::string effective_ini() const;
    // A CPU topology's ranks on its cores ([Note: a CPU host's cores]).
    CpuHost cpu_host() const { return CpuHost::of(host.cpu_cores, gpus_per_node); }
};

const Schema& topology_schema();
// What `host.cpu_cores = auto` resolves to: the CPUs of this process's affinity mask, unless a
// launcher measured the node (run and validate: the union of the masks of the ranks on this node,
// since mpirun binds each rank to its own core); 0 clears what was set.
void set_node_cpu_cores(std::int64_t cores);
std::int64_t node_cpu_cores();
// The efficiency a level of this kind gets when its topology says `efficiency = auto`.
double default_link_efficiency(LinkKind k);
// ... and the hop latency (us) when it says `latency_us = auto`.
double default_link_latency_us(LinkKind k);

// `ref` is a shipped topology name ("6x-a100-40g") or a path (absolute, or relative to `dir`).
// `where` names the key that referred to it, for the error when it cannot be found.
TopologyConfig load_topology(const std::string& ref, const std::string& dir, const std::string& where,
                             const std::vector<Override>& overrides);
TopologyConfig load_topology_text(const std::string& path, const std::string& text,
                                  const std::vector<Override>& overrides);

}  // namespace shardsim::config
