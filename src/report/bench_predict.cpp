#include "shardsim/report/bench_predict.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "shardsim/core/format.hpp"

namespace shardsim::report {

plan::GroupSpan span_of_ranks(std::int64_t ranks, std::int64_t gpus_per_node) {
    const std::int64_t per_node = std::max<std::int64_t>(1, std::min(ranks, gpus_per_node));
    return {ranks, (ranks + per_node - 1) / per_node, per_node};
}

namespace {

struct Group {
    std::string name;
    plan::GroupSpan span;
};

// The groups `bench` would measure on this topology's whole world ([Note: bench groups]).
std::vector<Group> groups_of(const config::TopologyConfig& t) {
    const std::int64_t world = t.total_gpus();
    std::vector<Group> out;
    if (world > 1) out.push_back({"world", span_of_ranks(world, t.gpus_per_node)});
    if (t.nodes > 1 && t.gpus_per_node > 1) {
        out.push_back({"node", span_of_ranks(t.gpus_per_node, t.gpus_per_node)});
        out.push_back({"replicate", {t.nodes, t.nodes, 1}});
    }
    return out;
}

const config::PublishedBusbw* published(const config::TopologyConfig& t, const Group& g, plan::CollectiveKind k, std::int64_t size) {
    if (g.span.ranks != t.published.ranks) return nullptr;
    for (const auto& p : t.published.points)
        if (p.op == plan::collective_name(k) && p.size_bytes == size) return &p;
    return nullptr;
}

// The sweep's sizes, plus any size the topology cites for this group and op.
std::vector<std::int64_t> sizes_of(const config::TopologyConfig& t, const Group& g, plan::CollectiveKind k, const PredictOptions& o) {
    std::vector<std::int64_t> sizes;
    for (std::int64_t s = o.min_bytes; s <= o.max_bytes; s *= o.factor) sizes.push_back(s);
    if (g.span.ranks == t.published.ranks)
        for (const auto& p : t.published.points)
            if (p.op == plan::collective_name(k) && std::find(sizes.begin(), sizes.end(), p.size_bytes) == sizes.end())
                sizes.push_back(p.size_bytes);
    std::sort(sizes.begin(), sizes.end());
    return sizes;
}

std::string fixed(double v, int digits) { return std::isfinite(v) ? format_fixed(v, digits) : "-"; }

// One group and op: the lines of the table and their JSON.
io::Json section(const config::TopologyConfig& t, const sim::LinkModel& links, const Group& g, plan::CollectiveKind k,
                 const PredictOptions& o, TextTable& table) {
    io::Json lines = io::Json::array();
    for (std::int64_t size : sizes_of(t, g, k, o)) {
        // nccl-tests' out-of-place columns (NCCL's placement costs nothing in the model).
        const sim::CollectiveEstimate e = sim::estimate_collective(links, k, size, g.span, false);
        const double busbw = plan::busbw_GBps(k, size, g.span.ranks, e.time_s);
        const config::PublishedBusbw* p = published(t, g, k, size);
        io::Json j = io::Json::object();
        j["size_bytes"] = size;
        j["time_us"] = e.time_s * 1e6;
        j["algbw_GBps"] = plan::algbw_GBps(size, e.time_s);
        j["busbw_GBps"] = busbw;
        j["algorithm"] = sim::algorithm_name(e.algorithm);
        j["protocol"] = sim::protocol_name(e.protocol);
        if (p) {
            j["published_busbw_GBps"] = p->busbw_gbps;
            j["model_over_published"] = busbw / p->busbw_gbps;
        }
        const std::int64_t count = size / o.element_bytes / (k == plan::CollectiveKind::all_reduce ? 1 : g.span.ranks);
        table.add_row({std::to_string(size), std::to_string(count), fixed(e.time_s * 1e6, 1), fixed(plan::algbw_GBps(size, e.time_s), 2),
                       fixed(busbw, 2), sim::algorithm_name(e.algorithm) + "/" + sim::protocol_name(e.protocol),
                       p ? fixed(p->busbw_gbps, 1) : "", p ? format_fixed(100 * (busbw / p->busbw_gbps - 1), 1) + "%" : ""});
        lines.push_back(j);
    }
    return lines;
}

}  // namespace

PredictReport predicted_bench(const config::TopologyConfig& t, const PredictOptions& o) {
    const sim::LinkModel links = sim::LinkModel::from(t);
    PredictReport r;
    io::Json sections = io::Json::array();
    r.text = "# shardsim bench --predict: the collective model on topology " + t.name + " (" + std::to_string(t.nodes) + " node(s) x " +
             std::to_string(t.gpus_per_node) + ", " + config::link_kind_name(t.intra.kind) +
             (t.nodes > 1 ? " + " + config::link_kind_name(t.inter.kind) : std::string()) + "); nothing was run\n";
    if (!t.published.points.empty())
        r.text += "# published: " + t.published.source + " (" + std::to_string(t.published.ranks) + " ranks)\n";
    for (const auto& g : groups_of(t))
        for (auto k : o.ops) {
            TextTable table({"size", "count", "time", "algbw", "busbw", "algorithm", "published", "model vs"});
            table.add_units({"(B)", "(elements)", "(us)", "(GB/s)", "(GB/s)", "/protocol", "busbw", "published"});
            io::Json s = io::Json::object();
            s["group"] = g.name;
            s["ranks"] = g.span.ranks;
            s["nodes"] = g.span.nodes;
            s["op"] = plan::collective_name(k);
            s["lines"] = section(t, links, g, k, o, table);
            sections.push_back(s);
            r.text += "\n# " + plan::collective_name(k) + ", group " + g.name + ": " + std::to_string(g.span.ranks) + " ranks on " +
                      std::to_string(g.span.nodes) + " node(s)\n" + table.str();
        }
    r.json = io::Json::object();
    r.json["topology"] = t.name;
    r.json["predicted"] = true;
    if (!t.published.points.empty()) {
        r.json["published_source"] = t.published.source;
        r.json["published_ranks"] = t.published.ranks;
    }
    r.json["sections"] = sections;
    return r;
}

}  // namespace shardsim::report
