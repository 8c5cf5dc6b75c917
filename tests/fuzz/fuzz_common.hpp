#pragma once
// What the libFuzzer harnesses share. A harness feeds one input to one reader and then runs what
// a user's command would run on the result. Bad input must end in an InputError (exit 2 in the
// binary); anything else that escapes -- an internal Error, a standard-library exception -- is a
// bug, and so are AddressSanitizer and UndefinedBehaviorSanitizer findings: all of them end the
// harness as a crash, which the fuzzer saves and reports.
#include <cstddef>
#include <cstdint>
#include <string>

#include "shardsim/core/error.hpp"
#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/plan.hpp"
#include "shardsim/plan/schedule.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/sim/simulator.hpp"

namespace fuzz {

inline std::string text_of(const std::uint8_t* data, std::size_t size) {
    return std::string(reinterpret_cast<const char*>(data), size);
}

template <class F>
void expect_input_errors_only(F&& f) {
    try {
        f();
    } catch (const shardsim::InputError&) {
        // Bad input, reported as the binary would report it.
    }
}

// Plan, schedule, simulation and summary of a scenario, as `shardsim simulate` runs them. The
// plan (every size, with its overflow checks) is always built; the schedule and the simulation
// only for steps of at most 512 unit passes on at most 512 ranks, so that one execution stays
// near a millisecond (larger ones slowed the --set harness to ~150 executions a second). Larger
// steps run the same code more times; the unit tests take the schema's maxima through it.
inline void simulate_small(const shardsim::model::Scenario& scenario) {
    const auto plan = shardsim::plan::ShardingPlan::build(scenario);
    const auto units = static_cast<std::int64_t>(plan->units().size());
    if (scenario.job.grad_accum > 512 / units || scenario.world_size() > 512) return;
    const auto schedule = shardsim::plan::build_schedule(*plan);
    const auto run = shardsim::sim::simulate(*plan, schedule);
    (void)shardsim::report::summary_text(run);
}

}  // namespace fuzz
