// The plan search from end to end ([Note: plan search]): the fast stages, the full simulation of
// the best setups and of every (GPU, count, strategy)'s best, the ranking by the objective, why
// each group lost, and the winners' largest micro-batch.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <tuple>

#include "search_internal.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::study {

namespace {

auto setup_tie(const Setup& x) {
    return std::tie(x.node_type, x.gpus, x.strategy, x.shard_size, x.secondary, x.micro_batch, x.grad_accum, x.checkpointing,
                    x.offload, x.attention, x.loss, x.precision, x.knobs, x.lora);
}
bool same_setup(const Setup& a, const Setup& b) { return setup_tie(a) == setup_tie(b); }

void add_unique(std::vector<Setup>& v, const Setup& x) {
    if (std::none_of(v.begin(), v.end(), [&](const Setup& y) { return same_setup(x, y); })) v.push_back(x);
}

bool same_group(const GroupOutcome& g, const Setup& x) {
    return g.node_type == x.node_type && g.gpus == x.gpus && g.strategy == x.strategy;
}

std::string gib(std::int64_t bytes) { return format_gib(static_cast<double>(bytes), 2) + " GiB"; }

// How `a` (fits) compares with the winner `w` under the objective: "slower by 12.3%".
std::string lost_to(const Space& space, const Confirmed& a, const Confirmed& w) {
    const auto kind = space.request.objective.kind;
    if (kind == ObjectiveKind::fewest_gpus && a.setup.gpus > w.setup.gpus)
        return std::to_string(a.setup.gpus) + " GPUs where " + std::to_string(w.setup.gpus) + " suffice";
    if (kind == ObjectiveKind::cost_per_token && a.cost_per_mtok > 0 && w.cost_per_mtok > 0 && a.cost_per_mtok > w.cost_per_mtok)
        return "costlier by " + format_fixed(100 * (a.cost_per_mtok / w.cost_per_mtok - 1), 1) + "% per token";
    if (kind == ObjectiveKind::cost_per_token && a.cost_per_mtok == 0) return "no price for its GPU";
    if (a.tokens_per_s < w.tokens_per_s) return "slower by " + format_fixed(100 * (1 - a.tokens_per_s / w.tokens_per_s), 1) + "%";
    return "ties with the winner, ranked after it";
}

// The fitting setups first, in the objective's order; then those that do not fit, the closest first.
void rank_results(const Space& space, std::vector<Confirmed>& r) {
    std::stable_sort(r.begin(), r.end(), [&](const Confirmed& a, const Confirmed& b) {
        if (a.fits != b.fits) return a.fits;
        if (a.fits) return better(space, a, b);
        const bool ia = a.reason.rfind("invalid", 0) == 0, ib = b.reason.rfind("invalid", 0) == 0;
        if (ia != ib) return ib;
        return a.peak_bytes - a.gpu_memory_bytes < b.peak_bytes - b.gpu_memory_bytes;
    });
}

// The largest micro-batch that fits, everything else kept (accumulation kept at up to 2, so that
// later micro-batches' buffers count): doubled until the simulation says no, then bisected.
std::int64_t largest_micro_batch(const Space& space, const Confirmed& c, std::int64_t tokens) {
    auto fits = [&](std::int64_t mb) {
        Setup x = c.setup;
        x.micro_batch = static_cast<std::int32_t>(mb);
        x.grad_accum = std::min(x.grad_accum, 2);
        return simulate_sets(space, x, setup_sets(space, x), tokens).fits;
    };
    std::int64_t lo = c.setup.micro_batch, hi = lo * 2;
    constexpr std::int64_t kCap = 4096;
    while (hi <= kCap && fits(hi)) lo = hi, hi *= 2;
    if (hi > kCap) return lo;
    while (hi - lo > 1) {
        const std::int64_t mid = (lo + hi) / 2;
        (fits(mid) ? lo : hi) = mid;
    }
    return lo;
}

// "<plan --model m>:8: parallel.strategy: ..." without the made-up job's location.
std::string without_location(const std::string& line) {
    if (line.empty() || line[0] != '<') return line;
    const auto close = line.find(">:");
    if (close == std::string::npos) return line;
    const auto colon = line.find(": ", close + 2);
    return colon == std::string::npos ? line : line.substr(colon + 2);
}

// Why a group lost, from what the stages learnt of it.
std::string group_reason(const Space& space, const GroupOutcome& g, const std::optional<Confirmed>& winner) {
    if (g.simulated) {
        const Confirmed& c = *g.simulated;
        if (!c.fits) return c.reason + " (simulated, its best setup)";
        if (winner && same_setup(c.setup, winner->setup)) return "the winner";
        return winner ? lost_to(space, c, *winner) + " (simulated)" : "fits";
    }
    if (g.ranked > 0 && g.best && winner) {
        const double t = g.best->est_tokens_per_s;
        if (t < winner->tokens_per_s)
            return "slower by about " + format_fixed(100 * (1 - t / winner->tokens_per_s), 1) + "% (estimated, not simulated)";
        return "may fit; not simulated (raise --top)";
    }
    if (g.ranked > 0) return "may fit; not simulated";
    if (g.closest)
        return std::string("OOM on ") + (g.closest_on_host ? "host" : "device") + " by at least " + gib(g.closest_over_bytes) +
               (g.closest_on_host ? " per node" : "") + " (memory bound of its leanest setup)";
    if (!g.invalid_reason.empty()) return "invalid: " + without_location(g.invalid_reason);
    return "no setup";
}

}  // namespace

PlanResult run_search(const Space& space, const SearchOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    const int threads = thread_count(o.threads);
    const std::size_t keep = static_cast<std::size_t>(o.confirm > 0 ? o.confirm : std::max(space.request.top, 50));
    FastResult fast = fast_stages(space, threads, keep, o.progress);
    PlanResult out;
    out.stats = fast.stats;
    out.groups = std::move(fast.groups);

    // Simulate the global best by the estimate, and each GPU type and count's best and leanest (over
    // its strategies), so that the fewest GPUs that fit is confirmed or refuted by the simulation.
    // Other groups lose by their estimate or their bound, said so.
    std::vector<Setup> todo;
    for (const auto& r : fast.top) add_unique(todo, r.setup);
    for (std::size_t i = 0; i < out.groups.size();) {
        std::optional<Ranked> best, lean;
        std::size_t k = i;
        for (; k < out.groups.size() && out.groups[k].node_type == out.groups[i].node_type && out.groups[k].gpus == out.groups[i].gpus; ++k) {
            const GroupOutcome& g = out.groups[k];
            if (g.best && (!best || score_of(space, g.best->setup, g.best->est_tokens_per_s) < score_of(space, best->setup, best->est_tokens_per_s)))
                best = g.best;
            if (g.lean && (!lean || g.lean->guess_bytes < lean->guess_bytes)) lean = g.lean;
        }
        if (best) add_unique(todo, best->setup);
        if (lean) add_unique(todo, lean->setup);
        i = k;
    }
    const auto t1 = std::chrono::steady_clock::now();
    std::vector<Confirmed> sims = confirm(space, todo, threads, o.progress);
    out.stats.simulated = static_cast<std::int64_t>(sims.size());
    out.stats.simulate_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    for (std::size_t i = 0; i < sims.size(); ++i)
        for (const auto& r : fast.top)
            if (same_setup(r.setup, sims[i].setup)) sims[i].est_step_s = r.est_step_s;
    rank_results(space, sims);

    // The first fitting setup whose simulation is exact is the winner: an extrapolated one ahead
    // of it is simulated exactly and ranked again.
    for (int round = 0; round < 8 && !sims.empty() && sims.front().fits && sims.front().extrapolated; ++round) {
        sims.front() = simulate_sets(space, sims.front().setup, setup_sets(space, sims.front().setup), tokens_per_step(space));
        ++out.stats.simulated;
        rank_results(space, sims);
    }
    std::optional<Confirmed> winner;
    if (!sims.empty() && sims.front().fits) winner = sims.front();
    for (auto& g : out.groups) {
        for (const auto& c : sims)  // sims are in rank order: the first of the group is its best
            if (same_group(g, c.setup)) {
                g.simulated = c;
                break;
            }
        g.reason = group_reason(space, g, winner);
    }
    for (auto& c : sims)
        if (c.fits && winner && !same_setup(c.setup, winner->setup)) c.reason = lost_to(space, c, *winner);
    for (std::size_t i = 0; i < sims.size(); ++i) {
        if (!sims[i].fits) continue;
        if (!out.fastest || sims[i].tokens_per_s > sims[*out.fastest].tokens_per_s) out.fastest = i;
        if (!out.fewest || sims[i].setup.gpus < sims[*out.fewest].setup.gpus) out.fewest = i;  // rank order breaks ties
    }
    const std::int64_t tokens = tokens_per_step(space);
    if (o.max_micro_batch)
        for (std::size_t i = 0, n = 0; i < sims.size() && n < static_cast<std::size_t>(space.request.top); ++i)
            if (sims[i].fits) sims[i].max_micro_batch = largest_micro_batch(space, sims[i], tokens), ++n;

    if (!space.request.job.empty()) {
        Setup own;
        own.gpus = static_cast<std::int32_t>(base_scenario(space, 0).world_size());
        out.job_setup = simulate_sets(space, own, space.fix_sets, tokens);
        const Confirmed& j = *out.job_setup;
        if (!winner)
            out.job_setup_note = "";
        else if (!j.fits)
            out.job_setup_note = "the job's own setup " + (j.reason.empty() ? std::string("does not fit") : j.reason) + "; the search picks " +
                                 setup_label(space, winner->setup) + " on " + std::to_string(winner->setup.gpus) + " GPUs";
        else
            out.job_setup_note = "the job's own setup fits at " + format_fixed(j.tokens_per_s, 0) + " tokens/s; the search picks " +
                                 setup_label(space, winner->setup) + " on " + std::to_string(winner->setup.gpus) + " GPUs: " +
                                 format_change(winner->tokens_per_s, j.tokens_per_s) + " tokens/s";
    }
    if (!winner) {
        // The closest miss: a simulated setup over by the least, or else the group whose bound came closest.
        std::string best;
        std::int64_t over = -1;
        for (const auto& c : sims)
            if (c.reason.rfind("invalid", 0) != 0 && (over < 0 || c.peak_bytes - c.gpu_memory_bytes < over)) {
                over = c.peak_bytes - c.gpu_memory_bytes;
                best = space.node_types[static_cast<std::size_t>(c.setup.node_type)].name + " x " + std::to_string(c.setup.gpus) +
                       ", " + setup_label(space, c.setup) + ": " + c.reason;
            }
        if (best.empty())
            for (const auto& g : out.groups)
                if (g.closest && (over < 0 || g.closest_over_bytes < over)) {
                    over = g.closest_over_bytes;
                    best = space.node_types[static_cast<std::size_t>(g.node_type)].name + " x " + std::to_string(g.gpus) + ", " +
                           setup_label(space, g.closest->setup) + ": " + g.reason;
                }
        if (best.empty())
            for (const auto& g : out.groups)
                if (!g.invalid_reason.empty()) {
                    best = space.node_types[static_cast<std::size_t>(g.node_type)].name + " x " + std::to_string(g.gpus) + " " +
                           config::strategy_name(g.strategy) + ": invalid: " + g.invalid_reason;
                    break;
                }
        out.closest_miss = best.empty() ? "no setup to try (check --gpus, --max-gpus and --nodes)" : best;
    }
    out.results = std::move(sims);
    const auto t2 = std::chrono::steady_clock::now();
    out.stats.total_s = std::chrono::duration<double>(t2 - t0).count();
    return out;
}

}  // namespace shardsim::study
