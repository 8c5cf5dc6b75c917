// The training state as layout-free slices (executor.hpp StateSlice): what a checkpoint writes,
// and what a resumed run, under any sharding, reads back.
//   Which buffers: per unit, the parameters (every tensor, frozen ones too), and for trainable
//   tensors the fp32 master weights and the optimizer's moments, where the plan has them; the
//   offloaded 16-bit staging copy is loaded from the parameters. Everything else a step uses is rebuilt from these by the
//   step itself (gathers, gradients, buckets).
//   Which rows: a shard-arranged buffer holds its shard's rows of each tensor; a buffer of the
//   state partition holds this rank's rows of the partition (own_rows_offset).
#include <cstring>

#include "executor_impl.hpp"
#include "movement.hpp"

namespace shardsim::exec {

namespace {

struct Holding {
    std::string state;
    int buffer = -1;
    bool partition = false;  // rows of the state partition (else: of the buffer's own layout)
    bool saved = true;       // false: a copy of another state, read from it and not written
};

std::vector<Holding> holdings(const plan::ShardingPlan& p, int unit) {
    const plan::UnitBuffers& b = p.buffers().unit(unit);
    std::vector<Holding> out;
    if (b.params >= 0) out.push_back({"params", b.params, false});
    if (b.master >= 0) out.push_back({"master", b.master, true});
    // The offloaded 16-bit copy holds what the parameters hold once a step is over: it is read
    // from them, so that a checkpoint of a sharding without it serves one with it.
    if (b.staging >= 0) out.push_back({"params", b.staging, true, false});
    for (int k = 0; k < 2; ++k)
        if (b.moments[k] >= 0) out.push_back({"moment" + std::to_string(k), b.moments[k], true});
    return out;
}

// Calls f(slice key, element offset in the buffer) for each tensor's rows this rank holds in `h`.
template <class F>
void each_slice(const Executor::Impl& m, int unit, const Holding& h, F&& f) {
    const plan::ShardingPlan& p = *m.plan;
    const plan::BufferSpec& spec = p.buffers()[h.buffer];
    const plan::FlatLayout& layout = h.partition ? p.unit_plan(unit).state : plan::layout_of(p, spec);
    const std::int64_t k = m.arena->rank_in(layout, h.partition ? plan::kShardGroup : spec.group);
    for (const auto& c : layout.chunks) {
        StateSlice s;
        s.state = h.state;
        s.unit = unit;
        s.tensor = c.tensor;
        s.first_row = k * c.rows_per_rank;
        s.rows = c.owned_rows(k);
        s.row_elements = c.row_elements;
        s.total_rows = c.rows;
        s.dtype = spec.dtype;
        if (s.rows == 0) continue;
        const std::int64_t offset = h.partition ? own_rows_offset(p, spec, unit, c.tensor, k) : c.offset;
        f(std::move(s), offset, k);
    }
}

}  // namespace

std::vector<StateSlice> Executor::state_slices(bool writers_only) const {
    const Impl& m = *impl_;
    std::vector<StateSlice> out;
    for (const auto& u : plan_->units())
        for (const Holding& h : holdings(*plan_, u.index)) {
            if (!h.saved) continue;
            const Resolved buf = m.arena->get(h.buffer, 0);
            each_slice(m, u.index, h, [&](StateSlice s, std::int64_t offset, std::int64_t k) {
                if (writers_only && k != m.rank) return;
                const std::int64_t n = s.rows * s.row_elements * dtype_size(s.dtype);
                s.bytes.resize(static_cast<std::size_t>(n));
                const char* src = static_cast<const char*>(buf.data) + offset * dtype_size(s.dtype);
                transfer(m.dev, s.bytes.data(), plan::Side::host, src, buf.spec->side, n);
                out.push_back(std::move(s));
            });
        }
    m.dev.synchronize();
    return out;
}

void Executor::load_state(const StateReader& read) {
    Impl& m = *impl_;
    for (const auto& u : plan_->units())
        for (const Holding& h : holdings(*plan_, u.index)) {
            const Resolved buf = m.arena->get(h.buffer, 0);
            each_slice(m, u.index, h, [&](StateSlice s, std::int64_t offset, std::int64_t) {
                read(s);
                const std::int64_t n = s.rows * s.row_elements * dtype_size(s.dtype);
                SHARDSIM_ASSERT(static_cast<std::int64_t>(s.bytes.size()) == n, "state slice of the wrong size");
                char* dst = static_cast<char*>(buf.data) + offset * dtype_size(s.dtype);
                transfer(m.dev, dst, buf.spec->side, s.bytes.data(), plan::Side::host, n);
                m.dev.synchronize();  // s.bytes goes away with this slice
            });
        }
}

}  // namespace shardsim::exec
