#include "shardsim/plan/layout.hpp"

#include <algorithm>

namespace shardsim::plan {

std::int64_t ChunkLayout::owned_rows(std::int64_t rank) const {
    return std::clamp<std::int64_t>(rows - rank * rows_per_rank, 0, rows_per_rank);
}

Elements FlatLayout::owned(std::int64_t rank) const {
    std::int64_t n = 0;
    for (const auto& c : chunks) n += c.owned_rows(rank) * c.row_elements;
    return Elements(n);
}

namespace {
// Appends tensor `i` of `unit` to `l`, rows split over l.shards.
void append(FlatLayout& l, const model::Unit& unit, int i) {
    const auto& t = unit.tensors[static_cast<std::size_t>(i)];
    ChunkLayout c;
    c.unit = unit.index;
    c.tensor = i;
    c.rows = t.rows();
    c.row_elements = t.row_elements();
    c.rows_per_rank = ceil_div(c.rows, l.shards);
    c.offset = l.shard.count();
    l.shard = Elements(l.shard.count() + c.chunk_elements());
    l.real += t.numel();
    l.chunks.push_back(c);
}
}  // namespace

FlatLayout make_layout(const model::Unit& unit, std::int64_t shards, bool trainable_only) {
    FlatLayout l;
    l.shards = shards;
    for (std::size_t i = 0; i < unit.tensors.size(); ++i)
        if (!trainable_only || unit.tensors[i].trainable) append(l, unit, static_cast<int>(i));
    return l;
}

FlatLayout make_layout(const std::vector<model::Unit>& units, const std::vector<TensorRef>& tensors, std::int64_t shards) {
    FlatLayout l;
    l.shards = shards;
    for (const auto& t : tensors) append(l, units.at(static_cast<std::size_t>(t.unit)), t.tensor);
    return l;
}

const ChunkLayout* find_chunk(const FlatLayout& l, int unit, int tensor) {
    for (const auto& c : l.chunks)
        if (c.unit == unit && c.tensor == tensor) return &c;
    return nullptr;
}

}  // namespace shardsim::plan
