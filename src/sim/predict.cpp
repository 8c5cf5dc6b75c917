#include "shardsim/sim/predict.hpp"

#include <algorithm>

#include "shardsim/sim/simulator.hpp"

namespace shardsim::sim {

std::int64_t Prediction::device_peak_bytes() const {
    std::int64_t peak = 0;
    for (const auto& tl : run.timelines) peak = std::max(peak, tl.summarize().peak_bytes);
    return peak;
}

Prediction predict(const model::Scenario& scenario) {
    Prediction p;
    p.plan = plan::ShardingPlan::build(scenario);
    p.schedule = plan::build_schedule(*p.plan);
    p.run = simulate(*p.plan, p.schedule);
    return p;
}

}  // namespace shardsim::sim
