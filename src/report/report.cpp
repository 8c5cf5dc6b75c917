#include "shardsim/report/report.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "shardsim/config/job.hpp"
#include "shardsim/config/topology.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/io/hdf5.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/report/validate.hpp"

namespace shardsim::report {

using timeline::RankTimeline;
using timeline::RunTimeline;

std::vector<int> recorded_steps(const RunTimeline& run) {
    std::set<int> s;
    for (const auto& tl : run.timelines) {
        for (const auto& op : tl.ops) s.insert(op.step);
        for (const auto& m : tl.memory) s.insert(m.step);
    }
    if (s.empty()) s.insert(0);
    return {s.begin(), s.end()};
}

namespace {

std::string step_list(const std::vector<int>& steps) {
    std::vector<std::int64_t> v(steps.begin(), steps.end());
    return rank_list(v);
}

bool has(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// First and last time of one step of a timeline.
std::pair<double, double> step_span(const RankTimeline& tl, int step) {
    double lo = INFINITY, hi = -INFINITY;
    for (const auto& op : tl.ops)
        if (op.step == step) lo = std::min(lo, op.t_start), hi = std::max(hi, op.t_end);
    for (const auto& m : tl.memory)
        if (m.step == step) lo = std::min(lo, m.t), hi = std::max(hi, m.t);
    if (lo > hi) return {0, 0};
    return {lo, hi};
}

}  // namespace

RunTimeline select_step(const RunTimeline& run, int step) {
    const auto steps = recorded_steps(run);
    const int s = step < 0 ? steps.back() : step;
    if (!has(steps, s))
        throw InputError("step " + std::to_string(s) + " is not in the file: it recorded step(s) " + step_list(steps));
    RunTimeline out = run;
    if (steps.size() == 1) return out;
    out.steps = 1;  // names no longer need the step: the report says which one it shows
    for (auto& tl : out.timelines) tl = step_of(tl, s);  // validate's cut, so both read a step alike
    return out;
}

std::vector<double> step_offsets(const RankTimeline& tl, const std::vector<int>& steps) {
    std::vector<std::pair<double, double>> spans;
    for (int s : steps) spans.push_back(step_span(tl, s));
    bool one_clock = true;
    for (std::size_t i = 1; i < spans.size(); ++i)
        if (spans[i].first < spans[i - 1].second - 1e-9) one_clock = false;
    std::vector<double> offsets(steps.size(), 0.0);
    if (one_clock) return offsets;
    double end = 0;
    for (std::size_t i = 0; i < spans.size(); ++i) {
        offsets[i] = end - spans[i].first;
        end += spans[i].second - spans[i].first;
    }
    return offsets;
}

void require_complete(const RunTimeline& run, const std::string& path, bool allow_incomplete) {
    if (run.complete || allow_incomplete) return;
    const auto steps = recorded_steps(run);
    const bool none = run.timelines.empty() || (run.timelines.front().ops.empty() && run.timelines.front().memory.empty());
    throw InputError(path + ": incomplete timeline file (" + run.completion + "): it holds " +
                     (none ? std::string("no step") : "step(s) " + step_list(steps)) +
                     " (allowed: the file of a run that finished, or --allow-incomplete to read what it holds)");
}

RunTimeline read_timeline_file(const std::string& path, bool allow_incomplete) {
    std::error_code ec;
    const std::string partial = path + ".partial";
    if (!std::filesystem::exists(path, ec) && std::filesystem::exists(partial, ec))
        throw InputError(path + ": no such file, but " + partial +
                         " is there: the file of a run that did not finish (allowed: " + partial +
                         " with --allow-incomplete, to read the steps it holds)");
    RunTimeline run = io::read_run_file(path);
    require_complete(run, path, allow_incomplete);
    return run;
}

LoadedRun load_run(const std::string& path, int step, bool fallback_to_last, bool allow_incomplete) {
    LoadedRun lr;
    lr.path = path;
    lr.full = read_timeline_file(path, allow_incomplete);
    lr.steps = recorded_steps(lr.full);
    if (step >= 0 && !has(lr.steps, step) && fallback_to_last) step = -1;
    lr.step = step < 0 ? lr.steps.back() : step;
    try {
        lr.run = select_step(lr.full, lr.step);
    } catch (const InputError& e) {
        throw InputError(path + ": " + e.problems().front());
    }
    return lr;
}

std::string source_label(const RunTimeline& run) { return run.mode == "run" ? "measured" : "simulated"; }

ComputePeak compute_peak(const RunTimeline& run) {
    ComputePeak p;
    auto text = [&](const char* effective, const std::string& original) {
        auto it = run.attributes.find(effective);
        return it != run.attributes.end() && !it->second.empty() ? it->second : original;
    };
    const std::string topo = text("effective_topology", run.topology_text);
    const std::string job = text("effective_job", run.job_text);
    if (topo.empty()) {
        p.why_unknown = "the file stores no topology";
        return p;
    }
    try {
        const config::TopologyConfig t = config::load_topology_text("topology attribute", topo, {});
        // The plan computes in the job's parameter dtype (plan::Precision::params).
        const DType d = job.empty() ? DType::fp32 : config::load_job_text("job attribute", job, ".", {}).params;
        p.dtype = std::string(dtype_name(d));
        p.device = t.gpu.name;
        p.flops_per_s = t.gpu.peak_tflops(d) * 1e12;
        p.known = p.flops_per_s > 0;
        if (!p.known) p.why_unknown = "the topology gives no " + p.dtype + " peak";
    } catch (const Error& e) {
        p.why_unknown = std::string("the stored configuration does not parse: ") + e.what();
    }
    return p;
}

std::string format_si(double v, const std::string& unit) {
    static const char* prefixes[] = {"", "K", "M", "G", "T", "P", "E"};
    int i = 0;
    while (std::fabs(v) >= 1000 && i < 6) v /= 1000, ++i;
    return format_fixed(v, std::fabs(v) < 10 ? 2 : std::fabs(v) < 100 ? 1 : 0) + " " + prefixes[i] + unit;
}

const timeline::MemorySample* peak_sample(const RankTimeline& tl) {
    const timeline::MemorySample* best = nullptr;
    for (const auto& m : tl.memory)
        if (!best || m.bytes.device_total() > best->bytes.device_total()) best = &m;
    return best;
}

namespace {

const timeline::OpRecord* find_op(const RankTimeline& tl, int id) {
    for (const auto& op : tl.ops)
        if (op.op_id == id) return &op;
    return nullptr;
}

std::string unit_name(const RunTimeline& run, const timeline::OpRecord& op) {
    if (op.unit >= 0 && static_cast<std::size_t>(op.unit) < run.unit_names.size())
        return run.unit_names[static_cast<std::size_t>(op.unit)];
    return op.collective >= 0 ? "bucket" : "";
}

double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

io::Json one_report(const LoadedRun& lr) {
    const RunTimeline& run = lr.run;
    const io::Json summary = summary_json(run);
    const ComputePeak peak = compute_peak(run);
    io::Json j = io::Json::object();
    j["file"] = lr.path;
    j["source"] = source_label(run);
    j["complete"] = lr.full.complete;
    j["completion"] = lr.full.completion;
    j["step"] = lr.step;
    io::Json steps = io::Json::array();
    for (int s : lr.steps) steps.push_back(s);
    j["steps_in_file"] = steps;
    for (const auto& [k, v] : summary.as_object())
        if (k != "ranks") j[k] = v;
    io::Json cp = io::Json::object();
    cp["known"] = peak.known;
    cp["dtype"] = peak.dtype;
    cp["device"] = peak.device;
    cp["peak_tflops"] = peak.flops_per_s / 1e12;
    if (!peak.known) cp["why_unknown"] = peak.why_unknown;
    j["compute_peak"] = cp;

    const auto groups = group_ranks(run);
    const io::Json& in = summary.at("ranks");
    io::Json ranks = io::Json::array();
    for (std::size_t i = 0; i < groups.size(); ++i) {
        const RankGroup& g = groups[i];
        const timeline::RankSummary& s = g.summary;
        io::Json r = in[i];
        if (const auto* m = peak_sample(*g.timeline)) {
            if (const auto* op = find_op(*g.timeline, m->op_id)) {
                r["peak_unit"] = unit_name(run, *op);
                r["peak_kind"] = plan::op_kind_name(op->kind);
            } else {
                r["peak_op"] = "before the first op";
            }
            r["peak_t_s"] = m->t;
            r["peak_at_fraction"] = ratio(m->t, s.step_time);
        }
        r["copy_time_s"] = s.copy_time;
        r["host_time_s"] = s.host_time;
        r["achieved_tflops"] = ratio(s.flops, s.compute_time) / 1e12;
        if (peak.known) {
            r["compute_utilisation"] = ratio(s.flops, s.compute_time * peak.flops_per_s);
            r["model_flops_utilisation"] = ratio(s.flops, s.step_time * peak.flops_per_s);
        }
        ranks.push_back(r);
    }
    j["ranks"] = ranks;
    return j;
}

std::string percent(double f) { return format_fixed(100 * f, 1) + "%"; }

std::string group_table(const io::Json& j) {
    const auto& ranks = j.at("ranks").as_array();
    std::vector<std::string> header = {"per rank group"};
    std::set<std::string> kinds;
    for (const auto& r : ranks) {
        std::vector<std::int64_t> list;
        for (const auto& x : r.at("ranks").as_array()) list.push_back(x.as_int());
        header.push_back("ranks " + rank_list(list));
        for (const auto& [k, v] : r.at("comm_bytes_per_rank").as_object()) kinds.insert(k);
    }
    TextTable t(header);
    auto row = [&](const std::string& name, auto cell) {
        std::vector<std::string> cells = {name};
        for (const auto& r : ranks) cells.push_back(cell(r));
        t.add_row(cells);
    };
    auto secs = [](const char* key) { return [key](const io::Json& r) { return format_seconds(r.at(key).as_number()); }; };
    row("step time", secs("step_time_s"));
    row("  compute", secs("compute_time_s"));
    row("  communication", secs("comm_time_s"));
    row("  exposed comm", secs("exposed_comm_s"));
    row("peak memory", [](const io::Json& r) { return format_bytes(r.at("peak_bytes").as_int()); });
    row("  at op", [](const io::Json& r) { return r.contains("peak_op") ? r.at("peak_op").as_string() : "-"; });
    row("  in unit", [](const io::Json& r) {
        return r.contains("peak_unit") && !r.at("peak_unit").as_string().empty() ? r.at("peak_unit").as_string() : "-";
    });
    row("  at time", [](const io::Json& r) {
        if (!r.contains("peak_t_s")) return std::string("-");
        return format_seconds(r.at("peak_t_s").as_number()) + " (" + percent(r.at("peak_at_fraction").as_number()) + " into the step)";
    });
    row("GEMM FLOPs", [](const io::Json& r) { return format_si(r.at("flops").as_number(), "FLOP"); });
    row("achieved (while computing)", [](const io::Json& r) { return format_si(r.at("achieved_tflops").as_number() * 1e12, "FLOP/s"); });
    row("compute utilisation", [](const io::Json& r) {
        return r.contains("compute_utilisation") ? percent(r.at("compute_utilisation").as_number()) : std::string("unknown");
    });
    row("  over the whole step", [](const io::Json& r) {
        return r.contains("model_flops_utilisation") ? percent(r.at("model_flops_utilisation").as_number()) : std::string("unknown");
    });
    for (const auto& k : kinds) {
        row(k + " size", [&](const io::Json& r) {
            const auto& c = r.at("comm_bytes_per_rank");
            return c.contains(k) ? format_bytes(c.at(k).at("size_bytes").as_int()) : std::string("-");
        });
        row("  algbw / busbw", [&](const io::Json& r) {
            const auto& c = r.at("comm_bytes_per_rank");
            if (!c.contains(k)) return std::string("-");
            return format_fixed(c.at(k).at("algbw_GBps").as_number(), 1) + " / " +
                   format_fixed(c.at(k).at("busbw_GBps").as_number(), 1) + " GB/s";
        });
    }
    return t.str();
}

std::string headline(const io::Json& j) {
    std::string s = j.at("file").as_string() + ": " + j.at("source").as_string() + " (mode " + j.at("mode").as_string() +
                    ", backend " + j.at("backend").as_string() + "), job " + j.at("job").as_string() + ", " +
                    std::to_string(j.at("world_size").as_int()) + " rank(s)";
    if (!j.at("complete").as_bool()) s += "\nINCOMPLETE: " + j.at("completion").as_string();
    const auto& steps = j.at("steps_in_file").as_array();
    if (steps.size() > 1) {
        std::vector<int> v;
        for (const auto& x : steps) v.push_back(static_cast<int>(x.as_int()));
        s += "; showing step " + std::to_string(j.at("step").as_int()) + " of steps " + step_list(v) +
             (j.at("step").as_int() == v.back() ? " (the last; --step picks another)" : "");
    }
    const auto& cp = j.at("compute_peak");
    s += "\ncompute peak: " + (cp.at("known").as_bool()
                                   ? format_si(cp.at("peak_tflops").as_number() * 1e12, "FLOP/s") + " dense " +
                                         cp.at("dtype").as_string() + " on " + cp.at("device").as_string()
                                   : "unknown (" + cp.at("why_unknown").as_string() + ")");
    return s + "\n";
}

std::int64_t max_peak(const io::Json& j) {
    std::int64_t m = 0;
    for (const auto& r : j.at("ranks").as_array()) m = std::max(m, r.at("peak_bytes").as_int());
    return m;
}

std::string side_by_side(const io::Json& a, const io::Json& b) {
    std::string la = a.at("source").as_string(), lb = b.at("source").as_string();
    if (la == lb) {
        la = std::filesystem::path(a.at("file").as_string()).filename().string();
        lb = std::filesystem::path(b.at("file").as_string()).filename().string() + " (compare)";
    }
    TextTable t({"side by side", la, lb, "difference"});
    auto add = [&](const std::string& name, double x, double y, auto fmt) {
        t.add_row({name, fmt(x), fmt(y), format_change(x, y)});
    };
    auto bytes = [](double v) { return format_bytes(static_cast<std::int64_t>(v)); };
    add("peak memory (fullest rank)", static_cast<double>(max_peak(a)), static_cast<double>(max_peak(b)), bytes);
    const std::pair<const char*, const char*> times[] = {
        {"step time", "step_time_s"}, {"compute", "compute_time_s"}, {"communication", "comm_time_s"}, {"exposed comm", "exposed_comm_s"}};
    for (const auto& [name, key] : times) add(name, a.at(key).as_number(), b.at(key).as_number(), format_seconds);
    const auto& ca = a.at("comm_bytes_per_rank");
    const auto& cb = b.at("comm_bytes_per_rank");
    for (const auto& [kind, e] : ca.as_object()) {
        if (!cb.contains(kind)) continue;
        add(kind + " size", e.at("size_bytes").as_number(), cb.at(kind).at("size_bytes").as_number(), bytes);
        add(kind + " busbw GB/s", e.at("busbw_GBps").as_number(), cb.at(kind).at("busbw_GBps").as_number(),
            [](double v) { return format_fixed(v, 1); });
    }
    return t.str();
}

}  // namespace

io::Json report_json(const LoadedRun& run, const LoadedRun* compare) {
    io::Json j = one_report(run);
    if (compare) j["compare"] = one_report(*compare);
    return j;
}

std::string report_text(const LoadedRun& run, const LoadedRun* compare) {
    const io::Json j = report_json(run, compare);
    std::string out = headline(j) + "\n" + summary_text(run.run) + "\n" + group_table(j);
    if (compare) {
        const io::Json& c = j.at("compare");
        out += "\ncompared with " + headline(c) + "\n" + side_by_side(j, c);
        out += "(times of the slowest rank; difference relative to the compared file; `shardsim validate` "
               "checks a prediction against a measurement op by op)\n";
    }
    return out;
}

}  // namespace shardsim::report
