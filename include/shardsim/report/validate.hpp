#pragma once
// Predicted (simulate) against measured (run) for the same plan, rank by rank:
//   memory      each category's peak, predicted vs measured, error in %; a category fails when
//               the error exceeds `memory_pct` AND the difference exceeds `memory_floor_bytes`
//               (so that a few bytes on a toy model are not a failure)
//   exact       the persistent model states (params, grads, master_params, optimizer_states,
//               offloaded) at the start of the step, and every collective's size, op by op
//   divergence  the first op whose memory change (allocated minus freed) differs, per category;
//               it fails when the category is one the plan sizes exactly (everything but
//               activations, temporaries and runtime_overhead, whose terms are estimates)
//   time        step, communication and exposed communication time: the measured median over
//               the measured steps (all but the first, which warms up, when there are several)
//               with its spread (min - max); the error is the median's, in %, and a figure fails
//               when |median - predicted| exceeds `time_pct` (`comm_pct` for the two
//               communication figures) of the prediction plus half the spread (0 turns the check
//               off): a noisy host widens the bound by its own noise
// Memory and sizes are compared on the last measured step.
// Ranks are folded as simulate folds them: ranks with the same prediction whose comparison says
// the same (the same exact failures and first divergence) share one result, and each row of it
// shows the rank furthest from the prediction (`rank`), failing when any of them fails.
#include <string>
#include <vector>

#include "shardsim/io/json.hpp"
#include "shardsim/timeline/timeline.hpp"

namespace shardsim::report {

struct Thresholds {
    double memory_pct = 10;
    std::int64_t memory_floor_bytes = 64 * 1024;
    double time_pct = 100;
    double comm_pct = -1;  // communication and exposed communication; < 0: time_pct
    double comm() const { return comm_pct < 0 ? time_pct : comm_pct; }
};

struct CategoryCheck {
    MemCategory category = MemCategory::params;
    std::int64_t predicted = 0, measured = 0;
    double error_pct = 0;
    bool failed = false;   // on any rank of the group
    std::int64_t rank = 0;  // the rank whose figures these are: the group's furthest from the prediction
};

struct TimeCheck {
    std::string what;
    double predicted = 0, measured = 0, error_pct = 0;  // measured: the median over the steps
    double measured_min = 0, measured_max = 0;           // its spread
    int steps = 1;                                       // measured steps it is taken over
    bool failed = false;
    std::int64_t rank = 0;
};

struct RankValidation {
    std::vector<std::int64_t> ranks;  // ranks folded into this result
    std::int64_t peak_predicted = 0, peak_measured = 0;
    double peak_error_pct = 0;
    std::int64_t peak_rank = 0;
    std::vector<CategoryCheck> categories;
    std::vector<std::string> exact_failures;  // model-state and collective-size mismatches
    std::string divergence;                   // first op whose memory change differs ("" if none)
    bool divergence_fails = false;
    std::string memory_cause;                 // why peaks differ when every op's change is as planned ("" otherwise)
    double comm_time_ratio = 0;               // measured / predicted communication time (the largest of the group)
    std::vector<TimeCheck> times;
    bool passed = true;
};

struct Validation {
    std::vector<RankValidation> ranks;
    int measured_step = 0;
    bool passed = true;
};

Validation validate_runs(const timeline::RunTimeline& predicted, const timeline::RunTimeline& measured,
                         const Thresholds& thresholds);
io::Json validation_json(const Validation& v, const Thresholds& thresholds);
std::string validation_text(const Validation& v, const Thresholds& thresholds);

// One step of a timeline, its times starting at 0 (the measured side's last step).
timeline::RankTimeline step_of(const timeline::RankTimeline& tl, int step);

}  // namespace shardsim::report
