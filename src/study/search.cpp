// The plan search's fast stages ([Note: plan search]): every setup of the space checked against
// the plan's rules, pruned by its memory bound or ranked by the step estimate, on every core.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>
#include <tuple>

#include "search_internal.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/plan/bound.hpp"
#include "shardsim/study/estimate.hpp"

namespace shardsim::study {

std::int64_t tokens_per_step(const Space& space) {
    const model::Scenario s = base_scenario(space, 0);
    return space.global_batch * (s.encoder_len() + s.decoder_len());
}

int thread_count(int requested) {
    if (requested > 0) return requested;
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

double score_of(const Space& space, const Setup& x, double tokens_per_s) {
    if (!(tokens_per_s > 0)) return std::numeric_limits<double>::infinity();
    switch (space.request.objective.kind) {
        case ObjectiveKind::tokens_per_s:
        case ObjectiveKind::time_to_tokens: return -tokens_per_s;
        case ObjectiveKind::cost_per_token: {
            const double price = space.node_types[static_cast<std::size_t>(x.node_type)].usd_per_gpu_hour;
            return price > 0 ? price * x.gpus / tokens_per_s : std::numeric_limits<double>::infinity();
        }
        case ObjectiveKind::fewest_gpus: return static_cast<double>(x.gpus) * 1e12 - tokens_per_s;
    }
    return -tokens_per_s;
}

namespace {

std::vector<std::int32_t> divisors_of(std::int64_t n, std::int64_t lo, std::int64_t hi) {
    std::vector<std::int32_t> d;
    for (std::int64_t k = lo; k <= std::min(n, hi); ++k)
        if (n % k == 0) d.push_back(static_cast<std::int32_t>(k));
    return d;
}

// Shard sizes of a strategy at `gpus`: hybrid splits the world into replicas of shard groups (the
// node by default; every divisor with --allow hybrid), ZeRO-3 may add hpZ's secondary groups.
void sharding_choices(const Space& space, std::int32_t gpus, config::Strategy st, std::vector<std::pair<std::int32_t, std::int32_t>>& out) {
    out.clear();
    std::vector<std::int32_t> shards = {0};
    if (st == config::Strategy::fsdp_hybrid_shard && space.hybrid) shards = divisors_of(gpus, 2, gpus - 1);
    if (space.fixed_shard_size) shards = {*space.fixed_shard_size};
    if (shards.empty()) shards = {0};  // the node: refused with its reason when it is the whole world
    std::vector<std::int32_t> secondaries = {0};
    if (st == config::Strategy::zero3 && space.hpz)
        for (auto d : divisors_of(gpus, 2, gpus / 2)) secondaries.push_back(d);
    if (space.fixed_secondary) secondaries = {*space.fixed_secondary};
    for (auto s : shards)
        for (auto sec : secondaries) out.push_back({s, sec});
}

}  // namespace

std::vector<Shape> enumerate_shapes(const Space& space) {
    std::vector<Shape> out;
    std::vector<std::pair<std::int32_t, std::int32_t>> sharding;
    for (std::size_t t = 0; t < space.node_types.size(); ++t)
        for (auto gpus : space.node_types[t].counts)
            for (auto st : space.strategies) {
                sharding_choices(space, static_cast<std::int32_t>(gpus), st, sharding);
                for (auto [shard, sec] : sharding) {
                    Shape sh;
                    sh.node_type = static_cast<std::int16_t>(t);
                    sh.gpus = static_cast<std::int32_t>(gpus);
                    sh.strategy = st;
                    sh.shard_size = st == config::Strategy::fsdp_hybrid_shard || space.fixed_shard_size ? shard : 0;
                    sh.secondary = sec;
                    out.push_back(sh);
                }
            }
    return out;
}

// The micro-batch / accumulation splits of one rank's share of the global batch.
std::vector<std::pair<std::int32_t, std::int32_t>> batch_splits(const Space& space, std::int32_t gpus) {
    std::vector<std::pair<std::int32_t, std::int32_t>> out;
    if (space.global_batch % gpus != 0) return out;
    const std::int64_t per_rank = space.global_batch / gpus;
    for (auto mb : divisors_of(per_rank, 1, per_rank)) {
        const auto accum = static_cast<std::int32_t>(per_rank / mb);
        if (space.fixed_micro_batch && *space.fixed_micro_batch != mb) continue;
        if (space.fixed_grad_accum && *space.fixed_grad_accum != accum) continue;
        out.push_back({mb, accum});
    }
    return out;
}

std::vector<std::int8_t> offload_choices(const Space& space, config::Strategy st) {
    const auto& t = plan::traits(st);
    std::vector<std::int8_t> out;
    for (auto o : space.offloads)
        // Offload the strategy cannot do is left out, unless --fix asks for it (then the plan says why not).
        if (space.fixed_offload || o == 0 || (o == 1 && t.shard_optimizer) || (o >= 2 && t.shard_params)) out.push_back(o);
    return out;
}

std::int64_t shape_candidates(const Space& space, const Shape& sh) {
    const std::int64_t inner = static_cast<std::int64_t>(space.checkpointing.size() * space.attentions.size() * space.losses.size());
    const auto splits = static_cast<std::int64_t>(batch_splits(space, sh.gpus).size());
    const auto outer = static_cast<std::int64_t>(space.precisions.size() * space.loras.size() * offload_choices(space, sh.strategy).size());
    return std::max<std::int64_t>(1, outer * static_cast<std::int64_t>(space.knobs(sh.strategy).size()) * splits * inner);
}

namespace {

// What one thread gathers; merged when all are done.
struct ThreadState {
    StageStats stats;
    std::vector<std::pair<double, Ranked>> top;
    std::vector<GroupOutcome> groups;
    std::vector<model::Scenario> scenarios;  // per node type, changed setup by setup
};

struct Context {
    const Space& space;
    const SearchTables& tables;
    std::int64_t tokens = 0;
    std::size_t keep = 0;
    const Visitor* visit = nullptr;
};

// Best score first; equal scores in a fixed order of the setups, so that which of them are kept
// does not depend on how the threads shared the work.
bool ranks_before(const std::pair<double, Ranked>& a, const std::pair<double, Ranked>& b) {
    if (a.first != b.first) return a.first < b.first;
    const Setup &x = a.second.setup, &y = b.second.setup;
    return std::tie(x.node_type, x.gpus, x.strategy, x.shard_size, x.secondary, x.micro_batch, x.checkpointing, x.offload, x.attention,
                    x.loss, x.precision, x.knobs, x.lora) < std::tie(y.node_type, y.gpus, y.strategy, y.shard_size, y.secondary,
                                                                     y.micro_batch, y.checkpointing, y.offload, y.attention, y.loss,
                                                                     y.precision, y.knobs, y.lora);
}

void keep_top(ThreadState& ts, std::size_t keep, double score, const Ranked& r) {
    ts.top.push_back({score, r});
    if (ts.top.size() < 2 * keep + 64) return;
    std::nth_element(ts.top.begin(), ts.top.begin() + static_cast<std::ptrdiff_t>(keep), ts.top.end(), ranks_before);
    ts.top.resize(keep);
}

void invalid(GroupOutcome& g, ThreadState& ts, std::int64_t n, const std::string& reason) {
    g.candidates += n;
    g.invalid += n;
    ts.stats.candidates += n;
    ts.stats.invalid += n;
    if (g.invalid_reason.empty()) g.invalid_reason = reason;
}

// One candidate: pruned by its bound (device, then host) or ranked by its estimate.
struct Candidate {
    const Setup& setup;
    const plan::MemoryBound& bound;
    const StepEstimate& estimate;
    std::int64_t guess = 0;
};

void record(const Context& c, ThreadState& ts, GroupOutcome& g, const model::Scenario& s, const Candidate& k) {
    ++g.candidates;
    ++ts.stats.candidates;
    const std::int64_t device_over = k.bound.device_bytes - s.topology.gpu.memory_bytes;
    const std::int64_t host_over = s.topology.host.memory_bytes > 0 ? k.bound.host_bytes_per_node - s.topology.host.memory_bytes : 0;
    Ranked r{k.setup, k.bound.device_bytes, k.bound.host_bytes_per_node, k.bound.device_bytes + k.guess, k.estimate.step_s, 0};
    if (device_over > 0 || host_over > 0) {
        ++g.pruned;
        ++ts.stats.pruned;
        if (c.visit && *c.visit) (*c.visit)(r, true);
        const std::int64_t over = std::max(device_over, host_over);
        if (!g.closest || over < g.closest_over_bytes) {
            g.closest = r;
            g.closest_over_bytes = over;
            g.closest_on_host = host_over > device_over;
        }
        return;
    }
    ++g.ranked;
    ++ts.stats.ranked;
    r.est_tokens_per_s = static_cast<double>(c.tokens) / k.estimate.step_s;
    if (c.visit && *c.visit) (*c.visit)(r, false);
    const double score = score_of(c.space, r.setup, r.est_tokens_per_s);
    if (!g.best || score < score_of(c.space, g.best->setup, g.best->est_tokens_per_s)) g.best = r;
    if (!g.lean || r.guess_bytes < g.lean->guess_bytes) g.lean = r;
    keep_top(ts, c.keep, score, r);
}

// The inner dimensions of one sharding: engine knobs, batch splits, checkpointing, attention, loss.
struct Sharding {
    const plan::ShardingRules& rules;
    const StepComm& comm;
    std::int64_t guess = 0;
    const std::vector<std::pair<std::int32_t, std::int32_t>>& splits;
};

void inner(const Context& c, ThreadState& ts, GroupOutcome& g, Setup x, const Sharding& h) {
    model::Scenario& s = ts.scenarios[static_cast<std::size_t>(x.node_type)];
    const plan::BoundModel& m = c.tables.model(x.lora);
    const DType dtype = h.rules.precision.params;
    const double frag = s.topology.gpu.allocator_fragmentation;
    for (std::size_t k = 0; k < c.space.knobs(x.strategy).size(); ++k) {
        x.knobs = static_cast<std::int8_t>(k);
        apply_setup(c.space, x, s);
        const plan::MemoryBound base = plan::memory_bound(m, s, h.rules, plan::ActivationSums{});
        for (auto [mb, accum] : h.splits)
            for (const auto ck : c.space.checkpointing)
                for (auto att : c.space.attentions)
                    for (auto loss : c.space.losses) {
                        x.micro_batch = mb, x.grad_accum = accum, x.checkpointing = ck, x.attention = att, x.loss = loss;
                        apply_setup(c.space, x, s);
                        const MicroBatchWork& w = c.tables.work({mb, ck, att, loss, dtype, x.lora});
                        const plan::MemoryBound b = plan::with_activations(base, w.activations, frag);
                        const StepEstimate e = estimate_step(s, h.rules, h.comm, w);
                        record(c, ts, g, s, {x, b, e, h.guess});
                    }
    }
}

void evaluate_shape(const Context& c, const Shape& sh, ThreadState& ts) {
    GroupOutcome& g = ts.groups[static_cast<std::size_t>(sh.group)];
    const auto splits = batch_splits(c.space, sh.gpus);
    if (splits.empty()) {
        const std::int64_t b = c.space.global_batch;
        return invalid(g, ts, 1,
                       b % sh.gpus != 0 ? "global batch " + std::to_string(b) + " is not a multiple of " + std::to_string(sh.gpus) + " GPUs"
                                        : "no micro-batch x accumulation split of " + std::to_string(b / sh.gpus) +
                                              " sequences per GPU matches --fix");
    }
    Setup x;
    x.node_type = sh.node_type, x.gpus = sh.gpus, x.strategy = sh.strategy, x.shard_size = sh.shard_size, x.secondary = sh.secondary;
    x.micro_batch = splits.front().first, x.grad_accum = splits.front().second;
    x.attention = c.space.attentions.front(), x.loss = c.space.losses.front(), x.checkpointing = c.space.checkpointing.front();
    const auto& traits = plan::traits(sh.strategy);
    const std::int64_t per_outer = static_cast<std::int64_t>(c.space.knobs(sh.strategy).size() * splits.size() *
                                                             c.space.checkpointing.size() * c.space.attentions.size() * c.space.losses.size());
    for (std::size_t p = 0; p < c.space.precisions.size(); ++p)
        for (bool lora : c.space.loras)
            for (auto o : offload_choices(c.space, sh.strategy)) {
                x.precision = static_cast<std::int8_t>(p), x.lora = lora, x.offload = o, x.knobs = 0;
                model::Scenario& s = ts.scenarios[static_cast<std::size_t>(sh.node_type)];
                apply_setup(c.space, x, s);
                const plan::BoundModel& m = c.tables.model(lora);
                plan::ParallelDims dims;
                Problems problems;
                try {
                    dims = plan::parallel_dims(s, traits);
                    plan::check_job(s, traits, m.units(), problems);
                } catch (const InputError& e) {
                    problems.add(e.problems().front());
                }
                if (!problems.empty()) {
                    invalid(g, ts, per_outer, problems.lines().front());
                    continue;
                }
                const plan::ShardingRules rules = plan::sharding_rules(s, dims);
                const StepComm comm = step_comm(m, s, rules);
                inner(c, ts, g, x, {rules, comm, guess_extra(m, rules), splits});
            }
}

GroupOutcome merge_group(GroupOutcome a, const GroupOutcome& b, const Space& space) {
    auto score = [&](const Ranked& r) { return score_of(space, r.setup, r.est_tokens_per_s); };
    a.candidates += b.candidates, a.invalid += b.invalid, a.pruned += b.pruned, a.ranked += b.ranked;
    if (b.best && (!a.best || score(*b.best) < score(*a.best))) a.best = b.best;
    if (b.lean && (!a.lean || b.lean->guess_bytes < a.lean->guess_bytes)) a.lean = b.lean;
    if (b.closest && (!a.closest || b.closest_over_bytes < a.closest_over_bytes)) {
        a.closest = b.closest;
        a.closest_over_bytes = b.closest_over_bytes;
        a.closest_on_host = b.closest_on_host;
    }
    if (a.invalid_reason.empty()) a.invalid_reason = b.invalid_reason;
    return a;
}

}  // namespace

FastResult fast_stages(const Space& space, int threads, std::size_t keep, const Progress& progress, const Visitor& visit) {
    const auto t0 = std::chrono::steady_clock::now();
    threads = thread_count(threads);
    std::vector<Shape> shapes = enumerate_shapes(space);
    FastResult out;
    for (auto& sh : shapes) {
        auto it = std::find_if(out.groups.begin(), out.groups.end(), [&](const GroupOutcome& g) {
            return g.node_type == sh.node_type && g.gpus == sh.gpus && g.strategy == sh.strategy;
        });
        if (it == out.groups.end()) {
            GroupOutcome g;
            g.node_type = sh.node_type, g.gpus = sh.gpus, g.strategy = sh.strategy;
            out.groups.push_back(g);
            it = out.groups.end() - 1;
        }
        sh.group = static_cast<int>(it - out.groups.begin());
    }
    std::int64_t total = 0;
    for (const auto& sh : shapes) total += shape_candidates(space, sh);
    const SearchTables tables(space, threads);
    const Context c{space, tables, tokens_per_step(space), keep, &visit};
    std::vector<model::Scenario> bases;
    for (std::size_t t = 0; t < space.node_types.size(); ++t) bases.push_back(base_scenario(space, static_cast<int>(t)));
    std::vector<ThreadState> states(static_cast<std::size_t>(threads));
    std::atomic<std::size_t> next{0};
    std::atomic<std::int64_t> done{0};
    auto worker = [&](ThreadState& ts, bool reports) {
        ts.scenarios = bases;
        ts.groups = out.groups;
        for (std::size_t i = next++; i < shapes.size(); i = next++) {
            const std::int64_t before = ts.stats.candidates;
            evaluate_shape(c, shapes[i], ts);
            done += ts.stats.candidates - before;
            if (reports && progress) progress("prune and rank", done.load(), total);
        }
    };
    std::vector<std::thread> pool;
    for (std::size_t t = 1; t < states.size(); ++t) pool.emplace_back(worker, std::ref(states[t]), false);
    worker(states[0], true);
    for (auto& t : pool) t.join();
    if (progress) progress("prune and rank", done.load(), total);
    std::vector<std::pair<double, Ranked>> top;
    for (auto& ts : states) {
        out.stats.candidates += ts.stats.candidates, out.stats.invalid += ts.stats.invalid;
        out.stats.pruned += ts.stats.pruned, out.stats.ranked += ts.stats.ranked;
        top.insert(top.end(), ts.top.begin(), ts.top.end());
        for (std::size_t g = 0; g < out.groups.size(); ++g) out.groups[g] = merge_group(out.groups[g], ts.groups[g], space);
    }
    std::sort(top.begin(), top.end(), ranks_before);
    if (top.size() > keep) top.resize(keep);
    for (auto& [score, r] : top) out.top.push_back(r);
    out.stats.prune_rank_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
}

FastStages run_fast_stages(const Space& space, int threads, std::size_t keep, const Visitor& visit) {
    FastResult r = fast_stages(space, threads, keep, nullptr, visit);
    return {r.stats, r.top};
}

}  // namespace shardsim::study
