#pragma once
// Flat, rank-major, padded layouts of a unit's tensors (FSDP2 style).
//
// [Note: FSDP tensors] — the words used for a unit's parameters and gradients everywhere:
//   sharded            rank r's share of the unit: for each tensor (in unit order), rows
//                      [r*k, (r+1)*k) of dim 0, where k = ceil(rows / N), padded with zeros to k
//                      rows; the chunks of all tensors back to back. Every rank's shard has the
//                      same number of elements S (padding included), so collectives are uniform.
//   all-gather input   the sharded buffer in the dtype being gathered.
//   all-gather output  N shards back to back, rank-major: N*S elements, padding included.
//   unsharded          each tensor with its real shape, copied out of the all-gather output
//                      (real elements only); what compute reads.
//   reduce-scatter input   unsharded gradients copied into the rank-major padded arrangement.
// The padding is explicit: padding = N*S - real elements.
#include <cstdint>
#include <vector>

#include "shardsim/core/units.hpp"
#include "shardsim/model/units.hpp"

namespace shardsim::plan {

struct ChunkLayout {
    int unit = -1;                   // the unit the tensor belongs to
    int tensor = 0;                  // index in Unit::tensors
    std::int64_t rows = 0;           // dim 0 of the tensor
    std::int64_t row_elements = 0;   // elements per dim-0 row
    std::int64_t rows_per_rank = 0;  // k = ceil(rows / N)
    std::int64_t offset = 0;         // where this tensor's chunk starts within a shard (elements)

    std::int64_t chunk_elements() const { return rows_per_rank * row_elements; }
    // Real (unpadded) rows of this tensor that `rank` owns: 0 for ranks past the end.
    std::int64_t owned_rows(std::int64_t rank) const;
};

struct FlatLayout {
    std::int64_t shards = 1;  // N
    std::vector<ChunkLayout> chunks;
    Elements shard;           // S: elements per rank, padding included
    Elements real;            // elements of the tensors themselves

    Elements gathered() const { return shard * shards; }
    Elements padding() const { return gathered() - real; }
    Elements owned(std::int64_t rank) const;  // real elements held by `rank`
    bool empty() const { return chunks.empty(); }
};

// Lays out the tensors of `unit` (all of them, or only the trainable ones) over `shards` ranks.
FlatLayout make_layout(const model::Unit& unit, std::int64_t shards, bool trainable_only);

// A tensor of some unit: the pieces of a layout that spans units (a gradient bucket).
struct TensorRef {
    int unit = 0;
    int tensor = 0;
};
// Lays out the given tensors, in that order, over `shards` ranks.
FlatLayout make_layout(const std::vector<model::Unit>& units, const std::vector<TensorRef>& tensors, std::int64_t shards);

// The chunk of (unit, tensor) in `l`; nullptr when it has none.
const ChunkLayout* find_chunk(const FlatLayout& l, int unit, int tensor);

}  // namespace shardsim::plan
