#pragma once
// The summary of a run — predicted or measured — as JSON and as a text table. `simulate`,
// `run` and `report` print it from the same function, so the keys mean the same everywhere.
#include <string>

#include "shardsim/io/json.hpp"
#include "shardsim/timeline/timeline.hpp"

namespace shardsim::report {

// Keys: world_size, fits, gpu_memory_bytes, step_time_s, compute_time_s, comm_time_s,
// exposed_comm_s, comm_bytes_per_rank (by kind: size, wire, time, algbw, busbw),
// param_count, trainable_param_count, host_memory_bytes, host_peak_bytes_per_node, and
// `ranks`: one entry per group of ranks with identical figures (peak_bytes, peak_by_category,
// max_by_category, model_state_bytes, host_peak_bytes, peak_op, ...).
io::Json summary_json(const timeline::RunTimeline& run);
// What one rank needs of its node's host memory: what it offloads at its peak, the process
// itself (host.process_gib), what pinning rounds up, and on a CPU topology its device peak (the
// device is host memory). host_peak_bytes_per_node sums it over a node's ranks.
std::int64_t host_per_rank(const timeline::RunTimeline& run, const timeline::RankSummary& s);

// The text report: memory by category per rank group, fit, time split, collectives and the
// op whose communication is most exposed.
std::string summary_text(const timeline::RunTimeline& run);
// "  throughput  N tokens/s, MFU x%, HFU y%" from summary_json's keys ("" when it has none).
std::string throughput_line(const io::Json& summary);

// "all_gather block.3 mb1"
std::string op_name(const timeline::RunTimeline& run, const timeline::OpRecord& op);

// Groups ranks whose summaries are identical: each entry lists its ranks.
struct RankGroup {
    std::vector<std::int64_t> ranks;
    timeline::RankSummary summary;
    const timeline::RankTimeline* timeline = nullptr;
};
std::vector<RankGroup> group_ranks(const timeline::RunTimeline& run);
std::string rank_list(const std::vector<std::int64_t>& ranks);  // "0-5", "0,2,4"

// The op whose collective time is least hidden by compute, with its exposed seconds.
struct Exposure {
    int op = -1;
    double exposed_s = 0;
};
Exposure worst_exposed(const timeline::RankTimeline& tl);

}  // namespace shardsim::report
