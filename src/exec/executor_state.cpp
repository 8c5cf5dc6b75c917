// One rank's persistent state, allocated and initialised from the plan's layouts.
#include <cstring>

#include "executor_impl.hpp"
#include "shardsim/core/half.hpp"
#include "shardsim/nn/init.hpp"

namespace shardsim::exec {

using device::Device;
using device::Tensor;
using device::Buffer;
using device::TrackingAllocator;
using nn::initial_values;

namespace {

// Host bytes of `values` in `dtype` (16-bit values rounded to nearest-even).
std::vector<unsigned char> encode(const std::vector<float>& values, DType dtype) {
    std::vector<unsigned char> out(values.size() * static_cast<std::size_t>(dtype_size(dtype)));
    if (dtype == DType::fp32) {
        std::memcpy(out.data(), values.data(), out.size());
        return out;
    }
    auto* h = reinterpret_cast<std::uint16_t*>(out.data());
    for (std::size_t i = 0; i < values.size(); ++i)
        h[i] = dtype == DType::bf16 ? float_to_bf16(values[i]) : float_to_fp16(values[i]);
    return out;
}

// Fills `buf` (device or host) with this rank's initial values of `layout`: the rows of each
// tensor that `rank` owns, padding zero.
void fill_initial(Device& dev, const Buffer& buf, const plan::FlatLayout& layout, std::int64_t rank,
                  const model::Unit& unit, std::uint64_t seed, DType dtype) {
    std::vector<float> shard(static_cast<std::size_t>(layout.shard.count()), 0.0f);
    for (const auto& c : layout.chunks) {
        const std::int64_t rows = c.owned_rows(rank);
        if (rows == 0) continue;
        const auto v = initial_values(seed, unit.tensors[static_cast<std::size_t>(c.tensor)],
                                      rank * c.rows_per_rank * c.row_elements, rows * c.row_elements);
        std::copy(v.begin(), v.end(), shard.begin() + c.offset);
    }
    const auto bytes = encode(shard, dtype);
    if (buf.category() == MemCategory::offloaded)
        std::memcpy(buf.data(), bytes.data(), bytes.size());
    else
        dev.copy_from_host(buf.data(), bytes.data(), static_cast<std::int64_t>(bytes.size()));
}

Buffer zeros(Device& dev, std::int64_t bytes, MemCategory c, const std::string& what) {
    Buffer b(dev.allocator(), bytes, c, what);
    if (!b) return b;
    if (c == MemCategory::offloaded)
        std::memset(b.data(), 0, static_cast<std::size_t>(bytes));
    else
        dev.fill_zero(b.data(), bytes);
    return b;
}

}  // namespace

comm::Communicator& Executor::Impl::group(int g) const { return *comms.at(static_cast<std::size_t>(g)); }

void Executor::Impl::allocate_state() {
    const auto& p = *plan;
    const auto& prec = p.precision();
    const std::uint64_t seed = p.scenario().job.seed;
    const bool offload = p.offload_optimizer();
    const std::int64_t param_rank = p.param_shards() > 1 ? shard_rank() : 0;
    const std::int64_t state_rank = p.state_shards() > 1 ? shard_rank() : 0;
    TrackingAllocator::set_op(-1);
    units.resize(p.units().size());

    if (!p.shards_grads()) {
        std::int64_t total = 0;
        for (int u : p.grad_order()) {
            units[static_cast<std::size_t>(u)].full_grads_offset = total;
            total += p.grad_shard_bytes(u).count();
        }
        full_grads = zeros(dev, total, MemCategory::grads, "gradients (replicated)");
    }
    for (const auto& unit : p.units()) {
        const int u = unit.index;
        const auto& up = p.unit_plan(u);
        UnitState& s = units[static_cast<std::size_t>(u)];
        s.params = Buffer(dev.allocator(), p.param_shard_bytes(u).count(),
                          p.offload_params() ? MemCategory::offloaded : MemCategory::params, unit.name + " params");
        fill_initial(dev, s.params, up.params, param_rank, unit, seed, prec.params);
        if (p.shards_grads() && p.grad_shard_bytes(u).count() > 0)
            s.grads = zeros(dev, p.grad_shard_bytes(u).count(), MemCategory::grads, unit.name + " gradient shard");
        const MemCategory states = offload ? MemCategory::offloaded : MemCategory::optimizer_states;
        if (p.master_bytes(u).count() > 0) {
            s.master = Buffer(dev.allocator(), p.master_bytes(u).count(), offload ? MemCategory::offloaded : MemCategory::master_params,
                              unit.name + " master weights");
            fill_initial(dev, s.master, up.state, state_rank, unit, seed, DType::fp32);
        }
        const std::int64_t per_moment = prec.moment_count ? p.optimizer_state_bytes(u).count() / prec.moment_count : 0;
        for (int m = 0; m < prec.moment_count; ++m)
            s.moments[m] = zeros(dev, per_moment, states, unit.name + " optimizer state " + std::to_string(m));
        if (offload) {
            s.host_grads = zeros(dev, p.host_grad_bytes(u).count(), MemCategory::offloaded, unit.name + " host gradients");
            if (!p.offload_params()) {
                // Without master weights the staging copy is what the host optimizer updates.
                s.staging = Buffer(dev.allocator(), p.state_update_bytes(u).count(), MemCategory::offloaded, unit.name + " update staging");
                fill_initial(dev, s.staging, up.state, state_rank, unit, seed, prec.params);
            }
        }
        if (!p.gathers_params()) build_resident_views(u);
    }
}

// Parameters that are never gathered: views into the resident (full) parameter buffer.
void Executor::Impl::build_resident_views(int u) {
    const auto& up = plan->unit_plan(u);
    const auto& unit = plan->units()[static_cast<std::size_t>(u)];
    UnitState& s = units[static_cast<std::size_t>(u)];
    s.param_views.tensors.clear();
    for (const auto& c : up.full_params.chunks)
        s.param_views.tensors.push_back(
            Tensor{element(s.params, c.offset, plan->precision().params), plan->precision().params, unit.tensors[static_cast<std::size_t>(c.tensor)].shape});
}

}  // namespace shardsim::exec
