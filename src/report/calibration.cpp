#include "shardsim/report/calibration.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "shardsim/core/format.hpp"
#include "shardsim/core/stats.hpp"
#include "shardsim/core/version.hpp"

namespace shardsim::report {

namespace {

using sim::LinkLevel;

struct Stats {
    std::size_t points = 0;
    double median = 0, max = 0;
};

Stats stats(std::vector<double> abs_errors) {
    Stats s;
    s.points = abs_errors.size();
    if (abs_errors.empty()) return s;
    s.median = median(abs_errors);
    s.max = *std::max_element(abs_errors.begin(), abs_errors.end());
    return s;
}

io::Json stats_json(const Stats& s) {
    io::Json j = io::Json::object();
    j["points"] = static_cast<std::int64_t>(s.points);
    j["median_rel_error"] = s.median;
    j["max_rel_error"] = s.max;
    return j;
}

std::string percent(double v) { return format_fixed(100 * v, 1) + "%"; }

const sim::LevelLinks& level_links(const sim::LinkModel& l, LinkLevel v) { return v == LinkLevel::intra_node ? l.intra : l.inter; }
double latency_us(const sim::LinkModel& l, LinkLevel v) { return level_links(l, v).latency_s * 1e6; }
// The achieved bus bandwidth the model uses (bandwidth x efficiency).
double bandwidth_gbps(const sim::LinkModel& l, LinkLevel v) { return level_links(l, v).busbw_Bps() / 1e9; }
std::string reduce_text(const sim::LinkModel& l) { return l.reduce_Bps > 0 ? format_fixed(l.reduce_Bps / 1e9, 3) : "free"; }
// shm: the cache term ([Note: a CPU host's cache]) and MPI's own-data copy ([Note: MPI's
// out-of-place copy]), where fitted.
std::string cache_text(const sim::LevelFit& f) {
    std::string s;
    if (f.cache_fitted)
        s += "; buffers beyond " + format_fixed(f.cache_bytes / static_cast<double>(kMiB), 1) + " MiB of cache x" + format_fixed(f.spill_slowdown, 2);
    if (f.copy_fitted) s += "; own data copied at " + (f.copy_Bps > 0 ? format_fixed(f.copy_Bps / 1e9, 1) + " GB/s" : std::string("no cost"));
    return s;
}

// Size bands the errors are also stated over (the "from 64 KiB up" is the union of the
// last four).
struct Band {
    std::int64_t lo, hi;  // [lo, hi)
    const char* name;
};
constexpr Band kBands[] = {{0, 64LL << 10, "< 64 KiB"},
                           {64LL << 10, 1LL << 20, "64 KiB - 1 MiB"},
                           {1LL << 20, 16LL << 20, "1 - 16 MiB"},
                           {16LL << 20, 256LL << 20, "16 - 256 MiB"},
                           {256LL << 20, std::numeric_limits<std::int64_t>::max(), ">= 256 MiB"}};

// Median and max error per size band, and over every size from 64 KiB up.
void band_errors(const CalibrationInput& in, TextTable& t, io::Json& j) {
    j = io::Json::array();
    auto add = [&](const std::string& name, std::int64_t lo, std::int64_t hi) {
        std::vector<double> e;
        for (const auto& m : in.points)
            if (m.size_bytes >= lo && m.size_bytes < hi && m.size_bytes >= in.min_bytes && m.size_bytes <= in.max_bytes)
                e.push_back(std::abs(sim::relative_error(in.after, m)));
        const Stats s = stats(e);
        if (s.points == 0) return;
        t.add_row({name, std::to_string(s.points), percent(s.median), percent(s.max)});
        io::Json b = stats_json(s);
        b["band"] = name;
        b["min_bytes"] = lo;
        j.push_back(b);
    };
    for (const auto& b : kBands) add(b.name, b.lo, b.hi);
    add(">= 64 KiB", 64LL << 10, std::numeric_limits<std::int64_t>::max());
}


// The comment block's table for one group: one line per size, the signed error of each op and
// placement.
std::string group_errors(const CalibrationInput& in, int group) {
    const auto& bench = *in.bench;
    const auto& g = bench.groups.at(static_cast<std::size_t>(group));
    std::vector<std::pair<plan::CollectiveKind, bool>> columns;
    std::vector<std::int64_t> sizes;
    std::map<std::tuple<std::int64_t, int, bool>, double> err;
    for (std::size_t i = 0; i < bench.rows.size(); ++i) {
        const auto& r = bench.rows[i];
        if (r.group != group) continue;
        if (std::find(columns.begin(), columns.end(), std::make_pair(r.kind, r.in_place)) == columns.end())
            columns.push_back({r.kind, r.in_place});
        if (std::find(sizes.begin(), sizes.end(), r.size_bytes) == sizes.end()) sizes.push_back(r.size_bytes);
        err[{r.size_bytes, static_cast<int>(r.kind), r.in_place}] = sim::relative_error(in.after, in.points[i]);
    }
    std::string out = "#   " + sim::link_level_name(sim::level_of(g.span)) + ", group " + g.name + " (" +
                      std::to_string(g.span.ranks) + " ranks on " + std::to_string(g.span.nodes) + " node(s))\n#   " +
                      std::string(12, ' ');
    char buf[64];
    for (const auto& [kind, in_place] : columns) {
        std::snprintf(buf, sizeof buf, "%19s", (plan::collective_name(kind) + (in_place ? " in" : " out")).c_str());
        out += buf;
    }
    out += "\n";
    for (auto size : sizes) {
        std::snprintf(buf, sizeof buf, "#   %12lld", static_cast<long long>(size));
        out += buf;
        for (const auto& [kind, in_place] : columns) {
            const auto it = err.find({size, static_cast<int>(kind), in_place});
            if (it == err.end())
                std::snprintf(buf, sizeof buf, "%19s", "-");
            else
                std::snprintf(buf, sizeof buf, "%18.1f%%", 100 * it->second);
            out += buf;
        }
        out += "\n";
    }
    return out;
}

}  // namespace

namespace {

// One level's fit as JSON: where it started, where it ended.
io::Json level_fit_json(const CalibrationInput& in, const sim::LevelFit& f) {
    io::Json l = io::Json::object();
    l["level"] = sim::link_level_name(f.level);
    l["points"] = static_cast<std::int64_t>(f.points);
    l["fitted"] = f.fitted;
    l["latency_us_before"] = latency_us(in.before, f.level);
    l["bandwidth_gbps_before"] = bandwidth_gbps(in.before, f.level);
    l["latency_us"] = latency_us(in.after, f.level);
    l["bandwidth_gbps"] = bandwidth_gbps(in.after, f.level);
    l["reduce_gbps_before"] = in.before.reduce_Bps / 1e9;
    l["reduce_gbps"] = in.after.reduce_Bps / 1e9;
    if (f.cache_fitted) {
        l["cache_mib"] = f.cache_bytes / static_cast<double>(kMiB);
        l["spill_slowdown"] = f.spill_slowdown;
    }
    if (f.copy_fitted) l["copy_gbps"] = f.copy_Bps / 1e9;
    l["iterations"] = f.iterations;
    if (!f.note.empty()) l["note"] = f.note;
    return l;
}

void add_fit_row(TextTable& fits, const CalibrationInput& in, const sim::LevelFit& f) {
    const std::string name = sim::link_level_name(f.level);
    if (!f.fitted) return fits.add_row({name, std::to_string(f.points), "-", "-", "-", "not fitted: " + f.note});
    fits.add_row({name, std::to_string(f.points),
                  format_fixed(latency_us(in.before, f.level), 3) + " -> " + format_fixed(latency_us(in.after, f.level), 3),
                  format_fixed(bandwidth_gbps(in.before, f.level), 3) + " -> " + format_fixed(bandwidth_gbps(in.after, f.level), 3),
                  f.reduce_fitted ? reduce_text(in.before) + " -> " + reduce_text(in.after) : "-",
                  "least squares, " + std::to_string(f.iterations) + " iteration(s)" + cache_text(f)});
}

// The level's errors per op, with the model read back from the written file: rows of `quality`
// and `l`'s "ops" and "all".
void add_level_errors(const CalibrationInput& in, const sim::LevelFit& f, TextTable& quality, io::Json& l) {
    const std::string name = sim::link_level_name(f.level);
    std::vector<plan::CollectiveKind> ops;
    std::map<int, std::vector<double>> errors;
    std::vector<double> all;
    for (const auto& m : in.points) {
        if (sim::level_of(m.span) != f.level || m.size_bytes < in.min_bytes || m.size_bytes > in.max_bytes) continue;
        if (!errors.count(static_cast<int>(m.kind))) ops.push_back(m.kind);
        const double e = std::abs(sim::relative_error(in.after, m));
        errors[static_cast<int>(m.kind)].push_back(e);
        all.push_back(e);
    }
    io::Json per_op = io::Json::object();
    for (auto k : ops) {
        const Stats s = stats(errors[static_cast<int>(k)]);
        per_op[plan::collective_name(k)] = stats_json(s);
        quality.add_row({name, plan::collective_name(k), std::to_string(s.points), percent(s.median), percent(s.max)});
    }
    const Stats overall = stats(all);
    if (overall.points > 0) quality.add_row({name, "all", std::to_string(overall.points), percent(overall.median), percent(overall.max)});
    l["ops"] = per_op;
    l["all"] = stats_json(overall);
}

// The comment block at the top of the calibrated file: where the fit came from, what it changed,
// and its error for every size, op and placement.
std::string preamble(const CalibrationInput& in) {
    const auto& bench = *in.bench;
    std::string p = "# Calibrated by shardsim " + version() + ": shardsim calibrate " + in.bench_path + " --topology " +
                    in.topology_name + "\n# from a sweep with the " + bench.backend + " backend on " + std::to_string(bench.world_size) +
                    " ranks (" + std::to_string(bench.nodes) + " node(s)), " + std::string(dtype_name(bench.dtype)) + ", hosts " +
                    join(bench.hosts, ",") + ".\n";
    for (const auto& f : in.fit.levels) {
        const std::string name = sim::link_level_name(f.level);
        if (f.fitted)
            p += "# " + name + ": latency_us " + format_fixed(latency_us(in.before, f.level), 3) + " -> " +
                 format_fixed(latency_us(in.after, f.level), 3) + ", bus bandwidth (GB/s) " +
                 format_fixed(bandwidth_gbps(in.before, f.level), 3) + " -> " + format_fixed(bandwidth_gbps(in.after, f.level), 3) +
                 (f.reduce_fitted ? ", reduce_gbps " + reduce_text(in.before) + " -> " + reduce_text(in.after) : "") + cache_text(f) +
                 " (least squares on log(predicted / measured), " + std::to_string(f.points) + " measurements of " +
                 format_bytes(in.min_bytes) + " to " + format_bytes(in.max_bytes) + ")\n";
        else
            p += "# " + name + ": kept as it was (" + f.note + ")\n";
    }
    p += "# Error of the fitted model per size, (predicted - measured) / measured:\n";
    for (std::size_t g = 0; g < bench.groups.size(); ++g) p += group_errors(in, static_cast<int>(g));
    return p + "#\n";
}

}  // namespace

CalibrationReport calibration_report(const CalibrationInput& in) {
    const auto& bench = *in.bench;
    io::Json j = io::Json::object();
    j["bench"] = in.bench_path;
    j["topology"] = in.topology_name;
    j["backend"] = bench.backend;
    j["world_size"] = bench.world_size;
    j["measurements"] = static_cast<std::int64_t>(in.points.size());
    j["fit_min_bytes"] = in.min_bytes;
    j["fit_max_bytes"] = in.max_bytes;

    TextTable fits({"level", "points", "latency (us)", "bus bandwidth (GB/s)", "reduce (GB/s)", "fit"});
    TextTable quality({"level", "op", "points", "median error", "max error"});
    io::Json levels = io::Json::array();
    for (const auto& f : in.fit.levels) {
        io::Json l = level_fit_json(in, f);
        add_fit_row(fits, in, f);
        add_level_errors(in, f, quality, l);
        levels.push_back(l);
    }
    j["levels"] = levels;
    TextTable bands({"sizes", "points", "median error", "max error"});
    io::Json band_json;
    band_errors(in, bands, band_json);
    j["bands"] = band_json;

    CalibrationReport r;
    r.text = "shardsim calibrate: " + in.bench_path + " (" + bench.backend + ", " + std::to_string(bench.world_size) +
             " ranks on " + std::to_string(bench.nodes) + " node(s), " + std::string(dtype_name(bench.dtype)) + ", " +
             std::to_string(in.points.size()) + " measurements) -> topology " + in.topology_name + "\n\n" + fits.str() +
             "\nhow well the fitted model predicts the sweep: |predicted - measured| / measured over every size from " +
             format_bytes(in.min_bytes) + " to " + format_bytes(in.max_bytes) + " and both placements\n" + quality.str() +
             "\nper size band (every level and op)\n" + bands.str();
    r.preamble = preamble(in);
    r.json = std::move(j);
    return r;
}

}  // namespace shardsim::report
