#pragma once
// A model's compute ops timed on this device as the executor runs them: nn::Transformer's calls
// with every parameter of a one-rank plan unsharded on `dev` (what `calibrate --compute` fits the
// elementwise share of the compute model to, sim/compute.hpp).
#include <vector>

#include "shardsim/device/device.hpp"
#include "shardsim/plan/schedule.hpp"

namespace shardsim::bench {

struct OpTime {
    int op = -1;          // the schedule's forward or backward op of micro-batch 0
    double seconds = 0;   // median of the repetitions
    std::vector<double> deviations;  // each repetition's time / the median - 1
};

// Every forward and backward op of micro-batch 0 of `schedule`, each the median of `reps` runs
// of the whole micro-batch (forward in program order, backward in reverse), after one untimed.
std::vector<OpTime> time_compute_ops(device::Device& dev, const plan::ShardingPlan& plan, const plan::Schedule& schedule, int reps);

}  // namespace shardsim::bench
