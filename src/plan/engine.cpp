#include "shardsim/plan/engine.hpp"

#include <algorithm>

#include "shardsim/core/format.hpp"

namespace shardsim::plan {

namespace {

// PyTorch's reducer defaults (torch/csrc/distributed/c10d/reducer.hpp, ENGINES.md §6):
// kDefaultBucketBytesCap 25 MiB, kDefaultFirstBucketBytes 1 MiB.
constexpr std::int64_t kDdpBucketBytes = 25 * kMiB;
constexpr std::int64_t kDdpFirstBucketBytes = 1 * kMiB;

std::int64_t mib_bytes(double mib) { return static_cast<std::int64_t>(mib * static_cast<double>(kMiB)); }

void resolve_ddp(const config::JobConfig& job, EngineSettings& e) {
    e.bucket_bytes = job.bucket_mib > 0 ? mib_bytes(job.bucket_mib) : kDdpBucketBytes;
    if (job.bucket_mib <= 0) e.resolved.push_back("parallel.bucket_mib = auto -> 25 MiB (PyTorch DDP's bucket_cap_mb)");
    e.first_bucket_bytes = job.first_bucket_mib > 0 ? mib_bytes(job.first_bucket_mib) : kDdpFirstBucketBytes;
    if (job.first_bucket_mib <= 0) e.resolved.push_back("parallel.first_bucket_mib = auto -> 1 MiB (PyTorch DDP's first bucket)");
    e.gradient_as_bucket_view = job.gradient_as_bucket_view;
}

// DeepSpeed's defaults (deepspeed/runtime/zero/config.py): reduce_bucket_size 5e8 elements;
// overlap_comm true for stage 3, false for stages 1 and 2.
constexpr std::int64_t kReduceBucketElements = 500'000'000;
constexpr std::int64_t kPrefetchBucketElements = 50'000'000;

// The model's hidden size as the HF integration takes it: config.hidden_size, or the largest.
std::int64_t hidden_size(const model::ModelSpec& m) { return std::max(m.decoder.hidden, m.encoder.hidden); }

void resolve_deepspeed(const model::Scenario& s, EngineSettings& e) {
    const config::JobConfig& job = s.job;
    const DType grads = job.grads;
    e.zero_stage = job.strategy == config::Strategy::zero1 ? 1 : job.strategy == config::Strategy::zero2 ? 2 : 3;
    const std::int64_t h = hidden_size(s.model);
    if (job.bucket_mib > 0) {
        e.reduce_bucket_elements = std::max<std::int64_t>(1, mib_bytes(job.bucket_mib) / dtype_size(grads));
    } else if (job.hf_auto) {
        // transformers' HfTrainerDeepSpeedConfig: reduce_bucket_size "auto" = hidden_size^2.
        e.reduce_bucket_elements = h * h;
        e.resolved.push_back("parallel.bucket_mib = auto -> reduce_bucket_size " + std::to_string(h * h) + " elements (hidden " +
                             std::to_string(h) + "^2, as Hugging Face fills \"auto\")");
    } else {
        e.reduce_bucket_elements = kReduceBucketElements;
        e.resolved.push_back("parallel.bucket_mib = auto -> reduce_bucket_size 5e8 elements (DeepSpeed's default)");
    }
    e.bucket_bytes = e.reduce_bucket_elements * dtype_size(grads);
    e.max_live_parameters = job.stage3_max_live_parameters;
    e.max_reuse_distance = job.stage3_max_reuse_distance;
    e.pin_memory = job.pin_memory;
    if (job.stage3_param_persistence_threshold >= 0) {
        e.persistence_threshold = job.stage3_param_persistence_threshold;
    } else if (job.hf_auto) {
        // stage3_param_persistence_threshold "auto" = 10 x hidden (transformers, Accelerate).
        e.persistence_threshold = 10 * h;
        if (e.zero_stage == 3)
            e.resolved.push_back("deepspeed.stage3_param_persistence_threshold = auto -> " + std::to_string(e.persistence_threshold) +
                                 " elements (10 x hidden, as Hugging Face fills \"auto\")");
    } else {
        e.persistence_threshold = 100'000;
        if (e.zero_stage == 3)
            e.resolved.push_back("deepspeed.stage3_param_persistence_threshold = auto -> 1e5 elements (DeepSpeed's default)");
    }
    e.sub_group_elements = job.sub_group_size;
    if (job.stage3_prefetch_bucket_size >= 0) {
        e.prefetch_bucket_elements = job.stage3_prefetch_bucket_size;
    } else if (job.hf_auto) {
        // stage3_prefetch_bucket_size "auto" = 0.9 x hidden^2 (transformers; Accelerate takes int()).
        e.prefetch_bucket_elements = static_cast<std::int64_t>(0.9 * static_cast<double>(h * h));
        if (e.zero_stage == 3)
            e.resolved.push_back("deepspeed.stage3_prefetch_bucket_size = auto -> " + std::to_string(e.prefetch_bucket_elements) +
                                 " elements (0.9 x hidden^2, as Hugging Face fills \"auto\")");
    } else {
        e.prefetch_bucket_elements = kPrefetchBucketElements;
        if (e.zero_stage == 3) e.resolved.push_back("deepspeed.stage3_prefetch_bucket_size = auto -> 5e7 elements (DeepSpeed's default)");
    }
    e.overlap_comm = job.overlap_comm < 0 ? e.zero_stage == 3 : job.overlap_comm == 1;
    if (job.overlap_comm < 0)
        e.resolved.push_back(std::string("deepspeed.overlap_comm = auto -> ") + (e.overlap_comm ? "true" : "false") +
                             " (DeepSpeed's default for stage " + std::to_string(e.zero_stage) + ")");
}

}  // namespace

EngineSettings resolve_engine(const model::Scenario& scenario, const StrategyTraits& traits) {
    EngineSettings e;
    if (traits.engine == Engine::ddp) resolve_ddp(scenario.job, e);
    if (traits.engine == Engine::deepspeed) resolve_deepspeed(scenario, e);
    return e;
}

}  // namespace shardsim::plan
