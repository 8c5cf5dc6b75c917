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

FlatLayout make_layout(const model::Unit& unit, std::int64_t shards, bool trainable_only) {
    FlatLayout l;
    l.shards = shards;
    std::int64_t offset = 0;
    for (std::size_t i = 0; i < unit.tensors.size(); ++i) {
        const auto& t = unit.tensors[i];
        if (trainable_only && !t.trainable) continue;
        ChunkLayout c;
        c.tensor = static_cast<int>(i);
        c.rows = t.rows();
        c.row_elements = t.row_elements();
        c.rows_per_rank = ceil_div(c.rows, shards);
        c.offset = offset;
        offset += c.chunk_elements();
        l.real += t.numel();
        l.chunks.push_back(c);
    }
    l.shard = Elements(offset);
    return l;
}

}  // namespace shardsim::plan
