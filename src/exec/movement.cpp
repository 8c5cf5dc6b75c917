#include "movement.hpp"

#include <cstring>

namespace shardsim::exec {

namespace {

const plan::ChunkLayout& chunk_for(const plan::FlatLayout& l, int tensor) {
    for (const auto& c : l.chunks)
        if (c.tensor == tensor) return c;
    throw Error("internal: tensor " + std::to_string(tensor) + " has no chunk in this layout");
}

char* at(void* base, std::int64_t elements, DType dt) { return static_cast<char*>(base) + elements * dtype_size(dt); }

}  // namespace

Tensor flat(void* data, DType dt, std::int64_t n) { return Tensor{data, dt, {n}}; }

void copy_elements(Device& dev, const void* src, DType sdt, void* dst, DType ddt, std::int64_t n) {
    if (n <= 0) return;
    if (sdt == ddt) return dev.copy(dst, src, n * dtype_size(sdt));
    device::Copy2dOp op;
    op.src = src;
    op.src_dtype = sdt;
    op.dst = dst;
    op.dst_dtype = ddt;
    op.rows = 1;
    op.cols = n;
    op.src_ld = n;
    op.dst_ld = n;
    dev.copy2d(op);
}

void transfer(Device& dev, void* dst, plan::Side dst_side, const void* src, plan::Side src_side, std::int64_t bytes) {
    if (bytes <= 0) return;
    using plan::Side;
    if (dst_side == Side::device && src_side == Side::device) return dev.copy(dst, src, bytes);
    if (dst_side == Side::device) return dev.copy_from_host(dst, src, bytes);
    if (src_side == Side::device) return dev.copy_to_host(dst, src, bytes);
    std::memcpy(dst, src, static_cast<std::size_t>(bytes));
}

void pack_all(Device& dev, const plan::ShardingPlan& plan, const Resolved& src, const Resolved& dst) {
    const plan::FlatLayout& full = plan::layout_of(plan, *src.spec);
    const plan::FlatLayout& sharded = plan::layout_of(plan, *dst.spec);
    const DType sdt = src.spec->dtype, ddt = dst.spec->dtype;
    dev.fill_zero(dst.data, dst.spec->bytes);
    for (const auto& c : sharded.chunks) {
        const auto& f = chunk_for(full, c.tensor);
        for (std::int64_t k = 0; k < sharded.shards; ++k)
            copy_elements(dev, at(src.data, f.offset + k * c.rows_per_rank * c.row_elements, sdt), sdt,
                          at(dst.data, k * sharded.shard.count() + c.offset, ddt), ddt, c.owned_rows(k) * c.row_elements);
    }
}

void unpack_all(Device& dev, const plan::ShardingPlan& plan, const Resolved& src, const Resolved& dst) {
    const plan::FlatLayout& sharded = plan::layout_of(plan, *src.spec);
    const plan::FlatLayout& full = plan::layout_of(plan, *dst.spec);
    const DType sdt = src.spec->dtype, ddt = dst.spec->dtype;
    for (const auto& c : sharded.chunks) {
        const auto& f = chunk_for(full, c.tensor);
        for (std::int64_t k = 0; k < sharded.shards; ++k)
            copy_elements(dev, at(src.data, k * sharded.shard.count() + c.offset, sdt), sdt,
                          at(dst.data, f.offset + k * c.rows_per_rank * c.row_elements, ddt), ddt, c.owned_rows(k) * c.row_elements);
    }
}

void pack_shard(Device& dev, const plan::ShardingPlan& plan, const Resolved& src, const Resolved& dst) {
    const plan::FlatLayout& full = plan::layout_of(plan, *src.spec);
    const plan::FlatLayout& sharded = plan::layout_of(plan, *dst.spec);
    const DType sdt = src.spec->dtype, ddt = dst.spec->dtype;
    const std::int64_t k = dst.rank;
    for (const auto& c : sharded.chunks)
        copy_elements(dev, at(src.data, chunk_for(full, c.tensor).offset + k * c.rows_per_rank * c.row_elements, sdt), sdt,
                      at(dst.data, c.offset, ddt), ddt, c.owned_rows(k) * c.row_elements);
}

std::int64_t own_rows_offset(const plan::ShardingPlan& plan, const plan::BufferSpec& b, std::size_t chunk, std::int64_t rank) {
    const plan::ChunkLayout& c = plan.unit_plan(b.unit).state.chunks.at(chunk);
    const plan::FlatLayout& l = plan::layout_of(plan, b);
    SHARDSIM_ASSERT(l.shards == 1 || l.shards == plan.unit_plan(b.unit).state.shards,
                    "buffer " + b.name + " holds neither all rows nor the state partition's shard");
    const std::int64_t offset = chunk_for(l, c.tensor).offset;
    return l.shards == 1 ? offset + rank * c.rows_per_rank * c.row_elements : offset;
}

void copy_own_rows(Device& dev, const plan::ShardingPlan& plan, const Resolved& src, const Resolved& dst, std::int64_t rank) {
    const DType sdt = src.spec->dtype, ddt = dst.spec->dtype;
    const bool same_side = src.spec->side == dst.spec->side;
    SHARDSIM_ASSERT(same_side || sdt == ddt, "copying " + src.spec->name + " to " + dst.spec->name + " would convert across sides");
    const auto& chunks = plan.unit_plan(src.spec->unit).state.chunks;
    for (std::size_t i = 0; i < chunks.size(); ++i) {
        const std::int64_t n = chunks[i].owned_rows(rank) * chunks[i].row_elements;
        void* d = at(dst.data, own_rows_offset(plan, *dst.spec, i, rank), ddt);
        const void* s = at(src.data, own_rows_offset(plan, *src.spec, i, rank), sdt);
        if (same_side && src.spec->side == plan::Side::device)
            copy_elements(dev, s, sdt, d, ddt, n);
        else
            transfer(dev, d, dst.spec->side, s, src.spec->side, n * dtype_size(sdt));
    }
}

void land(Device& math, const plan::ShardingPlan& plan, const Resolved& reduced, const Resolved& result, std::int64_t rank) {
    if (result.spec->arrangement == plan::Arrangement::shard)
        return math.accumulate(flat(result.data, result.spec->dtype, result.spec->elements()),
                               flat(reduced.data, reduced.spec->dtype, result.spec->elements()));
    copy_own_rows(math, plan, reduced, result, rank);
}

}  // namespace shardsim::exec
