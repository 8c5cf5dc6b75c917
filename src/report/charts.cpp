#include "shardsim/report/charts.hpp"

#include <array>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "shardsim/core/format.hpp"
#include "shardsim/plan/collective.hpp"
#include "shardsim/report/summary.hpp"

namespace shardsim::report {

using timeline::MemorySample;
using timeline::OpRecord;

namespace {

constexpr double kLeft = 96, kRight = 24;
constexpr double kPlotW = kChartWidth - kLeft - kRight;
constexpr double kMemTop = 12, kMemH = 190, kAxisH = 24;
constexpr double kLaneH = 18, kLaneGap = 5, kGanttTop = 6;

std::string f1(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", std::isfinite(v) ? v : 0.0);
    return buf;
}

double x_at(double t_max, double t) { return kLeft + (t_max > 0 ? std::clamp(t / t_max, 0.0, 1.0) : 0.0) * kPlotW; }
double x_of(const ChartScales& s, double t) { return x_at(s.t_max, t); }
// Where the compared timeline's time t goes: on its own axis, or on the shared one.
double x_of_other(const ChartScales& s, double t) { return x_at(s.other_t_max > 0 ? s.other_t_max : s.t_max, t); }
// Room above the plot for the compared timeline's own axis labels.
double top_margin(const ChartScales& s) { return s.other_t_max > 0 ? 14 : 0; }

std::vector<double> nice_ticks(double max, int target) {
    if (!(max > 0)) return {0};
    const double raw = max / target;
    const double mag = std::pow(10, std::floor(std::log10(raw)));
    const double r = raw / mag;
    const double step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
    std::vector<double> t;
    for (int i = 0; i * step <= max * (1 + 1e-9); ++i) t.push_back(i * step);
    return t;
}

std::string svg_open(double height, const std::string& role) {
    return "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart-svg\" viewBox=\"0 0 " + f1(kChartWidth) + " " + f1(height) +
           "\" role=\"img\" aria-label=\"" + role + "\">";
}

std::string text(double x, double y, const std::string& s, const char* anchor = "end", const char* cls = "tick") {
    return "<text class=\"" + std::string(cls) + "\" x=\"" + f1(x) + "\" y=\"" + f1(y) + "\" text-anchor=\"" + anchor + "\">" +
           html_escape(s) + "</text>";
}

// Vertical grid lines and seconds along the bottom, from y0 to y1; with a separate axis for the
// compared timeline, its seconds along the top (dashed ticks, in its legend's style).
std::string time_axis(const ChartScales& s, double y0, double y1) {
    std::string o;
    for (double t : nice_ticks(s.t_max, 8)) {
        const double x = x_of(s, t);
        o += "<line class=\"grid\" x1=\"" + f1(x) + "\" y1=\"" + f1(y0) + "\" x2=\"" + f1(x) + "\" y2=\"" + f1(y1) + "\"/>";
        o += text(x, y1 + 15, t == 0 ? "0" : format_seconds(t), "middle");
    }
    if (s.other_t_max > 0) {
        o += "<g class=\"cmp cmp-axis\" data-axis=\"compare\" data-t-max=\"" + format_seconds(s.other_t_max) + "\">";
        for (double t : nice_ticks(s.other_t_max, 8)) {
            const double x = x_of_other(s, t);
            o += "<line class=\"cmp-tick\" x1=\"" + f1(x) + "\" y1=\"" + f1(y0 - 4) + "\" x2=\"" + f1(x) + "\" y2=\"" + f1(y0) + "\"/>";
            o += text(x, y0 - 5, t == 0 ? "0" : format_seconds(t), "middle", "tick cmp-label");
        }
        o += "</g>";
    }
    return o;
}

std::string seconds_range(double a, double b) {
    return format_seconds(a) + " to " + format_seconds(b) + " (" + format_seconds(b - a) + ")";
}

// The top edge of a step function (value i holds from xs[i] to xs[i+1]), forwards.
void step_edge(std::string& d, const std::vector<double>& xs, double x_end, const std::vector<double>& ys) {
    for (std::size_t i = 0; i < xs.size(); ++i) {
        if (i > 0) d += "L" + f1(xs[i]) + " " + f1(ys[i - 1]);
        d += (d.empty() ? "M" : "L") + f1(xs[i]) + " " + f1(ys[i]);
    }
    d += "L" + f1(x_end) + " " + f1(ys.back());
}

std::string op_title(const timeline::RunTimeline& run, const OpRecord& op) {
    std::string t = op_name(run, op) + "\n" + seconds_range(op.t_start, op.t_end);
    if (op.bytes > 0) t += "\n" + format_bytes(op.bytes) + (op.collective >= 0 ? " (collective size)" : "");
    if (op.collective >= 0) {
        const auto k = static_cast<plan::CollectiveKind>(op.collective);
        t += ", " + std::to_string(op.ranks) + " ranks, algbw " + format_fixed(plan::algbw_GBps(op.bytes, op.duration()), 1) +
             " GB/s, busbw " + format_fixed(plan::busbw_GBps(k, op.bytes, op.ranks, op.duration()), 1) + " GB/s";
    }
    if (op.flops > 0) t += "\n" + format_fixed(op.flops / 1e9, 2) + " GFLOP";
    return t;
}

std::string block_title(const timeline::RunTimeline& run, const OpBlock& b) {
    if (b.ops.size() == 1) return op_title(run, *b.ops.front());
    std::map<std::string, int> kinds;
    for (const auto* op : b.ops) ++kinds[plan::op_kind_name(op->kind)];
    std::string t = std::to_string(b.ops.size()) + " ops, each narrower than a pixel, drawn as one block: ";
    bool first = true;
    for (const auto& [k, n] : kinds) t += (first ? "" : ", ") + std::to_string(n) + " " + k, first = false;
    return t + "\n" + seconds_range(b.t0, b.t1) + "\nfirst: " + op_name(run, *b.ops.front()) + "\nlast: " + op_name(run, *b.ops.back());
}

// The kind that takes most of a block's time names its colour.
plan::OpKind block_kind(const OpBlock& b) {
    std::map<plan::OpKind, double> t;
    for (const auto* op : b.ops) t[op->kind] += op->duration();
    auto best = std::max_element(t.begin(), t.end(), [](const auto& a, const auto& c) { return a.second < c.second; });
    return best->second > 0 ? best->first : b.ops.front()->kind;
}

std::vector<const OpRecord*> lane_ops(const timeline::RankTimeline& tl, plan::OpStream lane) {
    std::vector<const OpRecord*> v;
    for (const auto& op : tl.ops)
        if (op.stream == lane) v.push_back(&op);
    std::stable_sort(v.begin(), v.end(), [](const OpRecord* a, const OpRecord* b) { return a->t_start < b->t_start; });
    return v;
}

}  // namespace

double timeline_end(const timeline::RankTimeline& tl) {
    double t = 0;
    for (const auto& op : tl.ops) t = std::max(t, op.t_end);
    for (const auto& m : tl.memory) t = std::max(t, m.t);
    return t;
}

std::string html_escape(const std::string& s) {
    std::string o;
    o.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&': o += "&amp;"; break;
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '"': o += "&quot;"; break;
            case '\'': o += "&#39;"; break;
            default: o += c;
        }
    }
    return o;
}

std::string category_colour(MemCategory c) {
    static const char* colours[kMemCategoryCount] = {"#4e79a7", "#a0cbe8", "#f28e2b", "#ffbe7d", "#59a14f",
                                                     "#e15759", "#b07aa1", "#edc948", "#bab0ac", "#9c755f"};
    return colours[category_index(c)];
}

std::string op_colour(plan::OpKind k) {
    static const std::array<const char*, plan::kOpKindCount> colours = {
        "#4e79a7", "#9c755f", "#bab0ac", "#59a14f", "#8cd17d", "#f28e2b",
        "#e15759", "#b07aa1", "#ff9da7", "#edc948", "#76b7b2", "#d4a6c8"};
    return colours[static_cast<std::size_t>(k)];
}

std::vector<MemorySample> thin_samples(const std::vector<MemorySample>& samples, double t_max, std::size_t max_samples) {
    std::vector<MemorySample> sorted = samples;
    std::stable_sort(sorted.begin(), sorted.end(), [](const MemorySample& a, const MemorySample& b) { return a.t < b.t; });
    if (sorted.size() <= max_samples || max_samples < 4 || !(t_max > 0)) return sorted;
    const std::size_t slices = (max_samples - 1) / 2;
    auto slice = [&](double t) { return std::min(slices - 1, static_cast<std::size_t>(std::max(0.0, t / t_max) * static_cast<double>(slices))); };
    std::vector<MemorySample> out;
    std::size_t i = 0;
    while (i < sorted.size()) {
        const std::size_t k = slice(sorted[i].t);
        std::size_t best = i, j = i;
        for (; j < sorted.size() && slice(sorted[j].t) == k; ++j)
            if (sorted[j].bytes.device_total() > sorted[best].bytes.device_total()) best = j;
        out.push_back(sorted[i]);
        if (best != i) out.push_back(sorted[best]);
        if (j == sorted.size() && j - 1 != best && j - 1 != i) out.push_back(sorted.back());  // the final state
        i = j;
    }
    return out;
}

std::vector<OpBlock> merge_ops(const std::vector<const OpRecord*>& ops, double pixel_s, std::size_t max_ops) {
    double span = 0;
    for (const auto* op : ops) span = std::max(span, op->t_end);
    double px = pixel_s;
    while (true) {
        std::vector<OpBlock> out;
        std::vector<bool> mergeable;
        for (const auto* op : ops) {
            const bool tiny = op->duration() < px;
            if (tiny && !out.empty() && mergeable.back() && op->t_start - out.back().t1 < px) {
                out.back().t1 = std::max(out.back().t1, op->t_end);
                out.back().ops.push_back(op);
            } else {
                out.push_back({op->t_start, op->t_end, {op}});
                mergeable.push_back(tiny);
            }
        }
        if (out.size() <= max_ops || !(px > 0) || px > 2 * span) return out;
        px *= 2;
    }
}

std::string memory_chart(const ChartInput& in, const ChartScales& s, DrawCount& count) {
    const double top = kMemTop + top_margin(s);
    const double height = top + kMemH + kAxisH;
    const bool gib = s.bytes_max >= static_cast<double>(kGiB);
    const double unit = static_cast<double>(gib ? kGiB : kMiB);
    auto y_of = [&](double b) { return top + kMemH - (s.bytes_max > 0 ? std::clamp(b / s.bytes_max, 0.0, 1.0) : 0.0) * kMemH; };
    std::string o = svg_open(height, "memory over the step, stacked by category");
    for (double v : nice_ticks(s.bytes_max / unit, 5)) {
        const double y = y_of(v * unit);
        o += "<line class=\"grid\" x1=\"" + f1(kLeft) + "\" y1=\"" + f1(y) + "\" x2=\"" + f1(kLeft + kPlotW) + "\" y2=\"" + f1(y) + "\"/>";
        o += text(kLeft - 6, y + 4, format_fixed(v, v < 10 && v != std::floor(v) ? 1 : 0) + (gib ? " GiB" : " MiB"));
    }
    o += time_axis(s, top, top + kMemH);

    const auto kept = thin_samples(in.tl->memory, s.t_max, s.max_samples);
    count = {in.tl->memory.size(), kept.size()};
    std::string dot;  // drawn last: nothing (the compared file's line) may cover it
    if (kept.empty()) o += text(kLeft + kPlotW / 2, top + kMemH / 2, "no memory samples recorded", "middle", "empty");
    if (!kept.empty()) {
        std::vector<double> xs, lower(kept.size(), 0.0), upper(kept.size());
        for (const auto& m : kept) xs.push_back(x_of(s, m.t));
        const double x_end = x_of(s, timeline_end(*in.tl));
        const MemorySample* peak = &kept.front();
        for (const auto& m : kept)
            if (m.bytes.device_total() > peak->bytes.device_total()) peak = &m;
        for (MemCategory c : kAllMemCategories) {
            std::int64_t max = 0;
            for (const auto& m : kept) max = std::max(max, m.bytes[c]);
            if (!on_device(c) || max == 0) continue;
            std::vector<double> y_lo, y_hi;
            for (std::size_t i = 0; i < kept.size(); ++i) {
                upper[i] = lower[i] + static_cast<double>(kept[i].bytes[c]);
                y_lo.push_back(y_of(lower[i]));
                y_hi.push_back(y_of(upper[i]));
            }
            std::string d;
            step_edge(d, xs, x_end, y_hi);
            // Back along the bottom edge: the same steps in reverse.
            d += "L" + f1(x_end) + " " + f1(y_lo.back());
            for (std::size_t i = kept.size(); i-- > 0;) {
                d += "L" + f1(xs[i]) + " " + f1(y_lo[i]);
                if (i > 0) d += "L" + f1(xs[i]) + " " + f1(y_lo[i - 1]);
            }
            const std::string name(category_name(c));
            o += "<path class=\"mem\" data-category=\"" + name + "\" fill=\"" + category_colour(c) + "\" d=\"" + d + "Z\"><title>" +
                 html_escape(in.label + ": " + name + ", up to " + format_bytes(max) + "; " +
                             format_bytes(peak->bytes[c]) + " at the peak") + "</title></path>";
            lower = upper;
        }
        // The total as a line over the areas: a spike of no width (a peak inside an op) shows as a
        // vertical stroke, and the peak's dot sits at its top.
        std::vector<double> y_total;
        for (const auto& m : kept) y_total.push_back(y_of(static_cast<double>(m.bytes.device_total())));
        std::string total;
        step_edge(total, xs, x_end, y_total);
        o += "<path class=\"mem-total\" d=\"" + total + "\"><title>" + html_escape(in.label + ": device total") + "</title></path>";
        const double px = x_of(s, peak->t), py = y_of(static_cast<double>(peak->bytes.device_total()));
        dot = "<circle class=\"peak\" cx=\"" + f1(px) + "\" cy=\"" + f1(py) + "\" r=\"4\"><title>" +
              html_escape(in.label + " peak: " + format_bytes(peak->bytes.device_total()) + " at " + format_seconds(peak->t)) +
              "</title></circle>";
    }
    if (in.other && !in.other->memory.empty()) {
        const auto other = thin_samples(in.other->memory, s.t_max, s.max_samples);
        std::vector<double> xs, ys;
        std::int64_t peak = 0;
        for (const auto& m : other) {
            xs.push_back(x_of_other(s, m.t));
            ys.push_back(y_of(static_cast<double>(m.bytes.device_total())));
            peak = std::max(peak, m.bytes.device_total());
        }
        std::string d;
        step_edge(d, xs, x_of_other(s, timeline_end(*in.other)), ys);
        o += "<path class=\"cmp cmp-line\" d=\"" + d + "\"><title>" +
             html_escape(in.other_label + ": device total, peak " + format_bytes(peak)) + "</title></path>";
    }
    if (s.capacity_bytes > 0 && !s.capacity_on_scale) {
        o += text(kLeft + kPlotW - 4, top + 10,
                  "device capacity " + format_bytes(static_cast<std::int64_t>(s.capacity_bytes)) + " is far above this axis",
                  "end", "capacity-off");
    } else if (s.capacity_bytes > 0) {
        const double y = y_of(s.capacity_bytes);
        o += "<line class=\"capacity\" x1=\"" + f1(kLeft) + "\" y1=\"" + f1(y) + "\" x2=\"" + f1(kLeft + kPlotW) + "\" y2=\"" + f1(y) +
             "\"><title>device capacity " + html_escape(format_bytes(static_cast<std::int64_t>(s.capacity_bytes))) + "</title></line>";
        o += text(kLeft + kPlotW - 4, y - 4, "capacity " + format_bytes(static_cast<std::int64_t>(s.capacity_bytes)), "end", "capacity-label");
    }
    return o + dot + "</svg>";
}

std::string gantt_chart(const ChartInput& in, const ChartScales& s, DrawCount& count) {
    const double lanes_h = static_cast<double>(s.lanes.size()) * (kLaneH + kLaneGap);
    const double top = kGanttTop + top_margin(s);
    std::string o = svg_open(top + lanes_h + kAxisH, "ops per stream");
    o += time_axis(s, top, top + lanes_h - kLaneGap);
    count = {};
    auto draw = [&](const timeline::RunTimeline& run, const timeline::RankTimeline& tl, plan::OpStream lane, double y,
                    const std::string& label, bool other) {
        const auto ops = lane_ops(tl, lane);
        const double t_max = other && s.other_t_max > 0 ? s.other_t_max : s.t_max;
        const auto blocks = merge_ops(ops, t_max / kPlotW, s.max_ops);
        if (!other) count.items += ops.size(), count.drawn += blocks.size();
        for (const auto& b : blocks) {
            const double x0 = x_at(t_max, b.t0), w = std::max(0.6, x_at(t_max, b.t1) - x0);
            const std::string title = html_escape("[" + label + "] " + block_title(run, b));
            if (other)
                o += "<rect class=\"op cmp\" x=\"" + f1(x0) + "\" y=\"" + f1(y) + "\" width=\"" + f1(w) + "\" height=\"" + f1(kLaneH) +
                     "\"><title>" + title + "</title></rect>";
            else
                o += "<rect class=\"op\" x=\"" + f1(x0) + "\" y=\"" + f1(y + 2) + "\" width=\"" + f1(w) + "\" height=\"" +
                     f1(kLaneH - 4) + "\" fill=\"" + op_colour(block_kind(b)) + "\"><title>" + title + "</title></rect>";
        }
    };
    for (std::size_t i = 0; i < s.lanes.size(); ++i) {
        const double y = top + static_cast<double>(i) * (kLaneH + kLaneGap);
        o += "<rect class=\"lane\" x=\"" + f1(kLeft) + "\" y=\"" + f1(y) + "\" width=\"" + f1(kPlotW) + "\" height=\"" + f1(kLaneH) + "\"/>";
        o += text(kLeft - 6, y + 13, plan::op_stream_name(s.lanes[i]), "end", "lane-label");
        draw(*in.run, *in.tl, s.lanes[i], y, in.label, false);
        if (in.other) draw(*in.other_run, *in.other, s.lanes[i], y, in.other_label, true);
    }
    return o + "</svg>";
}

}  // namespace shardsim::report
