#pragma once
// The executor's inside: an arena that holds the plan's buffers ([Note: buffer table]), one short
// function per op kind that works on the buffers its op names (executor_ops.cpp), and what the
// measurement records. Private to src/exec/.
#include <map>
#include <memory>
#include <mutex>

#include "shardsim/comm/counting.hpp"
#include "shardsim/exec/executor.hpp"

namespace shardsim::exec {

using device::Buffer;
using device::Device;
using device::TrackingAllocator;
using nn::Transformer;

// A buffer of the table as one op sees it: its spec, where it is, and (for a shard) which rank's
// shard of its layout it holds.
struct Resolved {
    const plan::BufferSpec* spec = nullptr;
    void* data = nullptr;
    std::int64_t rank = 0;

    explicit operator bool() const { return data != nullptr; }
};

// Every buffer of the table on this rank: persistent ones from construction (filled with their
// initial values), transient ones between the ops that allocate and free them, one instance per
// micro-batch where the ops say so; views resolve into their parent. Lanes on different threads
// allocate and free, hence the lock.
class Arena {
public:
    Arena(const plan::ShardingPlan& plan, Device& device, const Communicators& comms);

    Resolved get(int buffer, int instance) const;
    void allocate(int buffer, int instance);
    void release(int buffer, int instance);
    // This rank's shard index of a layout split over `shards` ranks of `group` (0 when unsplit).
    std::int64_t rank_in(const plan::FlatLayout& layout, int group) const;

private:
    void allocate_persistent(const plan::BufferSpec& b);

    const plan::ShardingPlan& plan_;
    Device& dev_;
    const Communicators& comms_;
    std::vector<Buffer> persistent_;  // by buffer id
    mutable std::mutex mu_;
    std::map<std::pair<int, int>, Buffer> live_;  // (buffer, instance) -> memory
};

struct MemorySampleRecord {
    int op = -1;
    plan::Phase phase = plan::Phase::start;
    MemoryByCategory bytes;
};

struct Executor::Impl {
    Impl(plan::PlanPtr p, const plan::Schedule& s, Device& d, Device& h, Communicators c, int r);

    plan::PlanPtr plan;
    plan::Schedule schedule;
    Device& dev;
    Device& host;
    comm::CallLog calls;  // what went through the library, per op
    std::vector<std::unique_ptr<comm::CountingCommunicator>> counted;
    Communicators comms;  // the counting wrappers, by group
    int rank;
    int step = 0;
    std::unique_ptr<Arena> arena;
    std::unique_ptr<Transformer> model;
    std::unique_ptr<Lanes> lanes;

    // Measurement
    std::mutex record_mu;
    std::vector<MemorySampleRecord> samples;
    MemoryByCategory initial_measured;  // before the first op of the first step
    MemoryByCategory leftover;          // after the last step's ops, minus the initial state
    std::vector<double> micro_losses;
    double record_seconds = 0;
    double step_seconds = 0;
    double time_offset = 0;
    std::int64_t runtime_bytes = 0;

    void run_op(const plan::Op& op);  // executor_ops.cpp
    comm::Communicator& group(int g) const { return *comms.at(static_cast<std::size_t>(g)); }
};

}  // namespace shardsim::exec
