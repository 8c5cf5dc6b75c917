// shardsim calibrate: fit a topology's link latency and bandwidth (sim/calibrate.hpp) to a bench
// sweep, write the calibrated topology, and say how well it predicts the sweep.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "shardsim/cli/options.hpp"
#include "shardsim/config/ini_edit.hpp"
#include "shardsim/config/topology.hpp"
#include "shardsim/core/format.hpp"
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

// The level's keys with their fitted values (as the topology spells them: us, decimal GB/s).
std::vector<config::IniEdit> edits(const sim::Calibration& c, const config::TopologyConfig& t) {
    std::vector<config::IniEdit> out;
    for (const auto& f : c.levels) {
        if (!f.fitted) continue;
        const std::string section = sim::link_level_name(f.level);
        const bool intra = f.level == sim::LinkLevel::intra_node;
        const double was_lat = intra ? t.intra.latency_us : t.inter.latency_us;
        const double was_bw = intra ? t.intra.bandwidth_gbps : t.inter.bandwidth_gbps;
        out.push_back({section, "latency_us", significant(f.latency_s * 1e6), "fitted by shardsim calibrate (was " + significant(was_lat) + ")"});
        out.push_back({section, "bandwidth_gbps", significant(f.bandwidth_Bps / 1e9),
                       "fitted by shardsim calibrate (was " + significant(was_bw) + ")"});
    }
    return out;
}

std::vector<sim::Measurement> measurements(const bench::BenchRun& run) {
    std::vector<sim::Measurement> out;
    for (const auto& r : run.rows)
        out.push_back({r.kind, r.size_bytes, run.groups.at(static_cast<std::size_t>(r.group)).span, r.time_s});
    return out;
}

}  // namespace

int cmd_calibrate(const Args& args) {
    std::string bench_path, topology, out, min_text = "1", max_text = "4G";
    bool json = false;
    po::options_description desc("options");
    desc.add_options()
        ("bench", po::value<std::string>(&bench_path), "the HDF5 file of shardsim bench --out")
        ("topology", po::value<std::string>(&topology), "the topology to calibrate (shipped name or .ini path)")
        ("out", po::value<std::string>(&out), "write the calibrated topology here ('-': stdout)")
        ("min-bytes", po::value<std::string>(&min_text)->default_value(min_text),
         "fit only sizes from this one (K, M, G suffixes), e.g. 1M for the sizes training moves")
        ("max-bytes", po::value<std::string>(&max_text)->default_value(max_text), "fit only sizes up to this one")
        ("json", po::bool_switch(&json), "print the fit as JSON");
    po::positional_options_description pos;
    pos.add("bench", 1);
    const auto vm = parse_options("calibrate", "shardsim calibrate BENCH.h5 --topology T --out T-calibrated.ini [--min-bytes 1M] [--json]", desc,
                                  args, "", &pos);
    if (!vm) return 0;
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
