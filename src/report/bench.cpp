#include "shardsim/report/bench.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "shardsim/core/format.hpp"
#include "shardsim/core/stats.hpp"

namespace shardsim::report {

namespace {

using bench::BenchGroup;
using bench::BenchRow;
using bench::BenchRun;

io::Json number_or_null(double v) { return std::isfinite(v) ? io::Json(v) : io::Json(); }

io::Json placement(const BenchRow& r, const BenchGroup& g) {
    const double busbw = plan::busbw_GBps(r.kind, r.size_bytes, g.span.ranks, r.time_s);
    io::Json j = io::Json::object();
    j["time_us"] = r.time_s * 1e6;
    j["algbw_GBps"] = plan::algbw_GBps(r.size_bytes, r.time_s);
    j["busbw_GBps"] = busbw;
    j["wrong"] = r.wrong;
    const bool raw = std::isfinite(r.raw_time_s);
    const double raw_busbw = raw ? plan::busbw_GBps(r.kind, r.size_bytes, g.span.ranks, r.raw_time_s) : NAN;
    j["raw_time_us"] = number_or_null(r.raw_time_s * 1e6);
    j["raw_busbw_GBps"] = number_or_null(raw_busbw);
    j["ours_over_raw"] = number_or_null(raw && raw_busbw > 0 ? busbw / raw_busbw : NAN);
    return j;
}

// One section per group and op, in the order the sweep ran them.
io::Json sections_json(const BenchRun& run) {
    std::vector<std::pair<int, plan::CollectiveKind>> order;
    std::map<std::pair<int, int>, std::vector<const BenchRow*>> rows;
    for (const auto& r : run.rows) {
        const auto key = std::make_pair(r.group, static_cast<int>(r.kind));
        if (!rows.count(key)) order.push_back({r.group, r.kind});
        rows[key].push_back(&r);
    }
    io::Json sections = io::Json::array();
    for (const auto& [group, kind] : order) {
        const BenchGroup& g = run.groups.at(static_cast<std::size_t>(group));
        const auto& list = rows[{group, static_cast<int>(kind)}];
        std::int64_t largest = 0;
        for (const auto* r : list) largest = std::max(largest, r->size_bytes);
        const std::int64_t large_from = std::min(largest, kBenchLargeBytes);
        std::map<std::int64_t, io::Json> by_size;  // size -> line
        std::vector<std::int64_t> sizes;
        std::vector<double> large_ratios, busbws;
        std::int64_t wrong = 0;
        for (const auto* r : list) {
            if (!by_size.count(r->size_bytes)) {
                sizes.push_back(r->size_bytes);
                io::Json line = io::Json::object();
                line["size_bytes"] = r->size_bytes;
                line["count"] = r->count;
                line["type"] = std::string(dtype_name(run.dtype));
                by_size[r->size_bytes] = line;
            }
            io::Json p = placement(*r, g);
            wrong += r->wrong;
            busbws.push_back(p.at("busbw_GBps").as_number());
            if (r->size_bytes >= large_from && p.at("ours_over_raw").is_number())
                large_ratios.push_back(p.at("ours_over_raw").as_number());
            by_size[r->size_bytes][r->in_place ? "in_place" : "out_of_place"] = p;
        }
        io::Json s = io::Json::object();
        s["group"] = g.name;
        s["ranks"] = g.span.ranks;
        s["nodes"] = g.span.nodes;
        s["per_node"] = g.span.per_node;
        s["instances"] = g.instances;
        s["op"] = plan::collective_name(kind);
        io::Json lines = io::Json::array();
        for (auto size : sizes) lines.push_back(by_size[size]);
        s["rows"] = lines;
        s["wrong"] = wrong;
        double sum = 0;
        for (double b : busbws) sum += b;
        s["avg_busbw_GBps"] = busbws.empty() ? 0.0 : sum / static_cast<double>(busbws.size());
        s["large_from_bytes"] = large_from;
        s["ours_over_raw_large_min"] = number_or_null(large_ratios.empty() ? NAN : *std::min_element(large_ratios.begin(), large_ratios.end()));
        s["ours_over_raw_large_median"] = number_or_null(median(large_ratios));
        sections.push_back(s);
    }
    return sections;
}

// Column widths of the fixed-width lines: size, count, type, then per placement time, algbw,
// busbw, #wrong, raw busbw, ours/raw.
constexpr int kSize = 13, kCount = 12, kType = 6;
constexpr int kPlacement[] = {12, 8, 8, 7, 11, 9};
constexpr int kPlacementWidth = 12 + 8 + 8 + 7 + 11 + 9;

std::string cell(const io::Json& v, int width, int precision) {
    char buf[64];
    if (!v.is_number())
        std::snprintf(buf, sizeof buf, "%*s", width, "-");
    else if (precision < 0)
        std::snprintf(buf, sizeof buf, "%*lld", width, static_cast<long long>(v.as_int()));
    else
        std::snprintf(buf, sizeof buf, "%*.*f", width, precision, v.as_number());
    return buf;
}

std::string padded(const std::string& s, int width) {
    return std::string(static_cast<std::size_t>(std::max(0, width - static_cast<int>(s.size()))), ' ') + s;
}

// A header line: right-aligned labels in the data columns, '#' in the first position.
std::string header(const std::vector<std::string>& first, const std::vector<std::string>& per_placement) {
    std::string h = padded(first[0], kSize) + padded(first[1], kCount) + "  " + first[2] + std::string(kType - 2 - first[2].size(), ' ');
    for (int p = 0; p < 2; ++p)
        for (std::size_t i = 0; i < per_placement.size(); ++i) h += padded(per_placement[i], kPlacement[i]);
    h[0] = '#';
    return h + "\n";
}

std::string placement_cells(const io::Json& line, const char* which) {
    if (!line.contains(which)) return std::string(kPlacementWidth, ' ');
    const io::Json& p = line.at(which);
    return cell(p.at("time_us"), kPlacement[0], 2) + cell(p.at("algbw_GBps"), kPlacement[1], 2) +
           cell(p.at("busbw_GBps"), kPlacement[2], 2) + cell(p.at("wrong"), kPlacement[3], -1) +
           cell(p.at("raw_busbw_GBps"), kPlacement[4], 2) + cell(p.at("ours_over_raw"), kPlacement[5], 3);
}

// "  ---- label ----", exactly `width` characters.
std::string centred(const std::string& s, int width) {
    const int dashes = std::max(2, width - 4 - static_cast<int>(s.size()));
    return "  " + std::string(static_cast<std::size_t>(dashes / 2), '-') + " " + s + " " +
           std::string(static_cast<std::size_t>(dashes - dashes / 2), '-');
}

std::string section_text(const io::Json& s, const std::string& raw_library) {
    const std::int64_t instances = s.at("instances").as_int();
    std::string out = "#\n# " + s.at("op").as_string() + " on group " + s.at("group").as_string() + ": " +
                      std::to_string(s.at("ranks").as_int()) + " ranks on " + std::to_string(s.at("nodes").as_int()) +
                      " node(s)" + (instances > 1 ? ", " + std::to_string(instances) + " groups at once" : "") + "\n";
    out += "#" + std::string(kSize + kCount + kType - 1, ' ') + centred("out-of-place", kPlacementWidth) +
           centred("in-place", kPlacementWidth) + "\n";
    out += header({"size", "count", "type"}, {"time", "algbw", "busbw", "#wrong", "raw busbw", "ours/raw"});
    out += header({"(B)", "(elements)", ""}, {"(us)", "(GB/s)", "(GB/s)", "", "(GB/s)", ""});
    for (const auto& line : s.at("rows").as_array()) {
        char head[64];
        std::snprintf(head, sizeof head, "%*lld%*lld  %-*s", kSize, static_cast<long long>(line.at("size_bytes").as_int()), kCount,
                      static_cast<long long>(line.at("count").as_int()), kType - 2, line.at("type").as_string().c_str());
        out += head + placement_cells(line, "out_of_place") + placement_cells(line, "in_place") + "\n";
    }
    const std::int64_t wrong = s.at("wrong").as_int();
    out += "# " + s.at("op").as_string() + " on " + s.at("group").as_string() + ": #wrong " + std::to_string(wrong) +
           (wrong == 0 ? " (PASS)" : " (FAIL)") + ", avg busbw " + format_fixed(s.at("avg_busbw_GBps").as_number(), 2) + " GB/s";
    if (s.at("ours_over_raw_large_min").is_number())
        out += ", ours/raw " + raw_library + " at sizes >= " + format_bytes(s.at("large_from_bytes").as_int()) + ": min " +
               format_fixed(s.at("ours_over_raw_large_min").as_number(), 3) + ", median " +
               format_fixed(s.at("ours_over_raw_large_median").as_number(), 3);
    else
        out += ", no raw " + raw_library + " call to compare with";
    return out + "\n";
}

}  // namespace

BenchReport bench_report(const BenchRun& run) {
    BenchReport r;
    io::Json j = io::Json::object();
    j["backend"] = run.backend;
    j["raw_library"] = run.raw_library;
    j["dtype"] = std::string(dtype_name(run.dtype));
    j["world_size"] = run.world_size;
    j["nodes"] = run.nodes;
    j["ranks_per_node"] = run.ranks_per_node;
    j["iters"] = run.iters;
    j["warmup"] = run.warmup;
    j["sections"] = sections_json(run);
    const std::int64_t wrong = run.wrong_total();
    double worst = NAN;
    for (const auto& s : j.at("sections").as_array())
        if (s.at("ours_over_raw_large_min").is_number())
            worst = std::isnan(worst) ? s.at("ours_over_raw_large_min").as_number() : std::min(worst, s.at("ours_over_raw_large_min").as_number());
    j["wrong_total"] = wrong;
    j["ours_over_raw_large_min"] = number_or_null(worst);
    j["efficiency_target"] = kBenchEfficiencyTarget;
    j["passed"] = wrong == 0;
    r.passed = wrong == 0;

    std::string& t = r.text;
    t = "# shardsim bench: " + run.backend + " backend, " + std::to_string(run.world_size) + " ranks on " +
        std::to_string(run.nodes) + " node(s), " + std::string(dtype_name(run.dtype)) + ", " + std::to_string(run.iters) +
        " timed iterations after " + std::to_string(run.warmup) + " warm-up\n";
    t += "# size and busbw as nccl-tests defines them; time: mean over ranks; raw busbw: the same call made directly on " +
         run.raw_library + "\n";
    for (const auto& s : j.at("sections").as_array()) t += section_text(s, run.raw_library);
    t += "#\n# " + std::string(r.passed ? "PASS" : "FAIL") + ": " + std::to_string(wrong) +
         " wrong element(s) over every size, op, group and placement (every element checked)\n";
    if (std::isfinite(worst))
        t += "# wrappers vs raw " + run.raw_library + " at large sizes: worst ours/raw " + format_fixed(worst, 3) +
             (worst >= kBenchEfficiencyTarget ? " (>= " : " (BELOW ") + format_fixed(kBenchEfficiencyTarget, 2) + ")\n";
    r.json = std::move(j);
    return r;
}

}  // namespace shardsim::report
