#pragma once
// Timelines: what one step looked like on each rank — ops with start and end times, and memory
// by category at every op boundary. The simulator predicts one, the executor measures one, and
// both are written to and read from HDF5 in the same layout.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "shardsim/core/memory.hpp"
#include "shardsim/plan/schedule.hpp"

namespace shardsim::timeline {

struct OpRecord {
    int op_id = 0;
    plan::OpKind kind = plan::OpKind::forward;
    plan::OpStream stream = plan::OpStream::compute;
    int unit = -1;
    int micro_batch = -1;
    int step = 0;             // optimizer step (the executor may record several)
    double t_start = 0;       // seconds from the start of the step
    double t_end = 0;
    std::int64_t bytes = 0;   // collective size (nccl-tests) or copy bytes
    double flops = 0;
    int collective = -1;      // plan::CollectiveKind, -1 when not a collective
    std::int64_t ranks = 0;   // ranks of the collective's group
    MemoryByCategory net;     // bytes this op allocated minus bytes it freed, per category

    double duration() const { return t_end - t_start; }
};

struct MemorySample {
    double t = 0;
    int op_id = -1;  // the op at whose boundary the sample was taken (-1: initial state)
    int step = 0;
    MemoryByCategory bytes;
};

// Per-rank figures derived from a timeline (or read back from HDF5 attributes).
struct RankSummary {
    std::int64_t peak_bytes = 0;              // max over samples of device bytes
    MemoryByCategory peak_breakdown;          // the categories at that sample
    MemoryByCategory max_by_category;         // each category's own maximum
    int peak_op = -1;                         // op at whose boundary the peak was sampled
    std::int64_t host_peak_bytes = 0;
    MemoryByCategory model_state;             // persistent model states (first sample)
    double step_time = 0;
    double compute_time = 0;      // union of compute-stream op intervals
    double comm_time = 0;         // union of collective intervals
    double exposed_comm = 0;      // collective time not overlapped by compute
    double copy_time = 0;         // host<->device copies (offload)
    double host_time = 0;         // CPU optimizer
    double flops = 0;
    std::map<int, std::int64_t> comm_size_bytes;  // by collective kind: sum of sizes
    std::map<int, double> comm_wire_bytes;        // by collective kind: bytes on the wire per rank
    std::map<int, double> comm_kind_time;         // by collective kind: summed durations
    std::map<int, std::int64_t> comm_kind_ranks;  // by collective kind: largest group
    // The caching allocator's peaks (sim/allocator.hpp; 0: not known, e.g. a CPU run).
    std::int64_t allocated_peak_bytes = 0;
    std::int64_t reserved_peak_bytes = 0;
};

struct RankTimeline {
    int rank = 0;
    std::string device;  // "A100-SXM4-40GB (simulated)", "cpu", "NVIDIA H100 80GB HBM3"
    std::string host;
    std::vector<OpRecord> ops;
    std::vector<MemorySample> memory;
    // PyTorch's max_memory_allocated and max_memory_reserved as the caching allocator would have
    // them for this step (simulated; 0: not known). The samples' runtime_overhead includes the
    // reserved-but-not-allocated slack at the peak.
    std::int64_t allocated_peak_bytes = 0;
    std::int64_t reserved_peak_bytes = 0;

    RankSummary summarize() const;
    // The optimizer steps recorded (ascending), and one of them alone (its times unchanged).
    std::vector<int> steps() const;
    RankTimeline only_step(int step) const;
};

// The plan's buffer table as the file carries it (/buffers), and which buffers each op of the
// schedule touches (/op_buffers): a reader can tell what an op read, wrote, allocated or freed.
struct BufferInfo {
    std::int32_t id = -1;
    std::string name;      // "block.3 gathered params"
    std::string category;  // a memory category, as the memory rows name it
    std::string dtype;
    std::int64_t bytes = 0;
    std::int32_t unit = -1;    // -1: not one unit's
    std::int32_t parent = -1;  // a view of `parent` at `offset` bytes (no memory of its own)
    std::int64_t offset = 0;
    bool host = false, pinned = false, persistent = false;
};
struct OpBufferUse {
    std::int32_t op_id = 0;
    std::int32_t buffer = -1;
    std::int32_t instance = 0;  // the micro-batch, for buffers that exist once per micro-batch in flight
    std::string role;           // plan::role_name
    std::string access;         // letters of read, write, alloc, free: "rw", "wa", "waf"
};
// The plan's buffers and ops' uses of them, for a timeline file.
void describe_buffers(const plan::ShardingPlan& plan, const plan::Schedule& schedule, std::vector<BufferInfo>& buffers,
                      std::vector<OpBufferUse>& uses);

// One run: every rank's timeline plus what produced it.
struct RunTimeline {
    std::string mode;  // "simulate" | "run"
    std::string backend;  // "analytical", "mpi", "nccl"
    std::string job_text;
    std::string topology_text;
    std::string job_name;
    std::int64_t world_size = 1;
    std::int64_t gpu_memory_bytes = 0;
    std::int64_t host_memory_bytes = 0;  // per node
    std::int64_t gpus_per_node = 1;      // ranks that share a node's host memory
    // Host memory beyond what the timelines' `offloaded` samples hold, per rank: the training
    // process itself (libraries, CUDA's host side, the data loader), and what pinning rounds up
    // (torch's pinned-memory cache takes powers of two). On a CPU topology the device is host memory.
    std::int64_t host_process_bytes = 0;
    std::int64_t host_pinned_slack_bytes = 0;
    std::int64_t host_is_device = 0;
    std::int64_t reported_host_bytes = 0;  // host use a published run reports for this job (job.reported_host_gb; 0: none)
    std::int64_t steps = 1;
    std::int64_t param_count = 0;
    std::int64_t trainable_param_count = 0;
    // false: the run ended before its last step (a signal) or had not finished when this copy was
    // written (a file left by a run that died); `completion` says which.
    bool complete = true;
    std::string completion = "finished";
    std::vector<std::string> unit_names;  // OpRecord::unit indexes this
    std::vector<BufferInfo> buffers;       // the plan's buffer table (empty in files written before it)
    std::vector<OpBufferUse> op_buffers;   // which buffers each op touched
    std::map<std::string, std::string> attributes;  // further root attributes (e.g. Slurm job id)
    // Ranks that share a timeline share one entry: `timelines[class_of_rank[r]]`.
    std::vector<RankTimeline> timelines;
    std::vector<int> class_of_rank;

    const RankTimeline& rank(std::int64_t r) const {
        return timelines.at(static_cast<std::size_t>(class_of_rank.at(static_cast<std::size_t>(r))));
    }
};

// The record of a schedule op as the plan describes it (bytes, FLOPs, collective, the ledger's
// net change per category); the engines set its times, and the executor its measured figures.
OpRecord planned_record(const plan::Op& op, double t_start, double t_end, int step = 0);

// Length of the union of intervals, and of the part of `a` not covered by `b`.
double union_length(std::vector<std::pair<double, double>> intervals);
double uncovered_length(std::vector<std::pair<double, double>> a, std::vector<std::pair<double, double>> b);

// The union of a set of intervals, merged once, answering "how much of [a, b) does it cover" in
// O(log n): reports ask this once per collective, and re-merging the compute intervals for each
// (as a plain uncovered_length call would) made them quadratic in the number of ops.
class IntervalCover {
public:
    explicit IntervalCover(std::vector<std::pair<double, double>> intervals);
    double covered(double a, double b) const;

private:
    std::vector<std::pair<double, double>> merged_;  // disjoint, sorted
    std::vector<double> prefix_;                     // prefix_[i]: summed length of merged_[0, i)
};

}  // namespace shardsim::timeline
