// The arena: the plan's buffers on this rank ([Note: buffer table]).
#include <cstring>

#include "executor_impl.hpp"
#include "shardsim/core/half.hpp"
#include "shardsim/nn/init.hpp"

namespace shardsim::exec {

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

void zero(Device& dev, const Buffer& b, plan::Side side) {
    if (side == plan::Side::host)
        std::memset(b.data(), 0, static_cast<std::size_t>(b.bytes()));
    else
        dev.fill_zero(b.data(), b.bytes());
}

// This rank's initial values of `layout`: the rows of each tensor that `rank` owns, padding zero.
void fill_weights(Device& dev, const Buffer& buf, plan::Side side, const plan::FlatLayout& layout, std::int64_t rank,
                  const model::Unit& unit, std::uint64_t seed, DType dtype) {
    std::vector<float> shard(static_cast<std::size_t>(layout.shard.count()), 0.0f);
    for (const auto& c : layout.chunks) {
        const std::int64_t rows = c.owned_rows(rank);
        if (rows == 0) continue;
        const auto v = nn::initial_values(seed, unit.tensors[static_cast<std::size_t>(c.tensor)], rank * c.rows_per_rank * c.row_elements,
                                          rows * c.row_elements);
        std::copy(v.begin(), v.end(), shard.begin() + c.offset);
    }
    const auto bytes = encode(shard, dtype);
    if (side == plan::Side::host)
        std::memcpy(buf.data(), bytes.data(), bytes.size());
    else
        dev.copy_from_host(buf.data(), bytes.data(), static_cast<std::int64_t>(bytes.size()));
}

}  // namespace

Arena::Arena(const plan::ShardingPlan& plan, Device& device, const Communicators& comms)
    : plan_(plan), dev_(device), comms_(comms), persistent_(plan.buffers().all().size()) {
    TrackingAllocator::set_op(-1);
    for (const auto& b : plan.buffers().all())
        if (b.persistent && b.has_memory()) allocate_persistent(b);
}

std::int64_t Arena::rank_in(const plan::FlatLayout& layout, int group) const {
    return layout.shards > 1 ? comms_.at(static_cast<std::size_t>(group))->rank() : 0;
}

void Arena::allocate_persistent(const plan::BufferSpec& b) {
    Buffer& buf = persistent_[static_cast<std::size_t>(b.id)];
    buf = Buffer(dev_.allocator(), b.bytes, b.category, b.name);
    if (b.init == plan::Init::zeros) zero(dev_, buf, b.side);
    if (b.init == plan::Init::weights) {
        const plan::FlatLayout& l = plan::layout_of(plan_, b);
        fill_weights(dev_, buf, b.side, l, rank_in(l, b.group), plan_.units()[static_cast<std::size_t>(b.unit)],
                     plan_.scenario().job.seed, b.dtype);
    }
}

Resolved Arena::get(int buffer, int instance) const {
    const plan::BufferSpec& b = plan_.buffers()[buffer];
    SHARDSIM_ASSERT(b.owner == plan::Owner::executor, "buffer " + b.name + " is the model's");
    Resolved r;
    r.spec = &b;
    if (b.is_view()) {
        r.data = static_cast<char*>(get(b.parent, 0).data) + b.offset;
    } else if (b.persistent) {
        r.data = persistent_[static_cast<std::size_t>(b.id)].data();
    } else {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = live_.find({buffer, instance});
        SHARDSIM_ASSERT(it != live_.end(), "buffer " + b.name + " (instance " + std::to_string(instance) + ") is not allocated");
        r.data = it->second.data();
    }
    if (b.arrangement == plan::Arrangement::shard) r.rank = rank_in(plan::layout_of(plan_, b), b.group);
    return r;
}

void Arena::allocate(int buffer, int instance) {
    const plan::BufferSpec& b = plan_.buffers()[buffer];
    SHARDSIM_ASSERT(!b.persistent && b.has_memory(), "buffer " + b.name + " is not allocated by ops");
    Buffer buf(dev_.allocator(), b.bytes, b.category, b.name);
    if (b.init == plan::Init::zeros) zero(dev_, buf, b.side);
    std::lock_guard<std::mutex> lock(mu_);
    const bool fresh = live_.emplace(std::make_pair(buffer, instance), std::move(buf)).second;
    SHARDSIM_ASSERT(fresh, "buffer " + b.name + " (instance " + std::to_string(instance) + ") is allocated twice");
}

void Arena::release(int buffer, int instance) {
    Buffer freed;
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = live_.find({buffer, instance});
        SHARDSIM_ASSERT(it != live_.end(),
                        "buffer " + plan_.buffers()[buffer].name + " (instance " + std::to_string(instance) + ") is freed twice");
        freed = std::move(it->second);
        live_.erase(it);
    }
}

}  // namespace shardsim::exec
