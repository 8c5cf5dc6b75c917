#include "movement.hpp"

#include <cstring>

namespace shardsim::exec {

namespace {

char* at(void* base, std::int64_t elements, DType dt) { return static_cast<char*>(base) + elements * dtype_size(dt); }

const plan::ChunkLayout& chunk_of(const plan::FlatLayout& l, int unit, int tensor) {
    const plan::ChunkLayout* c = plan::find_chunk(l, unit, tensor);
    if (!c) throw Error("internal: tensor " + std::to_string(tensor) + " of unit " + std::to_string(unit) + " is not in this layout");
    return *c;
}

bool has_layout(const Resolved& b) { return b.spec->layout != plan::LayoutRef::none; }

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

void pack_into(Device& dev, const plan::ShardingPlan& plan, const std::vector<Resolved>& sources, const Resolved& dst) {
    const DType ddt = dst.spec->dtype;
    if (!has_layout(dst)) {
        SHARDSIM_ASSERT(sources.size() == 1, "buffer " + dst.spec->name + " has no layout to pack several sources into");
        return copy_elements(dev, sources.front().data, sources.front().spec->dtype, dst.data, ddt, dst.spec->elements());
    }
    const plan::FlatLayout& to = plan::layout_of(plan, *dst.spec);
    const bool gathered = dst.spec->arrangement == plan::Arrangement::gathered;
    if (gathered) dev.fill_zero(dst.data, dst.spec->bytes);
    for (const auto& c : to.chunks) {
        const Resolved* src = nullptr;
        const plan::ChunkLayout* f = nullptr;
        for (const auto& s : sources)
            if ((f = plan::find_chunk(plan::layout_of(plan, *s.spec), c.unit, c.tensor))) {
                src = &s;
                break;
            }
        SHARDSIM_ASSERT(src, "no source lays out tensor " + std::to_string(c.tensor) + " of unit " + std::to_string(c.unit));
        const DType sdt = src->spec->dtype;
        for (std::int64_t k = 0; k < (gathered ? to.shards : 1); ++k)
            copy_elements(dev, at(src->data, f->offset + k * c.rows_per_rank * c.row_elements, sdt), sdt,
                          at(dst.data, k * to.shard.count() + c.offset, ddt), ddt, gathered ? c.owned_rows(k) * c.row_elements : c.rows * c.row_elements);
    }
}

void unpack_all(Device& dev, const plan::ShardingPlan& plan, const Resolved& src, const Resolved& dst) {
    const plan::FlatLayout& sharded = plan::layout_of(plan, *src.spec);
    const plan::FlatLayout& full = plan::layout_of(plan, *dst.spec);
    const DType sdt = src.spec->dtype, ddt = dst.spec->dtype;
    for (const auto& c : sharded.chunks) {
        const auto& f = chunk_of(full, c.unit, c.tensor);
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
        copy_elements(dev, at(src.data, chunk_of(full, c.unit, c.tensor).offset + k * c.rows_per_rank * c.row_elements, sdt), sdt,
                      at(dst.data, c.offset, ddt), ddt, c.owned_rows(k) * c.row_elements);
}

std::int64_t own_rows_offset(const plan::ShardingPlan& plan, const plan::BufferSpec& b, int unit, int tensor, std::int64_t rank) {
    const plan::FlatLayout& state = plan.unit_plan(unit).state;
    const plan::ChunkLayout& sc = chunk_of(state, unit, tensor);
    const plan::FlatLayout& l = plan::layout_of(plan, b);
    SHARDSIM_ASSERT(l.shards == 1 || l.shards == state.shards, "buffer " + b.name + " holds neither all rows nor the state partition's shard");
    const std::int64_t offset = chunk_of(l, unit, tensor).offset;
    return l.shards == 1 ? offset + rank * sc.rows_per_rank * sc.row_elements : offset;
}

void copy_own_rows(Device& dev, const plan::ShardingPlan& plan, const Resolved& src, const Resolved& dst, std::int64_t rank) {
    const DType sdt = src.spec->dtype, ddt = dst.spec->dtype;
    const bool same_side = src.spec->side == dst.spec->side;
    SHARDSIM_ASSERT(same_side || sdt == ddt, "copying " + src.spec->name + " to " + dst.spec->name + " would convert across sides");
    const int unit = src.spec->unit;
    for (const auto& c : plan.unit_plan(unit).state.chunks) {
        const std::int64_t n = c.owned_rows(rank) * c.row_elements;
        void* d = at(dst.data, own_rows_offset(plan, *dst.spec, unit, c.tensor, rank), ddt);
        const void* s = at(src.data, own_rows_offset(plan, *src.spec, unit, c.tensor, rank), sdt);
        if (same_side && src.spec->side == plan::Side::device)
            copy_elements(dev, s, sdt, d, ddt, n);
        else
            transfer(dev, d, dst.spec->side, s, src.spec->side, n * dtype_size(sdt));
    }
}

void land(Device& math, const plan::ShardingPlan& plan, const Resolved& reduced, const std::vector<Resolved>& results,
          std::int64_t rank) {
    for (const auto& c : plan::layout_of(plan, *reduced.spec).chunks) {
        const Resolved* res = nullptr;
        for (const auto& r : results)
            if (r.spec->unit == c.unit) res = &r;
        if (!res) continue;
        const auto& sc = chunk_of(plan.unit_plan(c.unit).state, c.unit, c.tensor);
        const std::int64_t n = sc.owned_rows(rank) * sc.row_elements;
        char* s = at(reduced.data, own_rows_offset(plan, *reduced.spec, c.unit, c.tensor, rank), reduced.spec->dtype);
        char* d = at(res->data, own_rows_offset(plan, *res->spec, c.unit, c.tensor, rank), res->spec->dtype);
        if (res->spec->arrangement == plan::Arrangement::shard)
            math.accumulate(flat(d, res->spec->dtype, n), flat(s, reduced.spec->dtype, n));
        else
            copy_elements(math, s, reduced.spec->dtype, d, res->spec->dtype, n);
    }
}

}  // namespace shardsim::exec
