#pragma once
// The plan search's stages ([Note: plan search]) and what they find: every setup of the space
// pruned or ranked, the best simulated in full, each GPU count's best, and the reason every
// strategy at every count lost.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "shardsim/io/json.hpp"
#include "shardsim/study/space.hpp"

namespace shardsim::study {

// A setup as the fast stages left it.
struct Ranked {
    Setup setup;
    std::int64_t bound_bytes = 0;       // device peak bound (plan/bound.hpp)
    std::int64_t host_bound_bytes = 0;  // host per node bound
    std::int64_t guess_bytes = 0;       // device peak guess, for ordering (estimate.hpp)
    double est_step_s = 0;
    double est_tokens_per_s = 0;
};

// A setup simulated in full: what `shardsim simulate` says of its job.
struct Confirmed {
    Setup setup;
    bool fits = false;
    std::int64_t peak_bytes = 0;
    std::int64_t host_peak_bytes_per_node = 0;
    std::int64_t gpu_memory_bytes = 0, host_memory_bytes = 0;
    double step_time_s = 0, compute_time_s = 0, comm_time_s = 0, exposed_comm_s = 0;
    double tokens_per_s = 0, mfu = 0;
    double cost_per_mtok = 0;  // USD per million tokens; 0: the GPU has no price
    std::int64_t max_micro_batch = 0;  // the largest that fits (0: not searched)
    bool extrapolated = false;  // a long accumulation: times extended from a shorter one (confirm.cpp)
    double est_step_s = 0;
    io::Json peak_by_category;  // the fullest rank's peak, per memory category
    io::Json comm_bytes;        // per collective kind, as simulate --json says
    std::string reason;  // why it lost or does not fit ("" for the winner)
};

// The best a (GPU, count, strategy) reached, and why it lost to the winner.
struct GroupOutcome {
    std::int16_t node_type = 0;
    std::int32_t gpus = 0;
    config::Strategy strategy = config::Strategy::ddp;
    std::int64_t candidates = 0, invalid = 0, pruned = 0, ranked = 0;
    std::optional<Ranked> best;       // the best estimate among those that may fit
    std::optional<Ranked> lean;       // the smallest memory guess among those that may fit
    std::optional<Ranked> closest;    // pruned: the one that came closest to fitting
    std::int64_t closest_over_bytes = 0;  // by how much its bound exceeds the device (or the host, per node)
    bool closest_on_host = false;
    std::string invalid_reason;       // the plan's line for the first invalid one
    std::optional<Confirmed> simulated;  // the group's best, when it was simulated
    std::string reason;               // why this group lost (filled at the end)
};

struct StageStats {
    std::int64_t candidates = 0, invalid = 0, pruned = 0, ranked = 0, simulated = 0;
    double prune_rank_s = 0, simulate_s = 0, total_s = 0;
};

struct PlanResult {
    StageStats stats;
    std::vector<Confirmed> results;     // simulated, rank order: fitting ones by the objective, then the rest
    std::vector<GroupOutcome> groups;   // every (GPU, count, strategy)
    std::optional<Confirmed> job_setup; // --job: the job's own setup, simulated
    std::string job_setup_note;         // what the search picks instead, and why
    std::optional<std::size_t> fewest;  // in results: the fewest GPUs that fit (then the best of those)
    std::optional<std::size_t> fastest; // in results: the most tokens/s
    std::string closest_miss;           // when nothing fits: the setup that came closest, and by how much
};

// Progress of a long stage: its name, how far, and of how many.
using Progress = std::function<void(const std::string& stage, std::int64_t done, std::int64_t total)>;

struct SearchOptions {
    int threads = 0;      // 0: the machine's
    int confirm = 0;      // setups to simulate from the global ranking (0: --top, and 50 at least)
    bool tune = true;     // tune the winners' engine knobs by simulation
    bool max_micro_batch = true;
    Progress progress;
};

PlanResult run_search(const Space& space, const SearchOptions& options);

// Only the fast stages, for the benchmark: candidates pruned or ranked, and the best ranked.
struct FastStages {
    StageStats stats;
    std::vector<Ranked> best;
};
// `visit`, when given, sees every setup that was pruned (true) or ranked (false), on the calling
// thread when threads = 1 (the tests check the pruned ones against the simulation).
using Visitor = std::function<void(const Ranked& setup, bool pruned)>;
FastStages run_fast_stages(const Space& space, int threads, std::size_t keep, const Visitor& visit = nullptr);

// Simulates setups in full, in parallel (sim::predict and report::summary_json, as simulate does).
std::vector<Confirmed> confirm(const Space& space, const std::vector<Setup>& setups, int threads, const Progress& progress = nullptr);

// The objective's order: true when `a` is better than `b` (both fit).
bool better(const Space& space, const Confirmed& a, const Confirmed& b);

// Tokens in one optimizer step (every sequence's encoder and decoder tokens).
std::int64_t tokens_per_step(const Space& space);

}  // namespace shardsim::study
