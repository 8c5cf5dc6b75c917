#include "shardsim/report/summary.hpp"

#include <algorithm>
#include <cmath>

#include "shardsim/core/format.hpp"
#include "shardsim/plan/collective.hpp"

namespace shardsim::report {

using timeline::RankSummary;
using timeline::RunTimeline;

std::string op_name(const RunTimeline& run, const timeline::OpRecord& op) {
    std::string s = plan::op_kind_name(op.kind);
    if (op.unit >= 0 && static_cast<std::size_t>(op.unit) < run.unit_names.size())
        s += " " + run.unit_names[static_cast<std::size_t>(op.unit)];
    else if (op.unit < 0 && op.collective >= 0)
        s += " bucket";
    if (op.micro_batch >= 0) s += " mb" + std::to_string(op.micro_batch);
    if (run.steps > 1) s += " step" + std::to_string(op.step);
    return s;
}

std::string rank_list(const std::vector<std::int64_t>& ranks) {
    std::string out;
    std::size_t i = 0;
    while (i < ranks.size()) {
        std::size_t j = i;
        while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
        if (!out.empty()) out += ",";
        out += std::to_string(ranks[i]);
        if (j > i) out += "-" + std::to_string(ranks[j]);
        i = j + 1;
    }
    return out;
}

namespace {
// Figures that decide whether two ranks print as one row: memory and bytes, not times (measured
// times always differ a little).
bool same_figures(const RankSummary& a, const RankSummary& b) {
    return a.peak_breakdown == b.peak_breakdown && a.max_by_category == b.max_by_category &&
           a.model_state == b.model_state && a.host_peak_bytes == b.host_peak_bytes &&
           a.comm_size_bytes == b.comm_size_bytes;
}
}  // namespace

std::vector<RankGroup> group_ranks(const RunTimeline& run) {
    std::vector<RankSummary> class_summary;
    for (const auto& tl : run.timelines) class_summary.push_back(tl.summarize());
    std::vector<RankGroup> groups;
    for (std::int64_t r = 0; r < run.world_size; ++r) {
        const int c = run.class_of_rank.at(static_cast<std::size_t>(r));
        const RankSummary& s = class_summary[static_cast<std::size_t>(c)];
        auto it = std::find_if(groups.begin(), groups.end(), [&](const RankGroup& g) { return same_figures(g.summary, s); });
        if (it == groups.end()) {
            groups.push_back({{r}, s, &run.timelines[static_cast<std::size_t>(c)]});
        } else {
            it->ranks.push_back(r);
            // Folded rows show the slowest rank's times.
            if (s.step_time > it->summary.step_time) {
                const auto keep = it->ranks;
                *it = {keep, s, &run.timelines[static_cast<std::size_t>(c)]};
            }
        }
    }
    return groups;
}

Exposure worst_exposed(const timeline::RankTimeline& tl) {
    std::vector<std::pair<double, double>> compute;
    for (const auto& op : tl.ops)
        if (op.stream == plan::OpStream::compute && op.collective < 0) compute.push_back({op.t_start, op.t_end});
    const timeline::IntervalCover cover(std::move(compute));
    Exposure worst;
    for (const auto& op : tl.ops) {
        if (op.collective < 0) continue;
        const double e = std::max(0.0, op.t_end - op.t_start) - cover.covered(op.t_start, op.t_end);
        if (e > worst.exposed_s) worst = {op.op_id, e};
    }
    return worst;
}

namespace {

io::Json categories(const MemoryByCategory& m, bool model_states_only = false) {
    io::Json j = io::Json::object();
    for (MemCategory c : kAllMemCategories)
        if (!model_states_only || is_model_state(c)) j[std::string(category_name(c))] = m[c];
    return j;
}

const timeline::OpRecord* find_op(const timeline::RankTimeline& tl, int id) {
    for (const auto& op : tl.ops)
        if (op.op_id == id) return &op;
    return nullptr;
}

io::Json comm_json(const RankSummary& s) {
    io::Json j = io::Json::object();
    for (int k = 0; k < plan::kCollectiveKindCount; ++k) {
        auto it = s.comm_size_bytes.find(k);
        if (it == s.comm_size_bytes.end()) continue;
        const auto kind = static_cast<plan::CollectiveKind>(k);
        const double t = s.comm_kind_time.at(k);
        const std::int64_t n = s.comm_kind_ranks.at(k);
        io::Json e = io::Json::object();
        e["size_bytes"] = it->second;
        e["wire_bytes"] = s.comm_wire_bytes.at(k);
        e["time_s"] = t;
        e["ranks"] = n;
        e["algbw_GBps"] = plan::algbw_GBps(it->second, t);
        e["busbw_GBps"] = plan::busbw_GBps(kind, it->second, n, t);
        j[plan::collective_name(kind)] = e;
    }
    return j;
}

bool fits_device(const RunTimeline& run, const RankSummary& s) { return s.peak_bytes <= run.gpu_memory_bytes; }

std::int64_t host_per_node(const RunTimeline& run, const std::vector<RankGroup>& groups) {
    // Ranks of one node share its host memory: sum them node by node, report the fullest node.
    std::vector<std::int64_t> per_node(static_cast<std::size_t>(ceil_div(run.world_size, std::max<std::int64_t>(1, run.gpus_per_node))), 0);
    for (const auto& g : groups)
        for (auto r : g.ranks) per_node[static_cast<std::size_t>(r / std::max<std::int64_t>(1, run.gpus_per_node))] += host_per_rank(run, g.summary);
    return per_node.empty() ? 0 : *std::max_element(per_node.begin(), per_node.end());
}

std::string host_line(const RunTimeline& run, const std::vector<RankGroup>& groups, const io::Json& js) {
    const double node = static_cast<double>(js.at("host_peak_bytes_per_node").as_int());
    std::int64_t offloaded = 0;
    for (const auto& g : groups) offloaded = std::max(offloaded, g.summary.host_peak_bytes);
    std::string parts = format_gib(static_cast<double>(offloaded), 2) + " offloaded + " + format_gib(static_cast<double>(run.host_process_bytes), 2) +
                        " process";
    if (run.host_pinned_slack_bytes > 0) parts += " + " + format_gib(static_cast<double>(run.host_pinned_slack_bytes), 2) + " pinned rounding";
    if (run.host_is_device) parts += " + the device peak (the device is host memory)";
    const std::int64_t ranks_per_node = std::min(run.world_size, std::max<std::int64_t>(1, run.gpus_per_node));
    std::string line = "host per node                 " + format_gib(node, 2) + " of " + format_gib(static_cast<double>(run.host_memory_bytes), 2) +
                       " GiB (" + std::to_string(ranks_per_node) + " rank(s) x (" + parts + ") GiB)\n";
    if (run.reported_host_bytes > 0) {
        // A published run's figure counts what the offload used, not the process: compare like with like.
        const double used = static_cast<double>(ranks_per_node * offloaded);
        line += "host reported                 " + format_fixed(static_cast<double>(run.reported_host_bytes) / 1e9, 1) +
                " GB used by the published run; predicted offload use " + format_fixed(used / 1e9, 1) + " GB (" +
                format_change(used, static_cast<double>(run.reported_host_bytes)) + ")\n";
    }
    return line;
}

// One verdict for device and host, as --json's "fits" says it.
std::string verdict_line(const RunTimeline& run, const std::vector<RankGroup>& groups, const io::Json& js) {
    std::int64_t fullest = 0;
    for (const auto& g : groups) fullest = std::max(fullest, g.summary.peak_bytes);
    const double device = static_cast<double>(run.gpu_memory_bytes - fullest);
    const double host = static_cast<double>(run.host_memory_bytes - js.at("host_peak_bytes_per_node").as_int());
    std::string d = device >= 0 ? "device " + format_gib(device, 2) + " GiB free on the fullest rank"
                                : "device " + format_gib(-device, 2) + " GiB short on the fullest rank";
    std::string h = run.host_memory_bytes == 0 ? "host not given"
                    : host >= 0                ? "host " + format_gib(host, 2) + " GiB free per node"
                                               : "host " + format_gib(-host, 2) + " GiB short per node";
    return std::string("fits                          ") + (js.at("fits").as_bool() ? "yes" : "NO") + " (" + d + "; " + h + ")\n";
}

}  // namespace

namespace {

double number_attribute(const RunTimeline& run, const std::string& name) {
    const auto it = run.attributes.find(name);
    if (it == run.attributes.end()) return 0;
    try {
        return std::stod(it->second);
    } catch (const std::exception&) {
        return 0;
    }
}

// tokens/s, MFU (model FLOPs by the 6N + attention rule over the step, over the peak) and HFU (the
// FLOPs the rank executed, recompute included, over the step, over the peak); files written
// before these attributes existed get none.
void throughput(const RunTimeline& run, const RankSummary& s, io::Json& j) {
    if (!(s.step_time > 0)) return;
    const double tokens = number_attribute(run, "tokens_per_step");
    const double model = number_attribute(run, "model_flops_per_step");
    const double peak = number_attribute(run, "peak_flops_per_s");
    if (tokens > 0) j["tokens_per_s"] = tokens / s.step_time;
    if (peak > 0 && model > 0) j["mfu"] = model / s.step_time / peak;
    if (peak > 0) j["hfu"] = s.flops / s.step_time / peak;
    if (model > 0) j["model_flops_per_step"] = model;
}

}  // namespace

io::Json summary_json(const RunTimeline& run) {
    const auto groups = group_ranks(run);
    io::Json j = io::Json::object();
    j["mode"] = run.mode;
    j["backend"] = run.backend;
    j["job"] = run.job_name;
    j["world_size"] = run.world_size;
    j["param_count"] = run.param_count;
    j["trainable_param_count"] = run.trainable_param_count;
    j["gpu_memory_bytes"] = run.gpu_memory_bytes;
    j["host_memory_bytes"] = run.host_memory_bytes;
    const std::int64_t host_node = host_per_node(run, groups);
    j["host_peak_bytes_per_node"] = host_node;  // what the node's ranks need: see host_per_rank
    j["host_process_bytes_per_rank"] = run.host_process_bytes;
    j["host_pinned_slack_bytes_per_rank"] = run.host_pinned_slack_bytes;
    if (run.reported_host_bytes > 0) j["reported_host_bytes"] = run.reported_host_bytes;
    const bool host_fits = run.host_memory_bytes == 0 || host_node <= run.host_memory_bytes;
    j["host_fits"] = host_fits;
    bool fits = host_fits;
    double step = 0, compute = 0, comm = 0, exposed = 0;
    const RankSummary* slowest = nullptr;
    io::Json ranks = io::Json::array();
    for (const auto& g : groups) {
        const RankSummary& s = g.summary;
        fits = fits && fits_device(run, s);
        if (!slowest || s.step_time > slowest->step_time) slowest = &g.summary;
        io::Json r = io::Json::object();
        io::Json list = io::Json::array();
        for (auto x : g.ranks) list.push_back(x);
        r["ranks"] = list;
        r["peak_bytes"] = s.peak_bytes;
        if (s.reserved_peak_bytes > 0) {
            r["allocated_peak_bytes"] = s.allocated_peak_bytes;  // torch.cuda.max_memory_allocated
            r["reserved_peak_bytes"] = s.reserved_peak_bytes;    // torch.cuda.max_memory_reserved
        }
        r["peak_by_category"] = categories(s.peak_breakdown);
        r["max_by_category"] = categories(s.max_by_category);
        r["model_state_bytes"] = categories(s.model_state, true);
        r["host_peak_bytes"] = s.host_peak_bytes;
        r["headroom_bytes"] = run.gpu_memory_bytes - s.peak_bytes;
        if (const auto* op = find_op(*g.timeline, s.peak_op)) r["peak_op"] = op_name(run, *op);
        r["step_time_s"] = s.step_time;
        r["compute_time_s"] = s.compute_time;
        r["comm_time_s"] = s.comm_time;
        r["exposed_comm_s"] = s.exposed_comm;
        r["flops"] = s.flops;
        r["comm_bytes_per_rank"] = comm_json(s);
        ranks.push_back(r);
    }
    if (slowest) {
        step = slowest->step_time;
        compute = slowest->compute_time;
        comm = slowest->comm_time;
        exposed = slowest->exposed_comm;
        j["comm_bytes_per_rank"] = comm_json(*slowest);
        j["flops_per_rank"] = slowest->flops;
    }
    j["fits"] = fits;
    j["step_time_s"] = step;
    j["compute_time_s"] = compute;
    j["comm_time_s"] = comm;
    j["exposed_comm_s"] = exposed;
    j["exposed_comm_fraction"] = step > 0 ? exposed / step : 0.0;
    if (slowest) throughput(run, *slowest, j);
    // The worst offender of the rank whose step time is reported (the slowest).
    const RankGroup* slowest_group = nullptr;
    for (const auto& g : groups)
        if (&g.summary == slowest) slowest_group = &g;
    if (slowest_group) {
        const Exposure w = worst_exposed(*slowest_group->timeline);
        if (const auto* op = find_op(*slowest_group->timeline, w.op)) {
            io::Json e = io::Json::object();
            e["op"] = op_name(run, *op);
            e["exposed_s"] = w.exposed_s;
            j["worst_exposed_op"] = e;
        }
    }
    j["ranks"] = ranks;
    return j;
}

std::string throughput_line(const io::Json& js) {
    if (!js.contains("tokens_per_s")) return "";
    std::string out = "  throughput         " + format_fixed(js.at("tokens_per_s").as_number(), 0) + " tokens/s";
    if (js.contains("mfu")) out += ", MFU " + format_fixed(100 * js.at("mfu").as_number(), 1) + "% (model FLOPs: 6N + attention)";
    if (js.contains("hfu")) out += ", HFU " + format_fixed(100 * js.at("hfu").as_number(), 1) + "% (executed, recompute included)";
    return out + "\n";
}

std::string summary_text(const RunTimeline& run) {
    const auto groups = group_ranks(run);
    const io::Json js = summary_json(run);
    std::string out;
    const double cap = static_cast<double>(run.gpu_memory_bytes);

    // One unit for the whole table, the largest that keeps its figures readable.
    std::int64_t largest = run.gpu_memory_bytes;
    for (const auto& g : groups) largest = std::max(largest, g.summary.host_peak_bytes);
    std::int64_t most = 0;
    for (const auto& g : groups) most = std::max({most, g.summary.peak_bytes, g.summary.host_peak_bytes});
    const bool gib = most >= kGiB / 4, mib = !gib && most >= kMiB / 4;
    const double unit = gib ? kGiB : mib ? kMiB : kKiB;
    const std::string unit_name = gib ? "GiB" : mib ? "MiB" : "KiB";
    auto in_unit = [&](double bytes) { return format_fixed(bytes / unit, 2); };
    (void)largest;
    std::vector<std::string> header = {"memory per rank (" + unit_name + ")"};
    for (const auto& g : groups) header.push_back("ranks " + rank_list(g.ranks));
    TextTable mem(header);
    auto row = [&](const std::string& name, auto value) {
        std::vector<std::string> r = {name};
        for (const auto& g : groups) r.push_back(value(g.summary));
        mem.add_row(r);
    };
    for (MemCategory c : kAllMemCategories) {
        if (c == MemCategory::offloaded) continue;
        row("  " + std::string(category_name(c)), [&](const RankSummary& s) { return in_unit(static_cast<double>(s.peak_breakdown[c])); });
    }
    row("peak (device)", [&](const RankSummary& s) { return in_unit(static_cast<double>(s.peak_bytes)); });
    bool allocator = false;
    for (const auto& g : groups) allocator = allocator || g.summary.reserved_peak_bytes > 0;
    if (allocator) {
        row("  allocated", [&](const RankSummary& s) { return in_unit(static_cast<double>(s.allocated_peak_bytes)); });
        row("  reserved", [&](const RankSummary& s) { return in_unit(static_cast<double>(s.reserved_peak_bytes)); });
    }
    row("  at op", [&](const RankSummary& s) {
        for (const auto& g : groups)
            if (&g.summary == &s)
                for (const auto& op : g.timeline->ops)
                    if (op.op_id == s.peak_op) return op_name(run, op);
        return std::string("-");
    });
    row("device capacity", [&](const RankSummary&) { return in_unit(cap); });
    row("device headroom", [&](const RankSummary& s) {
        const double d = cap - static_cast<double>(s.peak_bytes);
        return d >= 0 ? format_gib(d, 2) + " GiB free" : format_gib(-d, 2) + " GiB short";
    });
    row("host (offloaded)", [&](const RankSummary& s) { return in_unit(static_cast<double>(s.host_peak_bytes)); });
    out += mem.str();
    out += host_line(run, groups, js) + verdict_line(run, groups, js);

    const double step = js.at("step_time_s").as_number();
    auto pct = [&](double v) { return step > 0 ? " (" + format_fixed(100 * v / step, 1) + "% of the step)" : std::string(); };
    out += "\ntime per optimizer step" + std::string(groups.size() > 1 ? " (slowest rank)" : "") + "\n";
    out += "  step               " + format_seconds(step) + "\n";
    out += "  compute            " + format_seconds(js.at("compute_time_s").as_number()) + pct(js.at("compute_time_s").as_number()) + "\n";
    out += "  communication      " + format_seconds(js.at("comm_time_s").as_number()) + "\n";
    out += "  exposed comm       " + format_seconds(js.at("exposed_comm_s").as_number()) + pct(js.at("exposed_comm_s").as_number()) + "\n";
    out += throughput_line(js);
    if (js.contains("worst_exposed_op"))
        out += "  most exposed       " + js.at("worst_exposed_op").at("op").as_string() + " (" +
               format_seconds(js.at("worst_exposed_op").at("exposed_s").as_number()) + " not hidden by compute)\n";

    const io::Json& comm = js.at("comm_bytes_per_rank");
    if (comm.size() > 0) {
        out += "\ncollectives per rank per step (size and busbw as nccl-tests defines them)\n";
        TextTable t({"kind", "ranks", "size", "on the wire", "time", "algbw", "busbw"});
        t.add_units({"", "", unit_name, unit_name, "", "GB/s", "GB/s"});
        for (const auto& [name, e] : comm.as_object())
            t.add_row({name, std::to_string(e.at("ranks").as_int()), in_unit(e.at("size_bytes").as_number()),
                       in_unit(e.at("wire_bytes").as_number()), format_seconds(e.at("time_s").as_number()),
                       format_fixed(e.at("algbw_GBps").as_number(), 1), format_fixed(e.at("busbw_GBps").as_number(), 1)});
        out += t.str();
    }
    return out;
}

std::int64_t host_per_rank(const RunTimeline& run, const RankSummary& s) {
    return s.host_peak_bytes + run.host_process_bytes + run.host_pinned_slack_bytes + (run.host_is_device ? s.peak_bytes : 0);
}

}  // namespace shardsim::report
