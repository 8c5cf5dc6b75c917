#include "shardsim/sim/calibrate.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace shardsim::sim {

namespace {

// The two parameters of a level, as the model reads them.
struct Params {
    double alpha = 0;  // latency, s
    double beta = 0;   // 1 / bandwidth, s per byte
};

Params get(const LinkModel& l, LinkLevel level) {
    const double bw = level == LinkLevel::intra_node ? l.intra_bandwidth_Bps : l.inter_bandwidth_Bps;
    return {level == LinkLevel::intra_node ? l.intra_latency_s : l.inter_latency_s, bw > 0 ? 1.0 / bw : 0.0};
}

LinkModel with(LinkModel l, LinkLevel level, Params p) {
    const double bw = p.beta > 0 ? 1.0 / p.beta : std::numeric_limits<double>::infinity();
    if (level == LinkLevel::intra_node) {
        l.intra_latency_s = p.alpha;
        l.intra_bandwidth_Bps = bw;
    } else {
        l.inter_latency_s = p.alpha;
        l.inter_bandwidth_Bps = bw;
    }
    return l;
}

// t ~= c + a * alpha + b * beta near the current estimate, from collective_time itself.
struct Linear {
    double a = 0, b = 0, c = 0;
};

Linear linearise(const LinkModel& l, LinkLevel level, Params p, const Measurement& m) {
    // Steps well inside a piece, yet large enough that rounding of t does not blur the slope.
    const double da = std::max(std::abs(p.alpha) * 1e-3, 1e-10);
    const double db = std::max(std::abs(p.beta) * 1e-3, 1e-16);
    const double t0 = predicted_time(with(l, level, p), m);
    Linear f;
    f.a = (predicted_time(with(l, level, {p.alpha + da, p.beta}), m) - t0) / da;
    f.b = (predicted_time(with(l, level, {p.alpha, p.beta + db}), m) - t0) / db;
    f.c = t0 - f.a * p.alpha - f.b * p.beta;
    return f;
}

// min sum w_i^2 (a_i alpha + b_i beta - y_i)^2 over alpha, beta >= 0. The columns are scaled to
// unit norm first: alpha ~ 1e-6 s and beta ~ 1e-10 s/B would otherwise make the system singular
// in floating point.
Params nonnegative_least_squares(const std::vector<Linear>& rows, const std::vector<double>& y, const std::vector<double>& w) {
    double saa = 0, sbb = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        saa += std::pow(w[i] * rows[i].a, 2);
        sbb += std::pow(w[i] * rows[i].b, 2);
    }
    const double na = saa > 0 ? std::sqrt(saa) : 1, nb = sbb > 0 ? std::sqrt(sbb) : 1;
    double aa = 0, ab = 0, bb = 0, ay = 0, by = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const double a = w[i] * rows[i].a / na, b = w[i] * rows[i].b / nb, r = w[i] * y[i];
        aa += a * a, ab += a * b, bb += b * b, ay += a * r, by += b * r;
    }
    auto residual = [&](double u, double v) {
        double s = 0;
        for (std::size_t i = 0; i < rows.size(); ++i)
            s += std::pow(w[i] * (rows[i].a / na * u + rows[i].b / nb * v - y[i]), 2);
        return s;
    };
    std::vector<std::pair<double, double>> candidates = {{aa > 0 ? std::max(0.0, ay / aa) : 0.0, 0.0},
                                                         {0.0, bb > 0 ? std::max(0.0, by / bb) : 0.0}};
    const double det = aa * bb - ab * ab;
    if (det > 1e-12 * std::max(1.0, aa * bb)) {
        const double u = (ay * bb - by * ab) / det, v = (by * aa - ay * ab) / det;
        if (u >= 0 && v >= 0) candidates.insert(candidates.begin(), {u, v});
    }
    auto best = candidates.front();
    for (const auto& c : candidates)
        if (residual(c.first, c.second) < residual(best.first, best.second)) best = c;
    return {best.first / na, best.second / nb};
}

// The objective: squared log ratios of predicted to measured time, so that predicting twice the
// measured time costs as much as predicting half of it.
double log_error(const LinkModel& links, LinkLevel level, Params p, const std::vector<const Measurement*>& pts) {
    double f = 0;
    const LinkModel l = with(links, level, p);
    for (const auto* m : pts) {
        const double t = predicted_time(l, *m);
        if (!(t > 0)) return std::numeric_limits<double>::infinity();
        f += std::pow(std::log(t / m->time_s), 2);
    }
    return f;
}

LevelFit fit_level(LinkModel& links, LinkLevel level, const std::vector<Measurement>& all) {
    LevelFit fit;
    fit.level = level;
    std::vector<const Measurement*> pts;
    for (const auto& m : all)
        if (level_of(m.span) == level && m.span.ranks > 1 && m.size_bytes > 0 && m.time_s > 0) pts.push_back(&m);
    fit.points = pts.size();
    if (pts.empty()) {
        fit.note = level == LinkLevel::intra_node ? "no measurement on a group within one node"
                                                  : "no measurement on a group spanning nodes";
        return fit;
    }
    Params p = get(links, level);
    if (!(p.alpha > 0)) p.alpha = 1e-6;
    if (!(p.beta > 0)) p.beta = 1e-10;
    double objective = log_error(links, level, p, pts);
    std::vector<double> y(pts.size()), w(pts.size());
    std::vector<Linear> rows(pts.size());
    constexpr int kMaxIterations = 100;
    for (fit.iterations = 1; fit.iterations <= kMaxIterations; ++fit.iterations) {
        // Gauss-Newton on the log ratios: ln t(x) ~ ln t0 + (a (alpha - alpha0) + b (beta - beta0)) / t0,
        // which is the weighted linear problem below (weight 1/t0), solved with alpha, beta >= 0.
        bool bandwidth_matters = false;
        for (std::size_t i = 0; i < pts.size(); ++i) {
            rows[i] = linearise(links, level, p, *pts[i]);
            const double t0 = rows[i].c + rows[i].a * p.alpha + rows[i].b * p.beta;
            w[i] = 1.0 / t0;
            y[i] = t0 * (1 + std::log(pts[i]->time_s / t0)) - rows[i].c;
            bandwidth_matters = bandwidth_matters || rows[i].b > 0;
        }
        if (!bandwidth_matters) {
            fit.note = "the level's bandwidth does not enter the model for these groups (limited by the intra-node links)";
            return fit;
        }
        const Params target = nonnegative_least_squares(rows, y, w);
        // Halve the step until the objective improves (both ends are >= 0, so every point between is).
        Params next = target;
        double f = log_error(links, level, next, pts);
        for (int halvings = 0; f > objective && halvings < 30; ++halvings) {
            next = {0.5 * (next.alpha + p.alpha), 0.5 * (next.beta + p.beta)};
            f = log_error(links, level, next, pts);
        }
        if (f > objective) break;  // no step improves: p is the minimum
        const bool settled = std::abs(next.alpha - p.alpha) <= 1e-7 * std::max(p.alpha, 1e-12) &&
                             std::abs(next.beta - p.beta) <= 1e-7 * std::max(p.beta, 1e-30);
        p = next;
        objective = f;
        if (settled) break;
    }
    fit.iterations = std::min(fit.iterations, kMaxIterations);
    if (!(p.beta > 0)) {
        fit.note = "times do not grow with size: the bandwidth cannot be fitted (sweep to larger sizes)";
        return fit;
    }
    links = with(links, level, p);
    fit.fitted = true;
    fit.latency_s = p.alpha;
    fit.bandwidth_Bps = 1.0 / p.beta;
    return fit;
}

}  // namespace

std::string link_level_name(LinkLevel l) { return l == LinkLevel::intra_node ? "intra_node" : "inter_node"; }

double predicted_time(const LinkModel& links, const Measurement& m) {
    return collective_time(links, m.kind, m.size_bytes, m.span);
}

double relative_error(const LinkModel& links, const Measurement& m) {
    return (predicted_time(links, m) - m.time_s) / m.time_s;
}

Calibration calibrate_links(const LinkModel& start, const std::vector<Measurement>& points) {
    Calibration c;
    c.links = start;
    // Inter-node groups may run partly on intra-node links: those are fitted first.
    c.levels.push_back(fit_level(c.links, LinkLevel::intra_node, points));
    c.levels.push_back(fit_level(c.links, LinkLevel::inter_node, points));
    return c;
}

}  // namespace shardsim::sim
