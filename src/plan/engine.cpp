#include "shardsim/plan/engine.hpp"

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

}  // namespace

EngineSettings resolve_engine(const model::Scenario& scenario, const StrategyTraits& traits) {
    EngineSettings e;
    if (traits.engine == Engine::ddp) resolve_ddp(scenario.job, e);
    return e;
}

}  // namespace shardsim::plan
