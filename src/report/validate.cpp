#include "shardsim/report/validate.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>

#include "shardsim/core/format.hpp"
#include "shardsim/core/stats.hpp"
#include "shardsim/report/summary.hpp"

namespace shardsim::report {

using timeline::OpRecord;
using timeline::RankTimeline;
using timeline::RunTimeline;

namespace {

double error_pct(double predicted, double measured) {
    if (predicted == 0) return measured == 0 ? 0.0 : std::numeric_limits<double>::infinity();
    return 100.0 * (measured - predicted) / predicted;
}

// Categories the plan sizes exactly: a difference there is a bug on one side.
bool exact(MemCategory c) {
    return c != MemCategory::activations && c != MemCategory::temporaries && c != MemCategory::runtime_overhead;
}

int last_step(const RankTimeline& tl) {
    int s = 0;
    for (const auto& op : tl.ops) s = std::max(s, op.step);
    return s;
}

std::string op_text(const RunTimeline& run, const OpRecord& op) { return "op " + std::to_string(op.op_id) + " (" + op_name(run, op) + ")"; }

// One measured time figure over the steps compared: median and spread.
struct Spread {
    double median = 0, lo = 0, hi = 0;
    int steps = 0;
};

Spread spread_of(std::vector<double> v) {
    Spread s;
    if (v.empty()) return s;
    s.median = median(v);
    s.lo = *std::min_element(v.begin(), v.end());
    s.hi = *std::max_element(v.begin(), v.end());
    s.steps = static_cast<int>(v.size());
    return s;
}

// Step, comm and exposed comm time of each measured step but the warm-up (step 0), when there are
// more steps than it.
std::array<Spread, 3> time_spreads(const RankTimeline& tl, int last) {
    std::array<std::vector<double>, 3> v;
    for (int step = last >= 1 ? 1 : 0; step <= last; ++step) {
        const auto s = step_of(tl, step).summarize();
        v[0].push_back(s.step_time);
        v[1].push_back(s.comm_time);
        v[2].push_back(s.exposed_comm);
    }
    return {spread_of(v[0]), spread_of(v[1]), spread_of(v[2])};
}

RankValidation compare(const RunTimeline& pred_run, const RankTimeline& pred, const RunTimeline& meas_run, const RankTimeline& meas,
                       const std::array<Spread, 3>& spreads, const Thresholds& th) {
    RankValidation v;
    const auto ps = pred.summarize(), ms = meas.summarize();
    v.peak_predicted = ps.peak_bytes;
    v.peak_measured = ms.peak_bytes;
    v.peak_error_pct = error_pct(static_cast<double>(ps.peak_bytes), static_cast<double>(ms.peak_bytes));
    for (MemCategory c : kAllMemCategories) {
        CategoryCheck k;
        k.category = c;
        k.predicted = ps.max_by_category[c];
        k.measured = ms.max_by_category[c];
        k.error_pct = error_pct(static_cast<double>(k.predicted), static_cast<double>(k.measured));
        k.failed = std::fabs(k.error_pct) > th.memory_pct && std::llabs(k.measured - k.predicted) > th.memory_floor_bytes;
        v.passed = v.passed && !k.failed;
        v.categories.push_back(k);
    }
    // Persistent state: the first sample of each.
    const MemoryByCategory p0 = pred.memory.empty() ? MemoryByCategory{} : pred.memory.front().bytes;
    const MemoryByCategory m0 = meas.memory.empty() ? MemoryByCategory{} : meas.memory.front().bytes;
    for (MemCategory c : {MemCategory::params, MemCategory::grads, MemCategory::master_params, MemCategory::optimizer_states,
                          MemCategory::offloaded})
        if (p0[c] != m0[c])
            v.exact_failures.push_back("persistent " + std::string(category_name(c)) + ": predicted " + std::to_string(p0[c]) +
                                       " B, measured " + std::to_string(m0[c]) + " B");
    // Ops by id: collective sizes, then the first memory divergence.
    std::map<int, const OpRecord*> measured_ops;
    for (const auto& op : meas.ops) measured_ops[op.op_id] = &op;
    bool size_reported = false;
    for (const auto& op : pred.ops) {
        auto it = measured_ops.find(op.op_id);
        if (it == measured_ops.end()) {
            v.exact_failures.push_back(op_text(pred_run, op) + " was predicted but not measured");
            break;
        }
        const OpRecord& m = *it->second;
        if (op.collective >= 0 && !size_reported && m.bytes != op.bytes) {
            v.exact_failures.push_back("first collective whose size differs: " + op_text(pred_run, op) + ": predicted " +
                                       std::to_string(op.bytes) + " B, measured " + std::to_string(m.bytes) + " B");
            size_reported = true;
        }
        if (!v.divergence.empty()) continue;
        for (MemCategory c : kAllMemCategories) {
            if (c == MemCategory::runtime_overhead || m.net[c] == op.net[c]) continue;
            v.divergence = op_text(meas_run, m) + ", " + std::string(category_name(c)) + ": predicted " +
                           std::to_string(op.net[c]) + " B, measured " + std::to_string(m.net[c]) + " B";
            v.divergence_fails = exact(c);
            break;
        }
    }
    if (pred.ops.size() != meas.ops.size())
        v.exact_failures.push_back("predicted " + std::to_string(pred.ops.size()) + " ops, measured " + std::to_string(meas.ops.size()));
    v.passed = v.passed && v.exact_failures.empty() && !v.divergence_fails;
    const char* names[] = {"step time", "comm time", "exposed comm"};
    const double predicted[] = {ps.step_time, ps.comm_time, ps.exposed_comm};
    for (std::size_t i = 0; i < 3; ++i) {
        const Spread& m = spreads[i];
        TimeCheck t{names[i], predicted[i], m.median, error_pct(predicted[i], m.median), m.lo, m.hi, m.steps};
        // The exposed part can be zero on one side: judge it against the step instead.
        const double base = i == 2 ? std::max(ps.step_time, 1e-12) : predicted[i];
        const double pct = i == 0 ? th.time_pct : th.comm();
        const double allowed = pct / 100.0 * base + 0.5 * (m.hi - m.lo);
        t.failed = pct > 0 && (std::fabs(m.median - predicted[i]) > allowed || (base == 0 && m.median > 0));
        v.passed = v.passed && !t.failed;
        v.times.push_back(t);
    }
    // When every op changes memory exactly as planned, a peak can still differ: which ops are
    // live at once depends on how long each took (a slow reduce-scatter keeps the next
    // micro-batch's gradients and its own buffers alive together). Say so, with the ratio.
    const bool peak_differs = std::any_of(v.categories.begin(), v.categories.end(), [](const CategoryCheck& c) { return c.failed; });
    if (peak_differs && v.divergence.empty() && v.exact_failures.empty()) {
        v.memory_cause = "every op allocates and frees as planned, so the peaks differ only in which ops overlapped";
        if (ps.comm_time > 0 && ms.comm_time > 0) v.comm_time_ratio = ms.comm_time / ps.comm_time;
    }
    return v;
}

std::string memory_cause_text(const RankValidation& v) {
    if (v.memory_cause.empty() || v.comm_time_ratio <= 0) return v.memory_cause;
    return v.memory_cause + ": communication took " + format_fixed(v.comm_time_ratio, 1) +
           "x the predicted time, which changes how many buffers are live at once";
}

// Ranks fold when they share a prediction and their comparison says the same thing; their
// measured figures differ a little (times above all), so that is not part of the key.
std::string fold_key(int predicted_class, const RankValidation& v) {
    std::string key = std::to_string(predicted_class) + "|" + v.divergence + "|" + (v.divergence_fails ? "1" : "0");
    for (const auto& e : v.exact_failures) key += "|" + e;
    return key;
}

// Further from the prediction: a larger |error|, an infinite one (nothing predicted) largest.
bool further(double error_pct, double than_pct) { return std::fabs(error_pct) > std::fabs(than_pct); }

template <class Check>
void keep_furthest(Check& group, const Check& member) {
    const bool failed = group.failed || member.failed;
    if (further(member.error_pct, group.error_pct)) group = member;
    group.failed = failed;
}

void fold_into(RankValidation& g, const RankValidation& v) {
    g.ranks.push_back(v.ranks.front());
    g.passed = g.passed && v.passed;
    if (further(v.peak_error_pct, g.peak_error_pct)) {
        g.peak_predicted = v.peak_predicted;
        g.peak_measured = v.peak_measured;
        g.peak_error_pct = v.peak_error_pct;
        g.peak_rank = v.peak_rank;
    }
    for (std::size_t i = 0; i < g.categories.size() && i < v.categories.size(); ++i) keep_furthest(g.categories[i], v.categories[i]);
    for (std::size_t i = 0; i < g.times.size() && i < v.times.size(); ++i) keep_furthest(g.times[i], v.times[i]);
    if (g.memory_cause.empty()) g.memory_cause = v.memory_cause;
    g.comm_time_ratio = std::max(g.comm_time_ratio, v.comm_time_ratio);
}

void set_rank(RankValidation& v, std::int64_t r) {
    v.ranks = {r};
    v.peak_rank = r;
    for (auto& c : v.categories) c.rank = r;
    for (auto& t : v.times) t.rank = r;
}

// The error as a change from the prediction: "+12.3%", or "x8.25" beyond twice it.
std::string pct(double e) {
    if (std::isinf(e)) return "n/a";
    return format_change(1 + e / 100, 1);
}

}  // namespace

RankTimeline step_of(const RankTimeline& tl, int step) {
    RankTimeline out;
    out.rank = tl.rank;
    out.device = tl.device;
    out.host = tl.host;
    double t0 = std::numeric_limits<double>::infinity();
    for (const auto& op : tl.ops)
        if (op.step == step) t0 = std::min(t0, op.t_start);
    for (const auto& m : tl.memory)
        if (m.step == step) t0 = std::min(t0, m.t);
    if (std::isinf(t0)) t0 = 0;
    for (auto op : tl.ops)
        if (op.step == step) {
            op.t_start -= t0;
            op.t_end -= t0;
            out.ops.push_back(op);
        }
    for (auto m : tl.memory)
        if (m.step == step) {
            m.t -= t0;
            out.memory.push_back(m);
        }
    return out;
}

Validation validate_runs(const RunTimeline& predicted, const RunTimeline& measured, const Thresholds& th) {
    if (predicted.world_size != measured.world_size)
        throw InputError("validate: the predicted run has " + std::to_string(predicted.world_size) + " ranks, the measured one " +
                         std::to_string(measured.world_size) + " (allowed: two files of the same plan)");
    Validation out;
    out.measured_step = measured.timelines.empty() ? 0 : last_step(measured.timelines.front());
    // Ranks that share a timeline on both sides share a comparison: compare each pair of
    // timelines once (1,024 identical simulated ranks cost one comparison, not 1,024), then fold
    // ranks whose results read the same through a map (no rank is matched against every group).
    std::map<std::pair<int, int>, RankValidation> by_class;
    std::map<std::string, std::size_t> group_of_key;
    for (std::int64_t r = 0; r < measured.world_size; ++r) {
        const auto i = static_cast<std::size_t>(r);
        const int predicted_class = predicted.class_of_rank.at(i);
        const std::pair<int, int> classes{predicted_class, measured.class_of_rank.at(i)};
        auto cached = by_class.find(classes);
        if (cached == by_class.end()) {
            const RankTimeline meas = step_of(measured.rank(r), out.measured_step);
            cached = by_class.emplace(classes, compare(predicted, predicted.rank(r), measured, meas,
                                                       time_spreads(measured.rank(r), out.measured_step), th)).first;
        }
        RankValidation v = cached->second;
        set_rank(v, r);
        out.passed = out.passed && v.passed;
        const auto [it, added] = group_of_key.try_emplace(fold_key(predicted_class, v), out.ranks.size());
        if (added)
            out.ranks.push_back(v);
        else
            fold_into(out.ranks[it->second], v);
    }
    return out;
}

io::Json validation_json(const Validation& v, const Thresholds& th) {
    io::Json j = io::Json::object();
    j["passed"] = v.passed;
    j["measured_step"] = v.measured_step;
    io::Json t = io::Json::object();
    t["memory_pct"] = th.memory_pct;
    t["memory_floor_bytes"] = th.memory_floor_bytes;
    t["time_pct"] = th.time_pct;
    t["comm_pct"] = th.comm();
    j["thresholds"] = t;
    io::Json ranks = io::Json::array();
    for (const auto& r : v.ranks) {
        io::Json rj = io::Json::object();
        io::Json list = io::Json::array();
        for (auto x : r.ranks) list.push_back(x);
        rj["ranks"] = list;
        rj["passed"] = r.passed;
        rj["peak_bytes"] = io::Json::Object{{"predicted", r.peak_predicted}, {"measured", r.peak_measured},
                                            {"error_pct", std::isinf(r.peak_error_pct) ? io::Json() : io::Json(r.peak_error_pct)},
                                            {"rank", r.peak_rank}};
        io::Json cats = io::Json::object();
        for (const auto& c : r.categories)
            cats[std::string(category_name(c.category))] =
                io::Json::Object{{"predicted", c.predicted}, {"measured", c.measured},
                                 {"error_pct", std::isinf(c.error_pct) ? io::Json() : io::Json(c.error_pct)}, {"failed", c.failed},
                                 {"rank", c.rank}};
        rj["peak_by_category"] = cats;
        io::Json exact = io::Json::array();
        for (const auto& e : r.exact_failures) exact.push_back(e);
        rj["exact_failures"] = exact;
        rj["first_divergence"] = r.divergence.empty() ? io::Json() : io::Json(r.divergence);
        rj["memory_difference_cause"] = r.memory_cause.empty() ? io::Json() : io::Json(memory_cause_text(r));
        io::Json times = io::Json::object();
        for (const auto& tc : r.times)
            times[tc.what] = io::Json::Object{{"predicted_s", tc.predicted}, {"measured_s", tc.measured},
                                              {"error_pct", std::isinf(tc.error_pct) ? io::Json() : io::Json(tc.error_pct)},
                                              {"measured_min_s", tc.measured_min}, {"measured_max_s", tc.measured_max},
                                              {"steps", tc.steps}, {"failed", tc.failed}, {"rank", tc.rank}};
        rj["time"] = times;
        ranks.push_back(rj);
    }
    j["ranks"] = ranks;
    return j;
}

std::string validation_text(const Validation& v, const Thresholds& th) {
    std::string out;
    for (const auto& r : v.ranks) {
        const bool folded = r.ranks.size() > 1;
        out += "ranks " + rank_list(r.ranks) + ": " + (r.passed ? "PASS" : "FAIL") +
               (folded ? " (" + std::to_string(r.ranks.size()) +
                             " ranks with one prediction; each row shows the rank furthest from it)"
                       : std::string()) + "\n";
        // The rank column only when several ranks share the table: before the verdict column.
        auto cells = [&](std::vector<std::string> c, const std::string& rank) {
            if (folded) c.insert(c.end() - 1, rank);
            return c;
        };
        TextTable t(cells({"peak memory", "predicted", "measured", "error", ""}, "rank"));
        t.add_units(cells({"", "MiB", "MiB", "", ""}, ""));
        const auto mib = [](std::int64_t b) { return format_fixed(static_cast<double>(b) / kMiB, 3); };
        for (const auto& c : r.categories) {
            if (c.predicted == 0 && c.measured == 0) continue;
            t.add_row(cells({std::string(category_name(c.category)), mib(c.predicted), mib(c.measured), pct(c.error_pct),
                             c.failed ? "FAIL" : ""},
                            std::to_string(c.rank)));
        }
        t.add_row(cells({"total (device)", mib(r.peak_predicted), mib(r.peak_measured), pct(r.peak_error_pct), ""},
                        std::to_string(r.peak_rank)));
        out += t.str();
        TextTable tt(cells({"time", "predicted", "measured", "spread", "error", ""}, "rank"));
        if (!r.times.empty())
            tt.add_units(cells({"", "", "median", "min - max, " + std::to_string(r.times.front().steps) + " step(s)", "of median", ""}, ""));
        for (const auto& tc : r.times)
            tt.add_row(cells({tc.what, format_seconds(tc.predicted), format_seconds(tc.measured),
                              format_seconds(tc.measured_min) + " - " + format_seconds(tc.measured_max), pct(tc.error_pct),
                              tc.failed ? "FAIL" : ""},
                             std::to_string(tc.rank)));
        out += tt.str();
        out += "model states and collective sizes: " + std::string(r.exact_failures.empty() ? "exact" : "DIFFER") + "\n";
        for (const auto& e : r.exact_failures) out += "  " + e + "\n";
        out += "first memory divergence: " + (r.divergence.empty() ? std::string("none, every op allocates and frees as planned") : r.divergence + (r.divergence_fails ? "  (FAIL: an exactly planned category)" : "  (an estimated category)")) + "\n";
        if (!r.memory_cause.empty()) out += "why the peaks differ: " + memory_cause_text(r) + "\n";
    }
    out += std::string("thresholds: memory ") + format_fixed(th.memory_pct, 1) + "% beyond " + format_bytes(th.memory_floor_bytes) +
           ", time " + (th.time_pct > 0 ? format_fixed(th.time_pct, 0) + "%" : std::string("off")) +
           (th.comm() != th.time_pct ? ", communication " + (th.comm() > 0 ? format_fixed(th.comm(), 0) + "%" : std::string("off")) : std::string()) +
           " of the prediction + half the measured spread\n";
    return out;
}

}  // namespace shardsim::report
