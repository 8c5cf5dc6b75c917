#pragma once
// The simulator: prices every op of the schedule (cost.hpp), places them on their streams in
// issue order honouring dependencies, and replays the ledger at op boundaries to get memory by
// category over time. Every rank of a plan has the same schedule, so one timeline serves all.
#include "shardsim/plan/schedule.hpp"
#include "shardsim/timeline/timeline.hpp"

namespace shardsim::sim {

// E[max of n independent standard normal variables] (0 for n <= 1): the wait for the last of n
// ranks, in units of their arrival's spread ([Note: waiting for the last rank], simulator.cpp).
double expected_max_of_normals(std::int64_t n);

// One rank's predicted timeline; the caching allocator's slack (allocator_fragmentation x the
// transient peak) is added to runtime_overhead from the start, as the allocator keeps it reserved.
timeline::RankTimeline simulate_rank(const plan::ShardingPlan& plan, const plan::Schedule& schedule);

// The attributes MFU, HFU and tokens/s are computed from: model_flops_per_step (per rank, the 6N +
// attention rule), tokens_per_step (every rank), peak_flops_per_s (one GPU, compute dtype).
void throughput_attributes(const plan::ShardingPlan& plan, timeline::RunTimeline& run);
// Every rank (sharing one timeline), with the run's attributes filled in.
timeline::RunTimeline simulate(const plan::ShardingPlan& plan, const plan::Schedule& schedule);

// Replays the ledger of `schedule` at the given op times: the memory samples of one rank.
std::vector<timeline::MemorySample> replay_memory(const plan::Schedule& schedule, const std::vector<timeline::OpRecord>& ops,
                                                  const MemoryByCategory& initial);

}  // namespace shardsim::sim
