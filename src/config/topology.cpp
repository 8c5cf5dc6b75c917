#include "shardsim/config/topology.hpp"

#include <algorithm>
#include <filesystem>

#include "shardsim/config/embedded.hpp"
#include "shardsim/config/job.hpp"
#include "shardsim/config/limits.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/core/system.hpp"

namespace shardsim::config {

std::string link_kind_name(LinkKind k) {
    switch (k) {
        case LinkKind::nvlink: return "nvlink";
        case LinkKind::nvswitch: return "nvswitch";
        case LinkKind::pcie: return "pcie";
        case LinkKind::pcie_no_p2p: return "pcie-no-p2p";
        case LinkKind::shm: return "shm";
        case LinkKind::infiniband: return "infiniband";
        case LinkKind::ethernet: return "ethernet";
        case LinkKind::none: return "none";
    }
    return "?";
}

namespace {
LinkKind parse_link(const std::string& s) {
    for (LinkKind k : {LinkKind::nvlink, LinkKind::nvswitch, LinkKind::pcie, LinkKind::pcie_no_p2p, LinkKind::shm,
                       LinkKind::infiniband, LinkKind::ethernet, LinkKind::none})
        if (link_kind_name(k) == s) return k;
    return LinkKind::none;
}

KeySpec key(std::string section, std::string name, ValueType type, std::string unit, std::string def,
            std::string help) {
    KeySpec k;
    k.section = std::move(section);
    k.key = std::move(name);
    k.type = type;
    k.unit = std::move(unit);
    k.default_value = std::move(def);
    k.required = k.default_value.empty() && type != ValueType::text;
    k.help = std::move(help);
    return k;
}
KeySpec positive(std::string section, std::string name, std::string unit, std::string def, std::string help, double max) {
    KeySpec k = key(std::move(section), std::move(name), ValueType::number, std::move(unit), std::move(def), std::move(help));
    k.min = 0;
    k.min_exclusive = true;
    k.max = max;
    return k;
}
// A number from `min` to `max`, both allowed.
KeySpec bounded(std::string section, std::string name, std::string unit, std::string def, std::string help, double min, double max) {
    KeySpec k = key(std::move(section), std::move(name), ValueType::number, std::move(unit), std::move(def), std::move(help));
    k.min = min;
    k.max = max;
    return k;
}
KeySpec non_negative(std::string section, std::string name, std::string unit, std::string def, std::string help, double max) {
    return bounded(std::move(section), std::move(name), std::move(unit), std::move(def), std::move(help), 0, max);
}
// A key that may also say `auto`, from `min` to `max`.
KeySpec auto_key(std::string section, std::string name, ValueType type, std::string unit, std::string help, double min, double max) {
    KeySpec k = key(std::move(section), std::move(name), type, std::move(unit), "auto", std::move(help));
    k.min = min;
    k.max = max;
    k.allows_auto = true;
    return k;
}
// The achieved share of a level's bandwidth; auto: the default of its link kind (link_efficiency).
KeySpec efficiency_key(const std::string& section) {
    KeySpec k = key(section, "efficiency", ValueType::number, "", "auto",
                    "achieved bus bandwidth / bandwidth_gbps at large sizes, from published nccl-tests figures "
                    "(auto: the link kind's default, docs/topologies.md)");
    k.min = 0;
    k.min_exclusive = true;
    k.max = 1;
    k.allows_auto = true;
    return k;
}

// A ring hop's latency with NCCL's Simple protocol; auto: NCCL's figure for the kind's path.
KeySpec latency_key(const std::string& section) {
    return auto_key(section, "latency_us", ValueType::number, "us",
                    "one ring hop, NCCL's Simple protocol (auto: NCCL's tuning-model figure for the link kind: NVLink 3.4, "
                    "PCIe and shared memory 5.7, network 14)",
                    0, limits::kLatencyUs);
}

constexpr const char* kPublishedOps[] = {"all_gather", "reduce_scatter", "all_reduce"};

KeySpec count(std::string section, std::string name, std::string def, std::string help, std::int64_t max) {
    KeySpec k = key(std::move(section), std::move(name), ValueType::integer, "", std::move(def), std::move(help));
    k.min = 1;
    k.max = static_cast<double>(max);
    return k;
}

// How compute ops are priced by shape (sim/compute.hpp): the tile / wave model of GEMMs, the
// attention kernels' rate, memory-bound kernels, launches.
std::vector<KeySpec> compute_keys() {
    std::vector<KeySpec> out;
    out.push_back(count("compute", "sms", "1", "streaming multiprocessors: GEMM tiles run in waves of this many (a CPU rank: 1; at most 1e6)",
                        1'000'000));
    out.push_back(key("compute", "gemm_tile", ValueType::text, "", "1x1",
                      "output tile of one SM, MxN (e.g. 128x128): partial tiles and partial waves waste their share"));
    auto share = [&](const char* name, const char* def, const char* help) {
        KeySpec k = key("compute", name, ValueType::number, "", def, help);
        k.min = 0;
        k.min_exclusive = true;
        k.max = 1;
        k.allows_auto = std::string(def) == "auto";
        out.push_back(k);
    };
    share("gemm_efficiency", "auto", "achieved share of the dense peak by a large, well-shaped GEMM (auto: gpu.compute_efficiency)");
    share("attention_efficiency", "auto", "achieved share of the peak by fused sdpa / flash attention kernels (auto: gemm_efficiency)");
    share("memory_efficiency", "1", "achieved share of hbm_gbps by memory-bound kernels that stream (copies, casts, the optimizer step)");
    share("elementwise_efficiency", "auto",
          "achieved share of hbm_gbps by the elementwise kernels of forward and backward ops (norms, activation functions, softmax, "
          "rotary, the loss) moving their activation traffic (auto: memory_efficiency; a CPU's scalar loops run far below it)");
    // A number from 0 to `max`.
    auto ranged = [&](const std::string& name, const char* unit, const std::string& help, double max) {
        KeySpec k = key("compute", name, ValueType::number, unit, "0", help);
        k.min = 0;
        k.max = max;
        out.push_back(k);
    };
    ranged("launch_us", "us", "cost of one kernel launch (at most 1 s)", limits::kLatencyUs);
    ranged("stage_gelems", "1e9 elements/s",
           "a CPU device: its 16-bit GEMMs widen each operand element to fp32 and narrow each result element back, at this "
           "rate, before and after an fp32 GEMM (0: no staging, as a GPU's tensor cores read 16-bit operands; at most 1e6)",
           limits::kGelemsPerSecond);
    for (const std::string into : {"", "fp32_"})
        ranged("accumulate_" + into + "gelems", "1e9 elements/s",
               "a CPU device: elements added one by one into " + std::string(into.empty() ? "a 16-bit" : "an fp32") +
                   " buffer (a reduced gradient shard landing in the accumulated one), at this rate (0: by bytes at hbm_gbps x "
                   "memory_efficiency, as a GPU streams them; at most 1e6)",
               limits::kGelemsPerSecond);
    ranged("time_cv", "",
           "the spread of one compute op's time from one run to the next (standard deviation / mean): ranks then reach a "
           "collective at different moments and it waits for the last ([Note: waiting for the last rank]; 0: identical ranks; "
           "at most 1)",
           1);
    out.push_back(key("compute", "source", ValueType::text, "", "", "where calibrated values came from (shardsim calibrate --compute)"));
    return out;
}
}  // namespace

const Schema& topology_schema() {
    static const Schema schema = [] {
        Schema s;
        s.push_back(key("cluster", "name", ValueType::text, "", "", "topology name (default: the file's name)"));
        s.push_back(count("cluster", "nodes", "", "number of nodes (nodes x gpus_per_node at most 1,000,000: 10x the largest clusters)",
                          limits::kNodes));
        s.push_back(count("cluster", "gpus_per_node", "", "GPUs (ranks) per node (at most 1,024: a CPU host runs a rank per core)",
                          limits::kGpusPerNode));

        KeySpec gname = key("gpu", "name", ValueType::text, "", "", "GPU model, e.g. A100-SXM4-40GB");
        gname.required = true;
        s.push_back(gname);
        KeySpec kind = key("gpu", "kind", ValueType::choice, "", "gpu", "gpu, or cpu for a host that runs ranks on cores");
        kind.choices = {"gpu", "cpu"};
        s.push_back(kind);
        s.push_back(positive("gpu", "memory_gib", "GiB", "", "device memory (at most 1 PiB)", limits::kMemoryGiB));
        s.push_back(positive("gpu", "bf16_tflops", "TFLOP/s", "", "dense bf16 peak (at most 1e6: 1,000x an H100)", limits::kTflops));
        s.push_back(positive("gpu", "fp16_tflops", "TFLOP/s", "", "dense fp16 peak (at most 1e6)", limits::kTflops));
        s.push_back(positive("gpu", "fp32_tflops", "TFLOP/s", "", "dense fp32 peak (TF32 off; at most 1e6)", limits::kTflops));
        s.push_back(positive("gpu", "hbm_gbps", "GB/s", "", "device memory bandwidth (at most 1e6)", limits::kGBps));
        s.push_back(positive("gpu", "compute_efficiency", "", "0.5", "the default of compute.gemm_efficiency (which supersedes it)", 1));
        KeySpec reduce = key("gpu", "reduce_gbps", ValueType::number, "GB/s", "0",
                             "rate a rank adds received data in reduce-scatter / all-reduce; 0: the reduction rides "
                             "along the transfer (NCCL fuses it into its copy); a CPU host's MPI adds at memory speed (at most 1e6)");
        reduce.min = 0;
        reduce.max = limits::kGBps;
        s.push_back(reduce);
        KeySpec over = key("gpu", "runtime_overhead_mib", ValueType::number, "MiB", "0",
                           "per GPU: CUDA context, NCCL buffers, cuBLAS workspace (at most 1 TiB)");
        over.min = 0;
        over.max = limits::kBufferMiB;
        s.push_back(over);
        s.push_back(bounded("gpu", "allocator_fragmentation", "", "0",
                            "extra device slack as a fraction of the transient peak, beyond what the simulated caching "
                            "allocator reserves (0: its rules alone)",
                            0, 1));
        KeySpec price = key("gpu", "usd_per_gpu_hour", ValueType::number, "USD", "0",
                            "on-demand price of one GPU for one hour (0: unknown; at most 1e6); cite where from and when in the file");
        price.min = 0;
        price.max = 1e6;
        s.push_back(price);

        for (auto& k : compute_keys()) s.push_back(k);

        KeySpec intra = key("intra_node", "kind", ValueType::choice, "", "", "link between GPUs of a node");
        intra.choices = {"nvlink", "nvswitch", "pcie", "pcie-no-p2p", "shm"};
        intra.required = true;
        intra.help = "link between GPUs of a node: nvlink / nvswitch direct, pcie peer-to-peer, pcie-no-p2p staged through "
                     "host memory, shm a CPU host's shared memory (docs/topologies.md)";
        s.push_back(intra);
        s.push_back(positive("intra_node", "bandwidth_gbps", "GB/s", "", "per GPU, one direction (datasheet; at most 1e6)", limits::kGBps));
        s.push_back(efficiency_key("intra_node"));
        s.push_back(latency_key("intra_node"));
        KeySpec host_bus = key("intra_node", "host_bus_gbps", ValueType::number, "GB/s", "auto",
                               "pcie-no-p2p: the node's path to host memory, one direction, shared by its GPUs' staged "
                               "collectives and offload copies (auto: gpus_per_node x host.h2d_gbps; at most 1e6)");
        host_bus.min = 0;
        host_bus.max = limits::kGBps;
        host_bus.min_exclusive = true;
        host_bus.allows_auto = true;
        s.push_back(host_bus);
        s.push_back(auto_key("intra_node", "cache_mib", ValueType::number, "MiB",
                             "shm: the cache a collective's buffers (every rank's on the node) stay in; the share beyond it "
                             "moves spill_slowdown times slower (auto: this host's last-level cache for shm, 0 otherwise; "
                             "calibrate fits it; at most 1 TiB; docs/topologies.md)",
                             0, limits::kBufferMiB));
        s.push_back(bounded("intra_node", "spill_slowdown", "", "1",
                            "shm: how many times longer a collective moves and adds the bytes of its buffers beyond "
                            "cache_mib (1: no difference; calibrate fits it; at most 1,000)",
                            1, 1000));
        s.push_back(non_negative("intra_node", "copy_gbps", "GB/s", "0",
                                 "shm: the rate MPI copies a rank's own data between a collective's send and receive "
                                 "buffers: an out-of-place all-gather's own block, an out-of-place all-reduce's whole "
                                 "buffer (0: free; calibrate fits it from a sweep of both placements; at most 1e6)",
                                 limits::kGBps));

        KeySpec inter = key("inter_node", "kind", ValueType::choice, "", "none", "network between nodes");
        inter.choices = {"infiniband", "ethernet", "none"};
        s.push_back(inter);
        s.push_back(non_negative("inter_node", "bandwidth_gbps", "GB/s", "0", "per NIC, one direction (at most 1e6)", limits::kGBps));
        s.push_back(efficiency_key("inter_node"));
        s.push_back(count("inter_node", "nics", "1", "NICs per node (at most 64)", limits::kNics));
        s.push_back(latency_key("inter_node"));

        s.push_back(positive("host", "memory_gib", "GiB", "", "host memory per node (at most 1 PiB)", limits::kMemoryGiB));
        s.push_back(positive("host", "h2d_gbps", "GB/s", "25", "host<->device copy bandwidth per GPU (pinned; at most 1e6)",
                             limits::kGBps));
        s.push_back(positive("host", "cpu_optimizer_gelems", "1e9 params/s", "1",
                             "CPU optimizer throughput per rank (offload; at most 1e6)", limits::kGelemsPerSecond));
        s.push_back(auto_key("host", "process_gib", ValueType::number, "GiB",
                             "host memory of each training process itself, beyond the buffers it offloads: libraries, "
                             "CUDA's host side, the data loader (auto: 2 GiB per GPU rank, an estimate for a PyTorch "
                             "process with CUDA; 0.5 GiB per CPU rank, measured for shardsim's own ranks: README; at most "
                             "1 PiB)",
                             0, limits::kMemoryGiB));
        s.push_back(auto_key("host", "cpu_cores", ValueType::integer, "",
                             "a CPU host (gpu.kind = cpu): the cores its ranks may run on, per node; with 2 or more per "
                             "rank collectives overlap compute, with fewer they run between it, and ranks beyond the "
                             "cores share them (auto: this process's cpuset; under run and validate the union of the "
                             "ranks' on this node; at most 1,000,000; docs/topologies.md)",
                             1, static_cast<double>(limits::kWorld)));

        s.push_back(key("nccl_tests", "source", ValueType::text, "", "", "published nccl-tests figures: where from, and when"));
        KeySpec ranks = key("nccl_tests", "ranks", ValueType::integer, "", "0", "ranks the figures were measured on (0: none cited; at most 1,000,000)");
        ranks.min = 0;
        ranks.max = static_cast<double>(limits::kWorld);
        s.push_back(ranks);
        for (const char* op : kPublishedOps)
            s.push_back(key("nccl_tests", std::string(op) + "_busbw_gbps", ValueType::text, "GB/s", "",
                            std::string("published busbw of ") + op + " by size: 'SIZE:GBPS ...', e.g. 8M:130 8G:232"));
        return s;
    }();
    return schema;
}

double default_link_efficiency(LinkKind k) {
    switch (k) {
        case LinkKind::nvlink:
        case LinkKind::nvswitch: return 0.78;     // DGX A100 nccl-tests: ~234 of 300 GB/s (topologies/8x-a100-40g.ini)
        case LinkKind::pcie:
        case LinkKind::pcie_no_p2p: return 0.8;   // PCIe 4.0 x16: ~25 GB/s of cudaMemcpy out of 32 (docs/topologies.md)
        case LinkKind::infiniband: return 0.9;    // NDR: ~45 GB/s per 50 GB/s NIC in nccl-tests (topologies/4x8-h100-ib.ini)
        case LinkKind::ethernet: return 0.8;
        case LinkKind::shm:
        case LinkKind::none: return 1.0;          // a CPU host's shared memory: its bandwidth is what calibrate fits
    }
    return 1.0;
}

// NCCL's ring Simple hop latency per path (src/graph/tuning.cc, hwLat; the rest of the table is in
// src/sim/links.cpp, which scales it by this figure).
double default_link_latency_us(LinkKind k) {
    switch (k) {
        case LinkKind::nvlink:
        case LinkKind::nvswitch: return 3.4;
        case LinkKind::infiniband:
        case LinkKind::ethernet: return 14.0;
        case LinkKind::none: return 0.0;
        default: return 5.7;  // PCIe (staged: each of its two crossings), a CPU host's shared memory
    }
}

namespace {

ComputeSpec compute_spec(const Values& v, const GpuSpec& gpu, const std::string& path, Problems& problems) {
    ComputeSpec c;
    c.sms = v.integer("compute.sms");
    const std::string tile = v.text("compute.gemm_tile");
    const auto x = tile.find('x');
    try {
        if (x == std::string::npos) throw std::invalid_argument("no x");
        c.tile_m = std::stoll(tile.substr(0, x));
        c.tile_n = std::stoll(tile.substr(x + 1));
    } catch (const std::exception&) {
        c.tile_m = c.tile_n = 0;
    }
    if (c.tile_m < 1 || c.tile_n < 1)
        problems.add((v.where("compute.gemm_tile") == "default" ? path : v.where("compute.gemm_tile")) +
                     ": compute.gemm_tile: bad value '" + tile + "' (allowed: MxN with integers >= 1, e.g. 128x128)");
    c.gemm_efficiency = v.is_auto("compute.gemm_efficiency") ? gpu.compute_efficiency : v.number("compute.gemm_efficiency");
    c.attention_efficiency = v.is_auto("compute.attention_efficiency") ? c.gemm_efficiency : v.number("compute.attention_efficiency");
    c.memory_efficiency = v.number("compute.memory_efficiency");
    c.elementwise_efficiency = v.is_auto("compute.elementwise_efficiency") ? c.memory_efficiency : v.number("compute.elementwise_efficiency");
    c.launch_us = v.number("compute.launch_us");
    c.stage_gelems = v.number("compute.stage_gelems");
    c.accumulate_gelems = v.number("compute.accumulate_gelems");
    c.accumulate_fp32_gelems = v.number("compute.accumulate_fp32_gelems");
    c.time_cv = v.number("compute.time_cv");
    c.source = v.text("compute.source");
    return c;
}

// "8M:130 64M:200 ..." -> points; every bad item is a problem naming the key and its place.
PublishedSweep published_sweep(const Values& v, const std::string& path, Problems& problems) {
    PublishedSweep p;
    p.source = v.text("nccl_tests.source");
    p.ranks = v.integer("nccl_tests.ranks");
    for (const char* op : kPublishedOps) {
        const std::string name = std::string("nccl_tests.") + op + "_busbw_gbps";
        const std::string where = (v.where(name) == "default" ? path : v.where(name)) + ": " + name;
        for (const auto& item : split(v.text(name), ' ')) {
            if (trim(item).empty()) continue;
            const auto colon = item.find(':');
            const auto size = colon == std::string::npos ? std::nullopt : parse_byte_size(item.substr(0, colon));
            double gbps = 0;
            try {
                gbps = colon == std::string::npos ? 0 : std::stod(item.substr(colon + 1));
            } catch (const std::exception&) {
            }
            if (!size || *size <= 0 || !(gbps > 0)) {
                problems.add(where + ": bad value '" + item + "' (allowed: SIZE:GBPS items separated by spaces, e.g. 8M:130 8G:232)");
                continue;
            }
            p.points.push_back({op, *size, gbps});
        }
    }
    if (!p.points.empty() && (p.ranks < 2 || p.source.empty()))
        problems.add(path + ": nccl_tests: figures without " + (p.source.empty() ? "a source" : "the rank count") +
                     " (allowed: nccl_tests.source = where and when, nccl_tests.ranks >= 2)");
    return p;
}

}  // namespace

namespace {
std::int64_t g_node_cpu_cores = 0;  // set by a launcher that measured the node; 0: not measured
}  // namespace

void set_node_cpu_cores(std::int64_t cores) { g_node_cpu_cores = std::max<std::int64_t>(0, cores); }

std::int64_t node_cpu_cores() {
    return g_node_cpu_cores > 0 ? g_node_cpu_cores : static_cast<std::int64_t>(affinity_cpus().size());
}

CpuHost CpuHost::of(std::int64_t cores, std::int64_t ranks) {
    CpuHost h;
    const double c = static_cast<double>(std::max<std::int64_t>(1, cores));
    const double r = static_cast<double>(std::max<std::int64_t>(1, ranks));
    h.cores_per_rank = c / r;
    h.comm_thread = h.cores_per_rank >= 2;
    h.slowdown = std::max(1.0, r / c);
    return h;
}

double GpuSpec::peak_tflops(DType t) const {
    switch (t) {
        case DType::bf16: return bf16_tflops;
        case DType::fp16: return fp16_tflops;
        case DType::fp32: return fp32_tflops;
    }
    return fp32_tflops;
}

// Optional text keys left unset (compute.source, the nccl_tests figures) are left out: the
// parser reads an empty text value as an error, and the effective text must load again.
std::string TopologyConfig::effective_ini() const {
    std::string out;
    for (const auto& line : split(effective_text(topology_schema(), values), '\n'))
        if (line.size() < 3 || line.compare(line.size() - 3, 3, " = ") != 0) out += line + "\n";
    return out;
}

TopologyConfig load_topology_text(const std::string& path, const std::string& text,
                                  const std::vector<Override>& overrides) {
    Problems problems;
    TopologyConfig t;
    t.source = parse_ini_text(path, text, problems);
    t.values = resolve(topology_schema(), t.source, overrides, problems);
    problems.throw_if_any();
    const Values& v = t.values;
    t.name = v.text("cluster.name");
    if (t.name.empty()) {
        t.name = std::filesystem::path(path).stem().string();
        if (!t.name.empty() && t.name.front() == '<') t.name = path;
        t.values.set("cluster.name", {t.name, "default", false});
    }
    t.nodes = v.integer("cluster.nodes");
    t.gpus_per_node = v.integer("cluster.gpus_per_node");
    t.gpu.name = v.text("gpu.name");
    t.gpu.is_cpu = v.text("gpu.kind") == "cpu";
    t.gpu.memory_bytes = static_cast<std::int64_t>(v.number("gpu.memory_gib") * kGiB);
    t.gpu.bf16_tflops = v.number("gpu.bf16_tflops");
    t.gpu.fp16_tflops = v.number("gpu.fp16_tflops");
    t.gpu.fp32_tflops = v.number("gpu.fp32_tflops");
    t.gpu.hbm_gbps = v.number("gpu.hbm_gbps");
    t.gpu.compute_efficiency = v.number("gpu.compute_efficiency");
    t.gpu.runtime_overhead_bytes = static_cast<std::int64_t>(v.number("gpu.runtime_overhead_mib") * kMiB);
    t.gpu.allocator_fragmentation = v.number("gpu.allocator_fragmentation");
    t.gpu.reduce_gbps = v.number("gpu.reduce_gbps");
    t.compute = compute_spec(v, t.gpu, path, problems);
    t.gpu.usd_per_gpu_hour = v.number("gpu.usd_per_gpu_hour");
    t.intra.kind = parse_link(v.text("intra_node.kind"));
    t.intra.bandwidth_gbps = v.number("intra_node.bandwidth_gbps");
    t.intra.efficiency = v.is_auto("intra_node.efficiency") ? default_link_efficiency(t.intra.kind) : v.number("intra_node.efficiency");
    t.intra.latency_us = v.is_auto("intra_node.latency_us") ? default_link_latency_us(t.intra.kind) : v.number("intra_node.latency_us");
    t.inter.kind = parse_link(v.text("inter_node.kind"));
    t.inter.bandwidth_gbps = v.number("inter_node.bandwidth_gbps");
    t.inter.efficiency = v.is_auto("inter_node.efficiency") ? default_link_efficiency(t.inter.kind) : v.number("inter_node.efficiency");
    t.inter.nics = v.integer("inter_node.nics");
    t.inter.latency_us = v.is_auto("inter_node.latency_us") ? default_link_latency_us(t.inter.kind) : v.number("inter_node.latency_us");
    t.host.memory_bytes = static_cast<std::int64_t>(v.number("host.memory_gib") * kGiB);
    t.host.h2d_gbps = v.number("host.h2d_gbps");
    t.host.cpu_optimizer_gelems = v.number("host.cpu_optimizer_gelems");
    t.intra.host_bus_gbps = v.is_auto("intra_node.host_bus_gbps") ? t.host.h2d_gbps * static_cast<double>(t.gpus_per_node)
                                                                   : v.number("intra_node.host_bus_gbps");
    t.intra.cache_mib = !v.is_auto("intra_node.cache_mib")     ? v.number("intra_node.cache_mib")
                        : t.intra.kind == LinkKind::shm ? static_cast<double>(last_level_cache_bytes()) / kMiB
                                                          : 0.0;
    t.intra.spill_slowdown = v.number("intra_node.spill_slowdown");
    t.intra.copy_gbps = v.number("intra_node.copy_gbps");
    t.host.process_bytes = v.is_auto("host.process_gib") ? (t.gpu.is_cpu ? kGiB / 2 : 2 * kGiB)
                                                         : static_cast<std::int64_t>(v.number("host.process_gib") * kGiB);
    t.host.cpu_cores = v.is_auto("host.cpu_cores") ? node_cpu_cores() : v.integer("host.cpu_cores");

    auto at = [&](const std::string& k) {
        const std::string& w = v.where(k);
        return (w == "default" ? path : w) + ": " + k;
    };
    if (t.nodes * t.gpus_per_node > limits::kWorld)  // both at most 1e6 and 1024: the product is exact
        problems.add(at("cluster.nodes") + ": bad value '" + v.raw("cluster.nodes") + "': " + std::to_string(t.nodes) +
                     " node(s) x " + std::to_string(t.gpus_per_node) + " GPUs = " + std::to_string(t.nodes * t.gpus_per_node) +
                     " GPUs (allowed: at most " + std::to_string(limits::kWorld) + " GPUs in all, here nodes <= " +
                     std::to_string(limits::kWorld / t.gpus_per_node) + ")");
    if (t.nodes > 1 && t.inter.kind == LinkKind::none)
        problems.add(at("inter_node.kind") + ": bad value 'none': " + std::to_string(t.nodes) +
                     " nodes need a network (allowed: infiniband, ethernet)");
    if (t.nodes > 1 && t.inter.bandwidth_gbps <= 0)
        problems.add(at("inter_node.bandwidth_gbps") + ": bad value '" + v.raw("inter_node.bandwidth_gbps") +
                     "': " + std::to_string(t.nodes) + " nodes need a network bandwidth (allowed: number > 0)");
    t.published = published_sweep(v, path, problems);
    problems.throw_if_any();
    return t;
}

TopologyConfig load_topology(const std::string& ref, const std::string& dir, const std::string& where,
                             const std::vector<Override>& overrides) {
    std::string why;
    auto file = resolve_file("topologies", ref, dir, &why);
    if (!file)
        throw InputError(where + ": bad value '" + ref + "'" + (why.empty() ? "" : ": " + why) +
                         " (allowed: a shipped topology (" +
                         join(embedded_names("topologies"), ", ") + ") or a path to a .ini file relative to " +
                         (dir.empty() ? std::string("the current folder")
                                      : dir == embedded_dir("jobs") ? std::string("the shipped jobs (../topologies/NAME.ini)")
                                                                   : dir) + ")");
    return load_topology_text(file->path, file->text, overrides);
}

}  // namespace shardsim::config
