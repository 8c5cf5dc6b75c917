// shardsim calibrate: fit a topology's link latency and bandwidth (sim/calibrate.hpp) to a bench
// sweep, write the calibrated topology, and say how well it predicts the sweep.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "shardsim/bench/compute.hpp"
#include "shardsim/cli/options.hpp"
#include "shardsim/config/ini_edit.hpp"
#include "shardsim/comm/mpi.hpp"
#include "shardsim/config/topology.hpp"
#include "shardsim/core/version.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/device/device.hpp"
#include "shardsim/io/bench_file.hpp"
#include "shardsim/report/calibration.hpp"
#include "shardsim/sim/calibrate.hpp"

namespace shardsim::cli {

namespace {

std::string significant(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

// The level's keys with their fitted values (as the topology spells them: us, decimal GB/s). The
// achieved bus bandwidth is written as an efficiency of the datasheet bandwidth, unless it is
// above it (a CPU host's shared memory): then as the bandwidth, at efficiency 1.
std::vector<config::IniEdit> edits(const sim::Calibration& c, const config::TopologyConfig& t) {
    std::vector<config::IniEdit> out;
    for (const auto& f : c.levels) {
        if (!f.fitted) continue;
        const std::string section = sim::link_level_name(f.level);
        const bool intra = f.level == sim::LinkLevel::intra_node;
        const config::LinkSpec& was = intra ? t.intra : t.inter;
        const sim::LevelLinks& now = intra ? c.links.intra : c.links.inter;
        const std::string by = "fitted by shardsim calibrate (was ";
        out.push_back({section, "latency_us", significant(f.latency_s * 1e6), by + significant(was.latency_us) + ")"});
        if (now.bandwidth_Bps != was.bandwidth_gbps * 1e9)
            out.push_back({section, "bandwidth_gbps", significant(now.bandwidth_Bps / 1e9), by + significant(was.bandwidth_gbps) + ")"});
        out.push_back({section, "efficiency", significant(now.efficiency), by + significant(was.efficiency) + "; bus bandwidth " +
                                                                               significant(f.busbw_Bps / 1e9) + " GB/s)"});
        if (f.reduce_fitted)
            out.push_back({"gpu", "reduce_gbps", significant(f.reduce_Bps / 1e9),
                           by + significant(t.gpu.reduce_gbps) + "; 0: reductions cost nothing beyond the transfer)"});
    }
    return out;
}

std::vector<sim::Measurement> measurements(const bench::BenchRun& run) {
    std::vector<sim::Measurement> out;
    for (const auto& r : run.rows)
        out.push_back({r.kind, r.size_bytes, run.groups.at(static_cast<std::size_t>(r.group)).span, r.time_s});
    return out;
}

// A share of a peak as the topology holds it: at most 1; above it the peak itself was low.
std::string share(double v) { return significant(std::min(1.0, v)); }

// The [compute] keys (and the peaks or memory bandwidth where this device beats the datasheet)
// from what --compute measured. `other`: GEMM rates measured in other dtypes (the CPU's 16-bit
// GEMMs widen their operands to fp32 first, so they run slower than its fp32 ones): each becomes
// that dtype's peak, so that peak x gemm_efficiency is the rate measured.
std::vector<config::IniEdit> compute_edits(const bench::ComputeMeasurement& m, const config::TopologyConfig& t,
                                           const std::vector<std::pair<DType, double>>& other) {
    std::vector<config::IniEdit> out;
    const double peak = t.gpu.peak_tflops(m.dtype) * 1e12;
    const std::string by = "measured by shardsim calibrate --compute (was ";
    const double peak_used = std::max(peak, m.gemm_flops_per_s);
    const double efficiency = std::min(1.0, m.gemm_flops_per_s / peak_used);
    std::vector<std::pair<DType, double>> peaks;  // the new peak of each dtype that gets one
    if (m.gemm_flops_per_s > peak)  // one core beat the estimated peak: the measured rate is the peak
        for (DType d : {DType::bf16, DType::fp16, DType::fp32}) peaks.push_back({d, m.gemm_flops_per_s});
    for (const auto& [d, rate] : other) {
        auto it = std::find_if(peaks.begin(), peaks.end(), [d = d](const auto& p) { return p.first == d; });
        if (it == peaks.end()) it = peaks.insert(peaks.end(), {d, 0.0});
        it->second = rate / efficiency;
    }
    for (const auto& [d, value] : peaks)
        out.push_back({"gpu", std::string(dtype_name(d)) + "_tflops", significant(value / 1e12),
                       by + significant(t.gpu.peak_tflops(d)) + (d == m.dtype ? ")" : "; GEMMs measured in " + std::string(dtype_name(d)) + ")")});
    out.push_back({"compute", "gemm_efficiency", share(efficiency), by + significant(t.compute.gemm_efficiency) + ")"});
    out.push_back({"compute", "attention_efficiency", share(m.attention_flops_per_s / peak_used),
                   by + significant(t.compute.attention_efficiency) + ")"});
    const double hbm = t.gpu.hbm_gbps * 1e9;
    if (m.memory_Bps > hbm) out.push_back({"gpu", "hbm_gbps", significant(m.memory_Bps / 1e9), by + significant(t.gpu.hbm_gbps) + ")"});
    out.push_back({"compute", "memory_efficiency", share(m.memory_Bps / std::max(hbm, m.memory_Bps)),
                   by + significant(t.compute.memory_efficiency) + ")"});
    out.push_back({"compute", "launch_us", significant(m.launch_s * 1e6), by + significant(t.compute.launch_us) + ")"});
    out.push_back({"compute", "source", "shardsim calibrate --compute on " + m.device + " (" + comm::host_name() + ", " +
                                            std::string(dtype_name(m.dtype)) + ")", ""});
    return out;
}

// --compute: measure this device and write the compute figures into the topology.
int calibrate_compute(const std::string& topology, const std::string& out, const std::string& device_name, bool json) {
    const config::TopologyConfig topo = config::load_topology(topology, "", "--topology", {});
    std::string why;
    const bool gpu = device_name == "cuda" || (device_name == "auto" && device::cuda_available(&why));
    if (device_name == "cuda" && !device::cuda_available(&why)) throw InputError("--device: bad value 'cuda': " + why + " (allowed: cpu)");
    std::unique_ptr<device::Device> dev = gpu ? device::make_cuda_device(0) : device::make_cpu_device(1);
    // A GPU in the bf16 of training. The CPU device computes every dtype in fp32 and widens 16-bit
    // operands first (docs/compute.md): its fp32 rates, then its bf16 and fp16 GEMMs on their own.
    bench::ComputeMeasurement m = bench::measure_compute(*dev, gpu ? DType::bf16 : DType::fp32, gpu ? 8192 : 1024);
    std::vector<std::pair<DType, double>> other;
    if (!gpu)
        for (DType d : {DType::bf16, DType::fp16}) other.push_back({d, bench::measure_gemm(*dev, d, 1024, m.samples)});
    const auto changes = compute_edits(m, topo, other);
    std::string preamble = "# Compute calibrated by shardsim " + version() + ": shardsim calibrate --compute --topology " + topo.name +
                           " on " + m.device + " (" + comm::host_name() + "), " + std::string(dtype_name(m.dtype)) + ":\n";
    TextTable table({"measured", "time", "rate"});
    for (const auto& s : m.samples)
        table.add_row({s.what, format_seconds(s.seconds),
                       s.flops > 0 ? format_fixed(s.flops / s.seconds / 1e9, 1) + " GFLOP/s" : format_fixed(s.bytes / s.seconds / 1e9, 2) + " GB/s"});
    for (const auto& line : split(table.str(), '\n'))
        if (!line.empty()) preamble += "#   " + line + "\n";
    const std::string text = config::edit_ini_text(topo.source, changes, preamble);
    config::load_topology_text(out, text, {});  // what is written must load
    write_text_file(out, text);
    if (json) {
        io::Json j = io::Json::object();
        j["device"] = m.device;
        j["gemm_flops_per_s"] = m.gemm_flops_per_s;
        io::Json by = io::Json::object();
        for (const auto& [d, rate] : other) by[std::string(dtype_name(d))] = rate;
        j["gemm_flops_per_s_by_dtype"] = by;  // the other dtypes' GEMMs (CPU), each its dtype's peak
        j["attention_flops_per_s"] = m.attention_flops_per_s;
        j["memory_Bps"] = m.memory_Bps;
        j["launch_s"] = m.launch_s;
        j["out"] = out;
        std::cout << j.dump() << "\n";
    } else if (out != "-") {
        std::cout << "shardsim calibrate --compute: " << m.device << ", " << dtype_name(m.dtype) << "\n" << table.str() << "\n";
        for (const auto& c : changes) std::cout << "  " << c.section << "." << c.key << " = " << c.value << "\n";
        std::cout << "\nwrote " << out << "\n";
    }
    return 0;
}

}  // namespace

int cmd_calibrate(const Args& args) {
    std::string bench_path, topology, out, min_text = "1", max_text = "4G";
    bool json = false, compute = false;
    std::string device_name = "auto";
    po::options_description desc("options");
    desc.add_options()
        ("bench", po::value<std::string>(&bench_path), "the HDF5 file of shardsim bench --out")
        ("topology", po::value<std::string>(&topology), "the topology to calibrate (shipped name or .ini path)")
        ("out", po::value<std::string>(&out), "write the calibrated topology here ('-': stdout)")
        ("min-bytes", po::value<std::string>(&min_text)->default_value(min_text),
         "fit only sizes from this one (K, M, G suffixes), e.g. 1M for the sizes training moves")
        ("max-bytes", po::value<std::string>(&max_text)->default_value(max_text), "fit only sizes up to this one")
        ("json", po::bool_switch(&json), "print the fit as JSON")
        ("compute", po::bool_switch(&compute),
         "measure this device's GEMM, attention, memory and launch rates instead (no bench file) and write them into [compute]")
        ("device", po::value<std::string>(&device_name)->default_value(device_name), "--compute: auto, cpu or cuda");
    po::positional_options_description pos;
    pos.add("bench", 1);
    const auto vm = parse_options("calibrate", "shardsim calibrate BENCH.h5 --topology T --out T-calibrated.ini [--min-bytes 1M] [--json]\n       shardsim calibrate --compute --topology T --out T-calibrated.ini [--device auto|cpu|cuda]", desc,
                                  args, "", &pos);
    if (!vm) return 0;
    if (compute) {
        Problems p;
        if (topology.empty()) p.add("--topology: missing (allowed: a shipped topology name or a path to a .ini file)");
        if (out.empty()) p.add("--out: missing (allowed: a path for the calibrated topology, or - for stdout)");
        if (device_name != "auto" && device_name != "cpu" && device_name != "cuda")
            p.add("--device: bad value '" + device_name + "' (allowed: auto, cpu, cuda)");
        p.throw_if_any();
        return calibrate_compute(topology, out, device_name, json);
    }
    Problems p;
    if (bench_path.empty()) p.add("shardsim calibrate: missing the bench file (usage: shardsim calibrate BENCH.h5 --topology T --out FILE.ini)");
    if (topology.empty()) p.add("--topology: missing (allowed: a shipped topology name or a path to a .ini file)");
    if (out.empty()) p.add("--out: missing (allowed: a path for the calibrated topology, or - for stdout)");
    const auto lo = parse_byte_count(min_text), hi = parse_byte_count(max_text);
    if (!lo) p.add("--min-bytes: bad value '" + min_text + "' (allowed: " + kByteCountAllowed + ")");
    if (!hi) p.add("--max-bytes: bad value '" + max_text + "' (allowed: " + kByteCountAllowed + ")");
    if (lo && hi && *lo > *hi) p.add("--max-bytes: bad value '" + max_text + "': below --min-bytes " + min_text);
    p.throw_if_any();

    const bench::BenchRun run = io::read_bench_file(bench_path);
    const config::TopologyConfig topo = config::load_topology(topology, "", "--topology", {});
    const auto points = measurements(run);
    report::CalibrationInput in;
    in.bench_path = bench_path;
    in.topology_name = topo.name;
    in.bench = &run;
    in.points = points;
    in.before = sim::LinkModel::from(topo);
    std::vector<sim::Measurement> fitted;
    for (const auto& m : points)
        if (m.size_bytes >= *lo && m.size_bytes <= *hi) fitted.push_back(m);
    // The range the errors are stated over: the sizes actually used, not the option's bounds.
    in.min_bytes = fitted.empty() ? *lo : *hi;
    in.max_bytes = fitted.empty() ? *hi : *lo;
    for (const auto& m : fitted) {
        in.min_bytes = std::min(in.min_bytes, m.size_bytes);
        in.max_bytes = std::max(in.max_bytes, m.size_bytes);
    }
    in.fit = sim::calibrate_links(in.before, fitted);
    for (auto& f : in.fit.levels)
        if (f.fitted && f.level == sim::LinkLevel::inter_node && topo.inter.kind == config::LinkKind::none) {
            f.fitted = false;
            f.note = "topology " + topo.name + " has no network (inter_node.kind = none) to calibrate";
        }

    // The file as it will be written, read back: the model simulate will use, errors included.
    const auto changes = edits(in.fit, topo);
    const config::TopologyConfig written = config::load_topology_text(out, config::edit_ini_text(topo.source, changes, ""), {});
    in.after = sim::LinkModel::from(written);
    const report::CalibrationReport r = report::calibration_report(in);
    const std::string text = config::edit_ini_text(topo.source, changes, r.preamble);
    config::load_topology_text(out, text, {});  // the preamble is comments only: still the same file
    write_text_file(out, text);

    if (json) {
        io::Json j = r.json;
        j["out"] = out;
        std::cout << j.dump() << "\n";
    } else if (out != "-") {
        std::cout << r.text;
        if (run.ranks_per_node != topo.gpus_per_node && topo.nodes > 1)
            std::cout << "note: the sweep ran " << run.ranks_per_node << " ranks per node, topology " << topo.name << " has "
                      << topo.gpus_per_node << " GPUs per node\n";
        std::cout << "\nwrote " << out << " (use it with: shardsim simulate --set job.topology=" << out << ")\n";
    }
    return 0;
}

}  // namespace shardsim::cli
