#pragma once
// The executor's state: one rank's persistent buffers laid out by the plan, the transient
// buffers of ops in flight, and what the measurement records. Private to src/exec/.
#include <map>
#include <mutex>

#include "shardsim/exec/executor.hpp"

namespace shardsim::exec {

using device::Device;
using device::Buffer;
using nn::Transformer;
using device::CallTensors;
using device::UnitTensors;

// Buffers of one unit that exist once per micro-batch in flight: the compute stream may start
// micro-batch m+1's backward of a unit before the communication stream has reduced micro-batch
// m's gradients of it. Lanes on different threads reach them, hence the lock.
class PerMicroBatch {
public:
    PerMicroBatch() = default;
    // Moved only while the state is built, before any lane runs.
    PerMicroBatch(PerMicroBatch&& o) noexcept : bufs_(std::move(o.bufs_)) {}
    void put(int mb, Buffer b) {
        std::lock_guard<std::mutex> lock(mu_);
        bufs_[mb] = std::move(b);
    }
    Buffer take(int mb) {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = bufs_.find(mb);
        if (it == bufs_.end()) return Buffer();
        Buffer b = std::move(it->second);
        bufs_.erase(it);
        return b;
    }
    void* data(int mb) {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = bufs_.find(mb);
        return it == bufs_.end() ? nullptr : it->second.data();
    }

private:
    std::mutex mu_;
    std::map<int, Buffer> bufs_;
};

// [Note: FSDP tensors] (plan/layout.hpp) names the arrangements these buffers hold.
struct UnitState {
    // Persistent (allocated once, counted in the plan's persistent state)
    Buffer params;      // sharded or full parameters, param dtype; on the host when offloaded
    Buffer grads;       // sharded gradients (grad dtype) when gradients are sharded on the device
    std::int64_t full_grads_offset = -1;  // bytes into Impl::full_grads when gradients are replicated
    Buffer master;      // fp32 master shard
    Buffer moments[2];  // optimizer states
    Buffer host_grads;  // offload: fp32 gradient shard on the host
    Buffer staging;     // offload, params on the device: the updated 16-bit shard on the host
    // Transient
    Buffer upload;      // offloaded parameter shard uploaded for its all-gather
    Buffer gathered;    // unsharded parameters while the unit is live
    PerMicroBatch unit_grads;  // unsharded gradients of the unit until reduced
    PerMicroBatch reduced;     // reduce-scatter output until its chain ends
    Buffer update;      // offload: the uploaded update shard, for the post-step all-gather
    UnitTensors param_views;
    UnitTensors grad_views;  // rebuilt by each backward call on the compute lane
};

struct MemorySampleRecord {
    int op = -1;
    plan::Phase phase = plan::Phase::start;
    MemoryByCategory bytes;
};

struct Executor::Impl {
    Impl(plan::PlanPtr p, const plan::Schedule& s, Device& d, Device& h, Communicators c, int r)
        : plan(std::move(p)), schedule(s), dev(d), host(h), comms(c), rank(r) {}

    plan::PlanPtr plan;
    plan::Schedule schedule;
    Device& dev;
    Device& host;
    Communicators comms;
    int rank;
    int step = 0;
    std::unique_ptr<Transformer> model;
    std::unique_ptr<Lanes> lanes;
    std::vector<UnitState> units;
    Buffer full_grads;  // replicated gradients of every unit, in grad_order

    // Measurement
    std::mutex record_mu;
    std::vector<MemorySampleRecord> samples;
    std::vector<std::int64_t> measured_size;  // per op: collective size actually passed (-1: none)
    MemoryByCategory initial_measured;        // before the first op of the first step
    MemoryByCategory leftover;                // after the last step's ops, minus the initial state
    std::vector<double> micro_losses;
    double record_seconds = 0;
    double step_seconds = 0;
    double time_offset = 0;
    std::int64_t runtime_bytes = 0;

    // Set-up (executor_state.cpp)
    void allocate_state();
    void build_resident_views(int unit);
    // Ops (executor_ops.cpp)
    void run_op(const plan::Op& op);
    // Helpers
    std::int64_t shard_rank() const { return group(plan::kShardGroup).rank(); }
    comm::Communicator& group(int g) const;
    CallTensors call_params(int call);
    CallTensors call_grads(int call, int micro_batch);
};

// Element `offset` of a buffer of `dtype`.
inline void* element(const Buffer& b, std::int64_t offset, DType dtype) {
    return static_cast<char*>(b.data()) + offset * dtype_size(dtype);
}

}  // namespace shardsim::exec
