#pragma once
// Private to src/study/: the plan search's enumeration and the pieces its stages share.
#include <cstdint>
#include <utility>
#include <vector>

#include "shardsim/study/search.hpp"

namespace shardsim::study {

// A GPU type, count, strategy and its shard sizes: what the plan's rank groups are made of.
struct Shape {
    std::int16_t node_type = 0;
    std::int32_t gpus = 1;
    config::Strategy strategy = config::Strategy::ddp;
    std::int32_t shard_size = 0, secondary = 0;
    int group = 0;  // its (GPU type, count, strategy) in PlanResult::groups
};

std::vector<Shape> enumerate_shapes(const Space& space);
std::vector<std::pair<std::int32_t, std::int32_t>> batch_splits(const Space& space, std::int32_t gpus);
std::vector<std::int8_t> offload_choices(const Space& space, config::Strategy strategy);
std::int64_t shape_candidates(const Space& space, const Shape& shape);

int thread_count(int requested);
// Lower is better: minus tokens/s, USD per token, or GPUs then minus tokens/s, by the objective.
double score_of(const Space& space, const Setup& setup, double tokens_per_s);

// A setup simulated in full from these --set arguments (setup_sets, or the base job's own).
Confirmed simulate_sets(const Space& space, const Setup& setup, const std::vector<std::string>& sets, std::int64_t tokens);

// The fast stages' findings, merged over threads.
struct FastResult {
    StageStats stats;
    std::vector<Ranked> top;  // best first, by the estimate
    std::vector<GroupOutcome> groups;
};
FastResult fast_stages(const Space& space, int threads, std::size_t keep, const Progress& progress, const Visitor& visit = nullptr);

}  // namespace shardsim::study
