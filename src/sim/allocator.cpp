#include "shardsim/sim/allocator.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "shardsim/plan/buffers.hpp"

namespace shardsim::sim {

AllocatorPeaks replay_allocator(const plan::ShardingPlan& plan, const plan::Schedule& schedule,
                                const std::vector<timeline::OpRecord>& ops, std::int64_t capacity) {
    const plan::BufferTable& table = plan.buffers();
    CachingAllocator a(capacity);
    auto on_device = [&](int id) {
        const plan::BufferSpec& b = table[id];
        return b.has_memory() && b.side == plan::Side::device;
    };
    // Persistent buffers first, on the compute stream, as a model and its optimizer are set up.
    for (const auto& b : table.all())
        if (b.persistent && on_device(b.id)) a.alloc(b.bytes, 0);
    // Then the ops' allocations and frees in the memory replay's order (replay_memory).
    struct Event {
        double t;
        int order, op;
        plan::Phase phase;
    };
    std::vector<Event> events;
    for (const auto& r : ops) {
        events.push_back({r.t_start, 1, r.op_id, plan::Phase::start});
        events.push_back({r.t_end, r.t_end > r.t_start ? 0 : 1, r.op_id, plan::Phase::end});
    }
    std::sort(events.begin(), events.end(), [](const Event& x, const Event& y) {
        if (x.t != y.t) return x.t < y.t;
        if (x.order != y.order) return x.order < y.order;
        if (x.op != y.op) return x.op < y.op;
        return x.phase == plan::Phase::start && y.phase == plan::Phase::end;
    });
    std::map<std::pair<int, int>, std::pair<int, std::int64_t>> live;  // (buffer, instance) -> block
    for (const auto& e : events) {
        const plan::Op& op = schedule.ops[static_cast<std::size_t>(e.op)];
        for (const auto& u : op.buffers)
            if (u.buffer >= 0 && u.alloc && u.alloc_phase == e.phase && on_device(u.buffer))
                live[{u.buffer, u.instance}] = a.alloc(table[u.buffer].bytes, static_cast<int>(op.stream));
        for (const auto& u : op.buffers)
            if (u.buffer >= 0 && u.free && u.free_phase == e.phase && on_device(u.buffer)) {
                const auto it = live.find({u.buffer, u.instance});
                if (it == live.end()) continue;  // freed before this step (a buffer carried across steps)
                a.release(it->second);
                live.erase(it);
            }
    }
    return a.peaks();
}

}  // namespace shardsim::sim
