#pragma once
// From a scenario to a prediction: the plan, its schedule and the simulated run, in that order.
// Every caller that wants a prediction (simulate, run, validate, the sweep, the sbatch generator)
// goes through here, so the chain is written once.
#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/schedule.hpp"
#include "shardsim/timeline/timeline.hpp"

namespace shardsim::sim {

struct Prediction {
    plan::PlanPtr plan;
    plan::Schedule schedule;
    timeline::RunTimeline run;  // every rank, sharing one timeline

    // The fullest rank's device peak, and host use per node (offloaded states of its ranks).
    std::int64_t device_peak_bytes() const;
};

// Refuses impossible plans (InputError, every factor printed) before simulating.
Prediction predict(const model::Scenario& scenario);

}  // namespace shardsim::sim
