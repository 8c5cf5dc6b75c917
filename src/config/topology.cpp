#include "shardsim/config/topology.hpp"

#include <filesystem>

#include "shardsim/config/embedded.hpp"
#include "shardsim/config/job.hpp"
#include "shardsim/config/limits.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::config {

std::string link_kind_name(LinkKind k) {
    switch (k) {
        case LinkKind::nvlink: return "nvlink";
        case LinkKind::pcie: return "pcie";
        case LinkKind::shm: return "shm";
        case LinkKind::infiniband: return "infiniband";
        case LinkKind::ethernet: return "ethernet";
        case LinkKind::none: return "none";
    }
    return "?";
}

namespace {
LinkKind parse_link(const std::string& s) {
    for (LinkKind k : {LinkKind::nvlink, LinkKind::pcie, LinkKind::shm, LinkKind::infiniband,
                       LinkKind::ethernet, LinkKind::none})
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
KeySpec non_negative(std::string section, std::string name, std::string unit, std::string def, std::string help, double max) {
    KeySpec k = key(std::move(section), std::move(name), ValueType::number, std::move(unit), std::move(def), std::move(help));
    k.min = 0;
    k.max = max;
    return k;
}
KeySpec count(std::string section, std::string name, std::string def, std::string help, std::int64_t max) {
    KeySpec k = key(std::move(section), std::move(name), ValueType::integer, "", std::move(def), std::move(help));
    k.min = 1;
    k.max = static_cast<double>(max);
    return k;
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
        s.push_back(positive("gpu", "compute_efficiency", "", "0.5", "achieved fraction of peak in GEMM-heavy ops", 1));
        s.push_back(non_negative("gpu", "runtime_overhead_mib", "MiB", "0",
                                 "per GPU: CUDA context, NCCL buffers, cuBLAS workspace (at most 1 TiB)", limits::kBufferMiB));
        KeySpec frag = key("gpu", "allocator_fragmentation", ValueType::number, "", "0",
                           "extra device slack as a fraction of the transient peak, beyond what the simulated caching "
                           "allocator reserves (0: its rules alone)");
        frag.min = 0;
        frag.max = 1;
        s.push_back(frag);

        KeySpec intra = key("intra_node", "kind", ValueType::choice, "", "", "link between GPUs of a node");
        intra.choices = {"nvlink", "pcie", "shm"};
        intra.required = true;
        s.push_back(intra);
        s.push_back(positive("intra_node", "bandwidth_gbps", "GB/s", "", "per GPU, one direction (at most 1e6)", limits::kGBps));
        s.push_back(non_negative("intra_node", "latency_us", "us", "5", "per message step (at most 1 s)", limits::kLatencyUs));

        KeySpec inter = key("inter_node", "kind", ValueType::choice, "", "none", "network between nodes");
        inter.choices = {"infiniband", "ethernet", "none"};
        s.push_back(inter);
        s.push_back(non_negative("inter_node", "bandwidth_gbps", "GB/s", "0", "per NIC, one direction (at most 1e6)", limits::kGBps));
        s.push_back(count("inter_node", "nics", "1", "NICs per node (at most 64)", limits::kNics));
        s.push_back(non_negative("inter_node", "latency_us", "us", "5", "per message step (at most 1 s)", limits::kLatencyUs));

        s.push_back(positive("host", "memory_gib", "GiB", "", "host memory per node (at most 1 PiB)", limits::kMemoryGiB));
        s.push_back(positive("host", "h2d_gbps", "GB/s", "25", "host<->device copy bandwidth per GPU (pinned; at most 1e6)",
                             limits::kGBps));
        s.push_back(positive("host", "cpu_optimizer_gelems", "1e9 params/s", "1",
                             "CPU optimizer throughput per rank (offload; at most 1e6)", limits::kGelemsPerSecond));
        KeySpec process = key("host", "process_gib", ValueType::number, "GiB", "auto",
                              "host memory of each training process itself, beyond the buffers it offloads: libraries, "
                              "CUDA's host side, the data loader (auto: 2 GiB per GPU rank, an estimate for a PyTorch "
                              "process with CUDA; 0.5 GiB per CPU rank, measured for shardsim's own ranks: README; at most "
                              "1 PiB)");
        process.min = 0;
        process.max = limits::kMemoryGiB;
        process.allows_auto = true;
        s.push_back(process);
        return s;
    }();
    return schema;
}

double GpuSpec::peak_tflops(DType t) const {
    switch (t) {
        case DType::bf16: return bf16_tflops;
        case DType::fp16: return fp16_tflops;
        case DType::fp32: return fp32_tflops;
    }
    return fp32_tflops;
}

std::string TopologyConfig::effective_ini() const { return effective_text(topology_schema(), values); }

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
    t.intra.kind = parse_link(v.text("intra_node.kind"));
    t.intra.bandwidth_gbps = v.number("intra_node.bandwidth_gbps");
    t.intra.latency_us = v.number("intra_node.latency_us");
    t.inter.kind = parse_link(v.text("inter_node.kind"));
    t.inter.bandwidth_gbps = v.number("inter_node.bandwidth_gbps");
    t.inter.nics = v.integer("inter_node.nics");
    t.inter.latency_us = v.number("inter_node.latency_us");
    t.host.memory_bytes = static_cast<std::int64_t>(v.number("host.memory_gib") * kGiB);
    t.host.h2d_gbps = v.number("host.h2d_gbps");
    t.host.cpu_optimizer_gelems = v.number("host.cpu_optimizer_gelems");
    t.host.process_bytes = v.is_auto("host.process_gib") ? (t.gpu.is_cpu ? kGiB / 2 : 2 * kGiB)
                                                         : static_cast<std::int64_t>(v.number("host.process_gib") * kGiB);

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
