#pragma once
// The executor: performs the plan's schedule op by op on one rank — real parameter shards,
// real collectives, real updates — and measures every op and every memory category.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "shardsim/comm/communicator.hpp"
#include "shardsim/device/device.hpp"
#include "shardsim/exec/lanes.hpp"
#include "shardsim/nn/transformer.hpp"
#include "shardsim/plan/schedule.hpp"
#include "shardsim/timeline/timeline.hpp"

namespace shardsim::exec {

using device::Device;

// The communicator of each group of the plan, indexed as plan::Groups::all() ([Note: rank
// groups]); a group as large as the world may be the world's communicator itself.
using Communicators = std::vector<comm::Communicator*>;

// A piece of the training state, as a checkpoint keeps it (io/checkpoint.hpp): rows
// [first_row, first_row + rows) of tensor `tensor` of unit `unit`, in one of its states ("params":
// the parameters as the model computes with them; "master": fp32 master weights; "moment0",
// "moment1": the optimizer's states), raw in `dtype`. Rows are
// the tensor's dim-0 rows, so a slice means the same whatever the layout that held it: a
// checkpoint written by one sharding is read by another.
struct StateSlice {
    std::string state;
    int unit = 0, tensor = 0;
    std::int64_t first_row = 0, rows = 0, row_elements = 0, total_rows = 0;
    DType dtype = DType::fp32;
    std::vector<unsigned char> bytes;  // rows * row_elements values, host order
};
// Fills `slice.bytes` with the values its key names (state, unit, tensor, rows, dtype).
using StateReader = std::function<void(StateSlice& slice)>;

struct StepResult {
    double loss = 0;     // mean over this rank's micro-batches
    double seconds = 0;  // wall time of the step on this rank
};

class Executor {
public:
    // `rank` is this process's rank in the world; `host_math` runs host-side optimizer steps
    // (offload) and may be `device` itself on a CPU.
    Executor(plan::PlanPtr plan, const plan::Schedule& schedule, Device& device, Device& host_math,
             Communicators comms, int rank);
    ~Executor();
    Executor(const Executor&) = delete;
    Executor& operator=(const Executor&) = delete;

    // One optimizer step (collective over the communicators). `step` counts from the start of
    // training (the data position, AdamW's bias correction); the timeline records it counted from
    // `first_step` (a resumed run's first step is its step 0).
    StepResult run_step(int step);
    void set_first_step(int first_step) { first_step_ = first_step; }

    // Keep this rank's optimizer first moments as the first step leaves them (--verify compares
    // them: they are a linear function of the first step's reduced gradients). Call before it.
    void remember_first_step() { remember_first_step_ = true; }
    // What the first step left: per trainable tensor (unit, state chunk), this rank's rows; empty
    // when not asked for, or when the optimizer keeps no first moment.
    const std::map<std::pair<int, int>, std::vector<float>>& first_step_moments() const { return first_moments_; }

    // Every recorded op and memory sample so far (steps back to back on one time axis).
    const timeline::RankTimeline& timeline() const { return timeline_; }
    // Seconds spent recording ops and memory, over the steps' wall time.
    double measurement_overhead() const;

    // Differences between what this rank measured and what the plan says: persistent bytes per
    // category, collective sizes per op, memory left over after a step. Empty when all agree.
    std::vector<std::string> check_against_plan() const;

    // This rank's trained values of the trainable tensor `chunk` of `unit` (its owned rows, in
    // fp32: master weights when there are some), and the first row they start at.
    // `moment` picks the optimizer's first state instead (AdamW's exp_avg, SGD's momentum buffer).
    std::vector<float> owned_values(int unit, int chunk, std::int64_t* first_row, bool moment = false) const;
    // The full values of any tensor, when parameters are unsharded (a world-1 reference run).
    std::vector<float> full_values(int unit, int tensor, bool moment = false) const;

    const plan::ShardingPlan& plan() const { return *plan_; }

    // This rank's training state as slices (src/exec/state.cpp). `writers_only`: only the slices
    // this rank is the first holder of (world rank = its shard index), so that the ranks together
    // give every row once.
    std::vector<StateSlice> state_slices(bool writers_only) const;
    // Replaces this rank's training state by what `read` gives for each slice it holds; the
    // optimizer then continues from step `step` (its bias correction, the data position).
    void load_state(const StateReader& read);

    struct Impl;  // defined in src/exec/executor_impl.hpp, for src/exec only

private:
    void record_step(int step, const MemoryByCategory& before);
    bool remember_first_step_ = false;
    int first_step_ = 0;
    std::map<std::pair<int, int>, std::vector<float>> first_moments_;
    std::unique_ptr<Impl> impl_;
    plan::PlanPtr plan_;
    timeline::RankTimeline timeline_;
};

}  // namespace shardsim::exec
