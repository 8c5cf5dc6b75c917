#include "shardsim/sim/calibrate.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace shardsim::sim {

namespace {

// The parameters of a level, as the model reads them: latency (s), 1 / bus bandwidth (s per
// byte) and, inside a node, 1 / reduction rate (s per reduced byte; 0: free); on shm links also
// spill_slowdown - 1 (the cache's size is searched around the fit: fit_level) and 1 / the rate
// MPI copies a rank's own data (s per byte; 0: free). The model is linear in the latency and the
// inverse rates within a piece (one algorithm and protocol), which the fit relies on; the
// slowdown multiplies the rates' terms, which Gauss-Newton's linearisation handles as it is.
// `fit[j]`: the parameter is fitted (and written back); the others stay as they were.
constexpr int kMaxParams = 5;
struct Params {
    std::array<double, kMaxParams> v{};
    std::array<bool, kMaxParams> fit{true, true, false, false, false};
    int n = 2;
};

Params get(const LinkModel& l, LinkLevel level) {
    const LevelLinks& x = level == LinkLevel::intra_node ? l.intra : l.inter;
    Params p;
    p.v[0] = x.latency_s;
    p.v[1] = x.busbw_Bps() > 0 ? 1.0 / x.busbw_Bps() : 0.0;
    if (level == LinkLevel::intra_node) {
        p.n = 3;
        p.fit[2] = true;
        p.v[2] = l.reduce_Bps > 0 ? 1.0 / l.reduce_Bps : 0.0;
        if (l.intra.kind == config::LinkKind::shm) {
            p.n = 5;
            p.fit[3] = l.cache_bytes > 0;
            p.v[3] = l.spill_extra;
            p.fit[4] = true;
            p.v[4] = l.copy_Bps > 0 ? 1.0 / l.copy_Bps : 0.0;
        }
    }
    return p;
}

// The fitted bus bandwidth keeps the datasheet bandwidth and changes the efficiency, unless the
// link delivers more than its nominal bandwidth (a CPU host's shared memory): then the bandwidth.
LinkModel with(LinkModel l, LinkLevel level, const Params& p) {
    LevelLinks& x = level == LinkLevel::intra_node ? l.intra : l.inter;
    x.latency_s = p.v[0];
    const double busbw = p.v[1] > 0 ? 1.0 / p.v[1] : std::numeric_limits<double>::infinity();
    if (x.bandwidth_Bps > 0 && busbw <= x.bandwidth_Bps) {
        x.efficiency = busbw / x.bandwidth_Bps;
    } else {
        x.bandwidth_Bps = busbw;
        x.efficiency = 1;
    }
    if (p.n > 2 && p.fit[2]) l.reduce_Bps = p.v[2] > 0 ? 1.0 / p.v[2] : 0.0;
    if (p.n > 3 && p.fit[3]) l.spill_extra = p.v[3];
    if (p.n > 4 && p.fit[4]) l.copy_Bps = p.v[4] > 0 ? 1.0 / p.v[4] : 0.0;
    return l;
}

// t ~= c + sum_j a_j p_j near the current estimate, from collective_time itself.
struct Linear {
    std::array<double, kMaxParams> a{};
    double c = 0;
};

Linear linearise(const LinkModel& l, LinkLevel level, const Params& p, const Measurement& m) {
    const double t0 = predicted_time(with(l, level, p), m);
    Linear f;
    f.c = t0;
    for (int j = 0; j < p.n; ++j) {
        if (!p.fit[static_cast<std::size_t>(j)]) continue;  // held: no column
        // Steps well inside a piece, yet large enough that rounding of t does not blur the slope.
        const double d = std::max(std::abs(p.v[static_cast<std::size_t>(j)]) * 1e-3, j == 0 ? 1e-10 : j == 3 ? 1e-4 : 1e-16);
        Params q = p;
        q.v[static_cast<std::size_t>(j)] += d;
        f.a[static_cast<std::size_t>(j)] = (predicted_time(with(l, level, q), m) - t0) / d;
        f.c -= f.a[static_cast<std::size_t>(j)] * p.v[static_cast<std::size_t>(j)];
    }
    return f;
}

// Solves the normal equations restricted to the parameters in `mask` (the others 0); false when
// singular or a solved parameter is negative.
bool solve_subset(const std::vector<std::array<double, kMaxParams>>& cols, const std::vector<double>& y, int n, unsigned mask,
                  std::array<double, kMaxParams>& x) {
    std::vector<int> idx;
    for (int j = 0; j < n; ++j)
        if (mask & (1u << j)) idx.push_back(j);
    const std::size_t k = idx.size();
    std::array<std::array<double, kMaxParams + 1>, kMaxParams> m{};
    for (std::size_t r = 0; r < k; ++r) {
        for (std::size_t c = 0; c < k; ++c)
            for (std::size_t i = 0; i < y.size(); ++i) m[r][c] += cols[i][static_cast<std::size_t>(idx[r])] * cols[i][static_cast<std::size_t>(idx[c])];
        for (std::size_t i = 0; i < y.size(); ++i) m[r][k] += cols[i][static_cast<std::size_t>(idx[r])] * y[i];
    }
    for (std::size_t c = 0; c < k; ++c) {  // Gauss-Jordan with partial pivoting
        std::size_t piv = c;
        for (std::size_t r = c + 1; r < k; ++r)
            if (std::abs(m[r][c]) > std::abs(m[piv][c])) piv = r;
        if (std::abs(m[piv][c]) < 1e-12) return false;
        std::swap(m[c], m[piv]);
        for (std::size_t r = 0; r < k; ++r) {
            if (r == c) continue;
            const double f = m[r][c] / m[c][c];
            for (std::size_t cc = c; cc <= k; ++cc) m[r][cc] -= f * m[c][cc];
        }
    }
    x.fill(0);
    for (std::size_t r = 0; r < k; ++r) {
        x[static_cast<std::size_t>(idx[r])] = m[r][k] / m[r][r];
        if (x[static_cast<std::size_t>(idx[r])] < 0) return false;
    }
    return true;
}

// min sum w_i^2 (sum_j a_ij p_j - y_i)^2 over p >= 0, by trying every set of free parameters (at
// most 2^5). The columns are scaled to unit norm first: latency ~ 1e-6 s and 1 / bandwidth ~
// 1e-10 s/B would otherwise make the system singular in floating point.
Params nonnegative_least_squares(const std::vector<Linear>& rows, const std::vector<double>& y, const std::vector<double>& w, int n) {
    std::array<double, kMaxParams> norm{};
    for (std::size_t i = 0; i < rows.size(); ++i)
        for (std::size_t j = 0; j < static_cast<std::size_t>(n); ++j) norm[j] += std::pow(w[i] * rows[i].a[j], 2);
    for (auto& v : norm) v = v > 0 ? std::sqrt(v) : 1;
    std::vector<std::array<double, kMaxParams>> cols(rows.size());
    std::vector<double> wy(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        for (std::size_t j = 0; j < static_cast<std::size_t>(n); ++j) cols[i][j] = w[i] * rows[i].a[j] / norm[j];
        wy[i] = w[i] * y[i];
    }
    auto residual = [&](const std::array<double, kMaxParams>& x) {
        double s = 0;
        for (std::size_t i = 0; i < rows.size(); ++i) {
            double t = -wy[i];
            for (std::size_t j = 0; j < static_cast<std::size_t>(n); ++j) t += cols[i][j] * x[j];
            s += t * t;
        }
        return s;
    };
    std::array<double, kMaxParams> best{}, x{};
    double best_r = residual(best);
    for (unsigned mask = 1; mask < (1u << n); ++mask)
        if (solve_subset(cols, wy, n, mask, x) && residual(x) < best_r) best = x, best_r = residual(x);
    Params p;
    p.n = n;
    for (std::size_t j = 0; j < static_cast<std::size_t>(n); ++j) p.v[j] = best[j] / norm[j];
    return p;
}

// The objective: squared log ratios of predicted to measured time, so that predicting twice the
// measured time costs as much as predicting half of it.
double log_error(const LinkModel& links, LinkLevel level, const Params& p, const std::vector<const Measurement*>& pts) {
    double f = 0;
    const LinkModel l = with(links, level, p);
    for (const auto* m : pts) {
        const double t = predicted_time(l, *m);
        if (!(t > 0)) return std::numeric_limits<double>::infinity();
        f += std::pow(std::log(t / m->time_s), 2);
    }
    return f;
}

// One Gauss-Newton fit of `p` on `pts` from the starting point given; `note` says why it failed.
struct Attempt {
    bool done = false;
    Params p;
    LinkModel links;
    double objective = std::numeric_limits<double>::infinity();
    int iterations = 0;
    std::string note;
};

Attempt gauss_newton(const LinkModel& links, LinkLevel level, Params p, const std::vector<const Measurement*>& pts) {
    Attempt a;
    a.done = true;
    double objective = log_error(links, level, p, pts);
    std::vector<double> y(pts.size()), w(pts.size());
    std::vector<Linear> rows(pts.size());
    constexpr int kMaxIterations = 100;
    for (a.iterations = 1; a.iterations <= kMaxIterations; ++a.iterations) {
        // Gauss-Newton on the log ratios: ln t(p) ~ ln t0 + sum_j a_j (p_j - p0_j) / t0, which is
        // the weighted linear problem below (weight 1/t0), solved with every p_j >= 0.
        bool bandwidth_matters = false;
        for (std::size_t i = 0; i < pts.size(); ++i) {
            rows[i] = linearise(links, level, p, *pts[i]);
            double t0 = rows[i].c;
            for (int j = 0; j < p.n; ++j) t0 += rows[i].a[static_cast<std::size_t>(j)] * p.v[static_cast<std::size_t>(j)];
            w[i] = 1.0 / t0;
            y[i] = t0 * (1 + std::log(pts[i]->time_s / t0)) - rows[i].c;
            bandwidth_matters = bandwidth_matters || rows[i].a[1] > 0;
        }
        if (!bandwidth_matters) {
            a.note = "the level's bandwidth does not enter the model for these groups (limited by the intra-node links)";
            return a;
        }
        Params target = nonnegative_least_squares(rows, y, w, p.n);
        target.fit = p.fit;
        for (std::size_t j = 0; j < kMaxParams; ++j)
            if (!p.fit[j]) target.v[j] = p.v[j];  // held where it was
        // Halve the step until the objective improves (both ends are >= 0, so every point between is).
        Params next = target;
        double f = log_error(links, level, next, pts);
        for (int halvings = 0; f > objective && halvings < 30; ++halvings) {
            for (std::size_t j = 0; j < kMaxParams; ++j) next.v[j] = 0.5 * (next.v[j] + p.v[j]);
            f = log_error(links, level, next, pts);
        }
        if (f > objective) break;  // no step improves: p is the minimum
        bool settled = true;
        for (std::size_t j = 0; j < static_cast<std::size_t>(p.n); ++j)
            settled = settled && std::abs(next.v[j] - p.v[j]) <= 1e-7 * std::max(p.v[j], j == 0 ? 1e-12 : 1e-30);
        p = next;
        objective = f;
        if (settled) break;
    }
    a.iterations = std::min(a.iterations, kMaxIterations);
    a.p = p;
    a.objective = objective;
    if (!(p.v[1] > 0)) a.note = "times do not grow with size: the bandwidth cannot be fitted (sweep to larger sizes)";
    return a;
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
    bool reduces = false, in_place = false, out_of_place = false;
    for (const auto* m : pts) {
        reduces = reduces || plan::collective_info(m->kind).reduces;
        (m->in_place ? in_place : out_of_place) = true;
    }
    const bool both_placements = in_place && out_of_place;
    // shm links: the cache the buffers stay in is searched, from the host's last-level cache down
    // to an eighth of it in steps of sqrt(2), the other parameters fitted at each size; the best
    // fit wins ([Note: a CPU host's cache]). Other links: one fit.
    std::vector<double> caches = {links.cache_bytes};
    if (level == LinkLevel::intra_node && links.intra.kind == config::LinkKind::shm && links.cache_bytes > 0)
        for (int k = 1; k <= 6; ++k) caches.push_back(links.cache_bytes * std::pow(0.5, 0.5 * k));
    Attempt best;
    for (double cache : caches) {
        LinkModel l = links;
        l.cache_bytes = cache;
        Params p = get(l, level);
        if (!(p.v[0] > 0)) p.v[0] = 1e-6;
        if (!(p.v[1] > 0)) p.v[1] = 1e-10;
        if (!reduces) p.fit[2] = false;  // no reducing op measured: the reduction rate stays as it is
        if (!both_placements) p.fit[4] = false;  // one placement: the copy cannot be told from the transfer
        Attempt a = gauss_newton(l, level, p, pts);
        a.links = l;
        if (!best.done || (a.note.empty() && (!best.note.empty() || a.objective < best.objective))) best = a;
    }
    fit.iterations = best.iterations;
    if (!best.note.empty()) {
        fit.note = best.note;
        return fit;
    }
    const Params& p = best.p;
    links = best.links;
    links = with(links, level, p);
    fit.fitted = true;
    fit.latency_s = p.v[0];
    fit.busbw_Bps = 1.0 / p.v[1];
    fit.reduce_fitted = p.n > 2 && p.fit[2];
    fit.reduce_Bps = links.reduce_Bps;
    fit.cache_fitted = p.n > 3 && p.fit[3];
    fit.cache_bytes = links.cache_bytes;
    fit.spill_slowdown = 1 + links.spill_extra;
    fit.copy_fitted = p.n > 4 && p.fit[4];
    fit.copy_Bps = links.copy_Bps;
    return fit;
}

}  // namespace

std::string link_level_name(LinkLevel l) { return l == LinkLevel::intra_node ? "intra_node" : "inter_node"; }

double predicted_time(const LinkModel& links, const Measurement& m) {
    return collective_time(links, m.kind, m.size_bytes, m.span, m.in_place);
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
