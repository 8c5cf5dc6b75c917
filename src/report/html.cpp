#include "shardsim/report/html.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "shardsim/core/format.hpp"
#include "shardsim/report/charts.hpp"
#include "shardsim/report/summary.hpp"

namespace shardsim::report {

using timeline::RankTimeline;
using timeline::RunTimeline;

namespace {

// One rank panel: the ranks it stands for and the timelines drawn.
struct Panel {
    std::vector<std::int64_t> ranks;
    std::int64_t drawn_rank = 0;
    const RankTimeline* tl = nullptr;
    const RankTimeline* other = nullptr;  // from the --compare file, when it has that rank
    std::string how;
};

constexpr double kCapacityOnScale = 0.2;  // draw the capacity line when the peak reaches 20% of it

std::int64_t rank_count(const RunTimeline& run) {
    return std::min<std::int64_t>(run.world_size, static_cast<std::int64_t>(run.class_of_rank.size()));
}

std::vector<Panel> make_panels(const RunTimeline& a, const RunTimeline* b, std::size_t max_panels, std::string& note) {
    auto other = [&](std::int64_t r) -> const RankTimeline* { return b && r < rank_count(*b) ? &b->rank(r) : nullptr; };
    std::vector<Panel> panels;
    std::map<std::pair<const RankTimeline*, const RankTimeline*>, std::size_t> index;
    for (std::int64_t r = 0; r < rank_count(a); ++r) {
        const auto key = std::make_pair(&a.rank(r), other(r));
        auto it = index.find(key);
        if (it == index.end()) {
            index[key] = panels.size();
            panels.push_back({{r}, r, key.first, key.second, ""});
        } else {
            panels[it->second].ranks.push_back(r);
        }
    }
    for (auto& p : panels)
        if (p.ranks.size() > 1) p.how = b ? "identical timelines in both files" : "one shared timeline";
    if (panels.size() <= max_panels) return panels;

    note = std::to_string(panels.size()) + " distinct timelines: ranks with the same memory figures are folded into one "
           "panel that draws its slowest rank";
    panels.clear();
    for (const auto& g : group_ranks(a)) {
        std::int64_t drawn = g.ranks.front();
        for (auto r : g.ranks)
            if (&a.rank(r) == g.timeline) drawn = r;
        panels.push_back({g.ranks, drawn, g.timeline, other(drawn),
                          g.ranks.size() > 1 ? "same memory figures; rank " + std::to_string(drawn) + " drawn (the slowest)" : ""});
    }
    if (panels.size() > max_panels) {
        note += "; the first " + std::to_string(max_panels) + " of " + std::to_string(panels.size()) +
                " groups are drawn, the others are in the tables below and in the Chrome trace";
        panels.resize(max_panels);
    }
    return panels;
}

ChartScales make_scales(const RunTimeline& a, const RunTimeline* b, const std::vector<Panel>& panels, const HtmlOptions& opt) {
    ChartScales s;
    const double capacity = static_cast<double>(a.gpu_memory_bytes);
    double bytes = 0, t_main = 0, t_other = 0;
    bool used[plan::kOpStreamCount] = {};
    for (const auto& p : panels)
        for (const RankTimeline* tl : {p.tl, p.other}) {
            if (!tl) continue;
            (tl == p.tl ? t_main : t_other) = std::max(tl == p.tl ? t_main : t_other, timeline_end(*tl));
            for (const auto& m : tl->memory) bytes = std::max(bytes, static_cast<double>(m.bytes.device_total()));
            for (const auto& op : tl->ops) used[static_cast<int>(op.stream)] = true;
        }
    // Steps of very different lengths (a measured CPU run against its GPU prediction) each get an
    // axis of their own; one shared axis would squeeze the shorter into its first pixels.
    const bool own_axis = t_main > 0 && t_other > 0 && std::max(t_main, t_other) > kOwnAxisRatio * std::min(t_main, t_other);
    s.t_max = own_axis ? t_main : std::max(t_main, t_other);
    if (own_axis) s.other_t_max = t_other;
    for (int i = 0; i < plan::kOpStreamCount; ++i)
        if (used[i]) s.lanes.push_back(static_cast<plan::OpStream>(i));
    if (s.lanes.empty()) s.lanes.push_back(plan::OpStream::compute);
    if (!(s.t_max > 0)) s.t_max = 1e-3;
    // A run that fills a sliver of the device (a tiny CPU job) would be a flat line under the
    // capacity; its axis ends at its own peak and the chart names the capacity instead.
    s.capacity_bytes = capacity;
    s.capacity_on_scale = bytes >= kCapacityOnScale * capacity;
    s.bytes_max = std::max(bytes, s.capacity_on_scale ? capacity : 0.0) * 1.06;
    if (!(s.bytes_max > 0)) s.bytes_max = static_cast<double>(kGiB);
    s.max_samples = opt.max_samples;
    const std::size_t files = b ? 2 : 1;
    s.max_ops = std::min(opt.max_ops, std::max<std::size_t>(100, opt.max_page_ops / (panels.size() * s.lanes.size() * files)));
    return s;
}

std::string label_of(const LoadedRun& lr, const LoadedRun* other) {
    std::string l = source_label(lr.full);
    if (other && source_label(other->full) == l) l += " " + std::filesystem::path(lr.path).filename().string();
    return l;
}

std::string card(const std::string& title, const std::string& value, const std::string& sub) {
    return "<div class=\"card\"><div class=\"card-title\">" + html_escape(title) + "</div><div class=\"card-value\">" +
           html_escape(value) + "</div><div class=\"card-sub\">" + html_escape(sub) + "</div></div>";
}

std::int64_t max_peak(const io::Json& j) {
    std::int64_t m = 0;
    for (const auto& r : j.at("ranks").as_array()) m = std::max(m, r.at("peak_bytes").as_int());
    return m;
}

std::string utilisation(const io::Json& j) {
    double lo = 2, hi = -1;
    for (const auto& r : j.at("ranks").as_array())
        if (r.contains("compute_utilisation")) {
            lo = std::min(lo, r.at("compute_utilisation").as_number());
            hi = std::max(hi, r.at("compute_utilisation").as_number());
        }
    if (hi < 0) return "unknown";
    const std::string h = format_fixed(100 * hi, 1) + "%";
    return hi - lo > 0.0005 ? format_fixed(100 * lo, 1) + "% to " + h : h;
}

std::string cards(const io::Json& j, const io::Json* c, const std::string& other_label) {
    auto vs = [&](const std::string& v) { return c ? other_label + ": " + v : std::string(); };
    const double cap = static_cast<double>(j.at("gpu_memory_bytes").as_int());
    const std::int64_t peak = max_peak(j);
    std::string o = "<div class=\"cards\">";
    o += card("step time (slowest rank)", format_seconds(j.at("step_time_s").as_number()),
              vs(c ? format_seconds(c->at("step_time_s").as_number()) : ""));
    o += card("peak device memory (fullest rank)", format_bytes(peak) + " of " + format_bytes(static_cast<std::int64_t>(cap)),
              c ? vs(format_bytes(max_peak(*c))) : (j.at("fits").as_bool() ? "fits" : "does NOT fit"));
    o += card("exposed communication", format_seconds(j.at("exposed_comm_s").as_number()) + " (" +
              format_fixed(100 * j.at("exposed_comm_fraction").as_number(), 1) + "% of the step)",
              vs(c ? format_seconds(c->at("exposed_comm_s").as_number()) : ""));
    const auto& cp = j.at("compute_peak");
    o += card("compute utilisation", utilisation(j),
              c ? vs(utilisation(*c))
                : cp.at("known").as_bool() ? "of " + format_si(cp.at("peak_tflops").as_number() * 1e12, "FLOP/s") + " " +
                                                  cp.at("dtype").as_string() + " peak, while computing"
                                            : "");
    return o + "</div>";
}

std::string legend(const std::vector<Panel>& panels, const std::string& label, const std::string* other_label) {
    std::set<MemCategory> cats;
    std::set<plan::OpKind> kinds;
    for (const auto& p : panels)
        for (const RankTimeline* tl : {p.tl, p.other}) {
            if (!tl) continue;
            for (const auto& m : tl->memory)
                for (MemCategory c : kAllMemCategories)
                    if (on_device(c) && m.bytes[c] > 0) cats.insert(c);
            for (const auto& op : tl->ops) kinds.insert(op.kind);
        }
    auto swatch = [](const std::string& colour, const std::string& name) {
        return "<span class=\"key\"><span class=\"swatch\" style=\"background:" + colour + "\"></span>" + html_escape(name) + "</span>";
    };
    std::string o = "<div class=\"legend\"><b>memory</b> ";
    for (MemCategory c : cats) o += swatch(category_colour(c), std::string(category_name(c)));
    o += "<span class=\"key\"><span class=\"line capacity-key\"></span>device capacity</span>";
    o += "<span class=\"key\"><span class=\"dot\"></span>peak (" + html_escape(label) + ")</span>";
    if (other_label) o += "<span class=\"key cmp\"><span class=\"line cmp-key\"></span>" + html_escape(*other_label) + " total</span>";
    o += "</div><div class=\"legend\"><b>ops</b> ";
    for (plan::OpKind k : kinds) o += swatch(op_colour(k), plan::op_kind_name(k));
    if (other_label)
        o += "<span class=\"key cmp\"><span class=\"swatch cmp-key-box\"></span>" + html_escape(*other_label) + " ops (outline)</span>";
    return o + "</div>";
}

std::string config_column(const LoadedRun& lr, const std::string& label) {
    auto text = [&](const char* effective, const std::string& original) {
        auto it = lr.full.attributes.find(effective);
        return it != lr.full.attributes.end() && !it->second.empty() ? it->second : original;
    };
    const bool effective = lr.full.attributes.count("effective_job") > 0;
    std::string o = "<div class=\"config\"><h3>" + html_escape(lr.path + " (" + label + ")") + "</h3>";
    o += "<details open><summary>job" + std::string(effective ? " (effective: every key, defaults included)" : "") +
         "</summary><pre>" + html_escape(text("effective_job", lr.full.job_text)) + "</pre></details>";
    o += "<details open><summary>topology" + std::string(effective ? " (effective)" : "") + "</summary><pre>" +
         html_escape(text("effective_topology", lr.full.topology_text)) + "</pre></details>";
    return o + "</div>";
}

std::string step_note(const LoadedRun& lr, const std::string& label) {
    if (lr.steps.size() <= 1) return "";
    std::vector<std::int64_t> s(lr.steps.begin(), lr.steps.end());
    return "<li>" + html_escape(label) + ": step " + std::to_string(lr.step) + " of the recorded steps " + rank_list(s) +
           (lr.step == lr.steps.back() ? " is drawn (the last; earlier ones include warm-up; <code>--step N</code> draws another)"
                                       : " is drawn") +
           ".</li>";
}

const char* kStyle = R"css(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1280px;padding:16px 24px;color:#222;background:#fff}
h1{font-size:22px;margin:4px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}h3{font-size:15px;margin:14px 0 4px}
.sub{color:#555;margin:0 0 12px}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:220px;flex:1}
.card-title{color:#666;font-size:12px}.card-value{font-size:18px;font-weight:600}.card-sub{color:#666;font-size:12px}
.notes{color:#444;font-size:13px}.legend{font-size:12px;margin:4px 0}.key{margin-right:12px;white-space:nowrap;display:inline-block}
.swatch{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px;border:1px solid #0002}
.line{display:inline-block;width:22px;height:0;margin-right:4px;vertical-align:3px}
.capacity-key{border-top:2px dashed #d62728}.cmp-key{border-top:2px dashed #222}.cmp-key-box{border:1.5px dashed #222;background:none}
.dot{display:inline-block;width:8px;height:8px;border-radius:50%;background:#d62728;margin-right:4px}
.panel{border-top:1px solid #eee;padding-top:4px}.panel h3 small{color:#666;font-weight:normal}
.chart{margin:0}.chart-svg{width:100%;height:auto;display:block}
.chart-svg .grid{stroke:#e5e5e5;stroke-width:1}.chart-svg .tick,.chart-svg .lane-label{font-size:11px;fill:#555}
.chart-svg .mem{stroke:none;opacity:.9}.chart-svg .mem:hover{opacity:1;stroke:#000;stroke-width:.5}
.chart-svg .capacity{stroke:#d62728;stroke-width:1.5;stroke-dasharray:6 4}.chart-svg .capacity-label,.chart-svg .capacity-off{font-size:11px;fill:#d62728}
.chart-svg .peak{fill:#d62728;stroke:#fff;stroke-width:1}.chart-svg .lane{fill:#f5f5f5}
.chart-svg .mem-total{fill:none;stroke:#333;stroke-width:1}
.chart-svg .cmp-tick{stroke:#222;stroke-width:1}.chart-svg .cmp-label{fill:#222;stroke:none;font-style:italic}
.chart-svg .op:hover{stroke:#000;stroke-width:1}.chart-svg .cmp{fill:none;stroke:#222;stroke-width:1.2;stroke-dasharray:3 2}
.chart-svg .empty{font-size:13px;fill:#999}.draw-note{color:#777;font-size:12px;margin:2px 0 8px}
body.hide-compare .cmp{display:none}
#hover{position:sticky;bottom:0;background:#fffbe6;border-top:1px solid #e6d98c;padding:4px 8px;font-size:12px;white-space:pre-wrap;min-height:1.4em}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}.configs{display:flex;gap:16px;flex-wrap:wrap}.config{flex:1;min-width:360px}
)css";

// Our own few lines: counts what was drawn and notes where each peak dot landed on the page (the
// e2e test reads both back from the DOM and checks the screenshot there), toggles the overlay and
// shows the hovered element's title at once in a status line.
const char* kScript = R"js(
(function () {
  'use strict';
  var root = document.documentElement;
  try {
    var totals = {};
    document.querySelectorAll('[data-chart]').forEach(function (fig) {
      var kind = fig.getAttribute('data-chart');
      var n = fig.querySelectorAll(kind === 'memory' ? 'path.mem' : 'rect.op').length;
      fig.setAttribute('data-shapes', String(n));
      totals[kind] = (totals[kind] || 0) + n;
    });
    Object.keys(totals).forEach(function (k) { root.setAttribute('data-drawn-' + k, String(totals[k])); });
    document.querySelectorAll('circle.peak').forEach(function (c) {
      var r = c.getBoundingClientRect();
      c.setAttribute('data-page-xyr', [r.left + r.width / 2 + window.scrollX, r.top + r.height / 2 + window.scrollY,
                                       r.height / 2].map(Math.round).join(','));
    });
    var box = document.getElementById('toggle-compare');
    if (box) box.addEventListener('change', function () { document.body.classList.toggle('hide-compare', !box.checked); });
    var status = document.getElementById('hover');
    document.addEventListener('mouseover', function (e) {
      var t = e.target && e.target.querySelector ? e.target.querySelector(':scope > title') : null;
      if (t && status) status.textContent = t.textContent;
    });
    root.setAttribute('data-report-ready', 'ok');
  } catch (err) {
    root.setAttribute('data-report-error', String(err));
    throw err;
  }
})();
)js";

}  // namespace

std::string render_html(const LoadedRun& run, const LoadedRun* compare, const HtmlOptions& opt) {
    const io::Json j = report_json(run, compare);
    const io::Json* c = compare ? &j.at("compare") : nullptr;
    const std::string label = label_of(run, compare);
    const std::string other_label = compare ? label_of(*compare, &run) : "";
    std::string fold_note;
    const auto panels = make_panels(run.run, compare ? &compare->run : nullptr, std::max<std::size_t>(1, opt.max_panels), fold_note);
    const ChartScales scales = make_scales(run.run, compare ? &compare->run : nullptr, panels, opt);

    std::string body;
    DrawCount ops_total, samples_total;
    for (const auto& p : panels) {
        ChartInput in{&run.run, p.tl, compare ? &compare->run : nullptr, p.other, label, other_label};
        DrawCount samples, ops;
        const std::string mem = memory_chart(in, scales, samples);
        const std::string gantt = gantt_chart(in, scales, ops);
        ops_total.items += ops.items, ops_total.drawn += ops.drawn;
        samples_total.items += samples.items, samples_total.drawn += samples.drawn;
        std::string list = rank_list(p.ranks);
        if (list.size() > 90) list = list.substr(0, list.rfind(',', 80)) + ",… (" + std::to_string(p.ranks.size()) + " ranks)";
        const std::string who = (p.ranks.size() == 1 ? "rank " : "ranks ") + list;
        body += "<section class=\"panel\" data-ranks=\"" + rank_list(p.ranks) + "\"><h3>" + html_escape(who) + " <small>" +
                html_escape(p.tl->device + (p.how.empty() ? "" : " · " + p.how) +
                            (compare && !p.other ? " · not in " + other_label : "")) + "</small></h3>";
        body += "<figure class=\"chart\" data-chart=\"memory\">" + mem + "</figure>";
        body += "<figure class=\"chart\" data-chart=\"gantt\">" + gantt + "</figure>";
        if (ops.drawn < ops.items || samples.drawn < samples.items)
            body += "<p class=\"draw-note\">" + html_escape(label) + ": " + std::to_string(ops.items) + " ops drawn as " +
                    std::to_string(ops.drawn) + " blocks, " + std::to_string(samples.drawn) + " of " +
                    std::to_string(samples.items) + " memory samples</p>";
        body += "</section>";
    }

    const std::string title = "shardsim report: " + run.run.job_name;
    std::string o = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
                    "content=\"width=device-width,initial-scale=1\"><title>" + html_escape(title) + "</title><style>" + kStyle +
                    "</style></head><body>";
    o += "<h1>" + html_escape(title) + "</h1><p class=\"sub\">" +
         html_escape(run.path + " · " + label + " (mode " + run.run.mode + ", backend " + run.run.backend + ") · " +
                     std::to_string(run.run.world_size) + " rank(s) · " + format_count(run.run.param_count) + " parameters") +
         (compare ? "<br>compared with " + html_escape(compare->path + " · " + other_label + " (mode " + compare->run.mode + ")") : "") +
         "</p>";
    o += cards(j, c, other_label);
    o += "<ul class=\"notes\">";
    o += step_note(run, label);
    if (compare) {
        o += step_note(*compare, other_label);
        const std::string axes =
            scales.other_t_max > 0
                ? "Dashed: " + html_escape(other_label) + ", on its own time axis (labels along the top of each chart): its step lasts " +
                      html_escape(format_seconds(scales.other_t_max)) + ", " + html_escape(label) + "'s " +
                      html_escape(format_seconds(scales.t_max)) + " (" +
                      html_escape(format_change(std::max(scales.t_max, scales.other_t_max), std::min(scales.t_max, scales.other_t_max))) +
                      "), too different to share one"
                : "Dashed, on the same axes: " + html_escape(other_label);
        o += "<li>Solid: " + html_escape(label) + ". " + axes +
             " (memory: its device total; ops: outlines in the same lanes). "
             "<label><input type=\"checkbox\" id=\"toggle-compare\" checked> show " + html_escape(other_label) + "</label></li>";
    }
    if (!fold_note.empty()) o += "<li>" + html_escape(fold_note) + ".</li>";
    if (ops_total.drawn < ops_total.items || samples_total.drawn < samples_total.items)
        o += "<li>Thinned for drawing: " + std::to_string(ops_total.items) + " ops drawn as " + std::to_string(ops_total.drawn) +
             " blocks (ops narrower than a pixel that follow each other are one block; hover it for its ops), " +
             std::to_string(samples_total.drawn) + " of " + std::to_string(samples_total.items) +
             " memory samples (each slice of time keeps its first and its fullest sample, so peaks stay). "
             "The Chrome trace has every op.</li>";
    o += "<li>Times are seconds from the start of the step; memory is the device's, by category (host-side "
         "<code>offloaded</code> bytes are in the tables). Hover a shape for its details.</li></ul>";
    o += "<h2>Memory and ops per rank</h2>" + legend(panels, label, compare ? &other_label : nullptr) + body;
    o += "<h2>Summary</h2><pre class=\"summary\">" + html_escape(report_text(run, compare)) + "</pre>";
    o += "<h2>Effective configuration</h2><div class=\"configs\">" + config_column(run, label);
    if (compare) o += config_column(*compare, other_label);
    o += "</div><div id=\"hover\"></div><script>" + std::string(kScript) + "</script></body></html>\n";
    return o;
}

}  // namespace shardsim::report
