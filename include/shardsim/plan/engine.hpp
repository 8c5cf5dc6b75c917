#pragma once
// The engine settings a plan runs with: every knob whose job value may be "auto", resolved the way
// the engine (or Hugging Face's integration of it) resolves it, with a line saying what it
// resolved to and why — printed in the start-up table and in --json.
#include <cstdint>
#include <string>
#include <vector>

#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/strategy.hpp"

namespace shardsim::plan {

struct EngineSettings {
    // Gradient buckets (DDP: bucket_cap_mb and the first bucket; DeepSpeed: reduce_bucket_size).
    std::int64_t bucket_bytes = 0;
    std::int64_t first_bucket_bytes = 0;
    bool gradient_as_bucket_view = false;  // DDP
    // DeepSpeed ZeRO (ENGINES.md §1-2).
    int zero_stage = 0;                      // 1, 2, 3; 0: not DeepSpeed
    std::int64_t reduce_bucket_elements = 0;  // reduce_bucket_size
    bool overlap_comm = false;
    std::int64_t prefetch_bucket_elements = 0;  // stage3_prefetch_bucket_size
    std::int64_t max_live_parameters = 0;       // stage3_max_live_parameters
    std::int64_t max_reuse_distance = 0;        // stage3_max_reuse_distance
    std::int64_t persistence_threshold = 0;     // stage3_param_persistence_threshold
    bool pin_memory = true;                     // offload_*.pin_memory
    std::int64_t sub_group_elements = 0;        // sub_group_size
    std::vector<std::string> resolved;     // "parallel.bucket_mib = auto -> 25 MiB (PyTorch DDP's bucket_cap_mb)"
};

EngineSettings resolve_engine(const model::Scenario& scenario, const StrategyTraits& traits);

}  // namespace shardsim::plan
