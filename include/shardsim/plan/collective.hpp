#pragma once
// The collectives, each a row of one table (nccl-tests style): its name, the bus-bandwidth factor,
// how a `size` becomes the call's count, where each rank's send and receive data sit, whether the
// result is a sum, and (comm/collective_call.hpp, the layer that can make the call) the call
// itself. `size` is always what nccl-tests calls the size: the gathered output of all-gather, the
// full input of reduce-scatter, the buffer of all-reduce and broadcast.
//   algbw = size / time            busbw = algbw * factor(n)
//   all_gather, reduce_scatter: factor (n-1)/n     all_reduce: 2(n-1)/n     broadcast: 1
// Counts and offsets are in elements; `count` is the count argument of the call (elements per
// rank for all-gather and reduce-scatter, the whole buffer for all-reduce). In place, send and
// receive share one buffer at exactly the offsets below (the NCCL convention).
#include <cstdint>
#include <optional>
#include <string>

namespace shardsim::plan {

enum class CollectiveKind { all_gather, reduce_scatter, all_reduce, broadcast };
inline constexpr int kCollectiveKindCount = 4;

struct CollectiveInfo {
    CollectiveKind kind;
    const char* name;
    double (*bus_factor)(std::int64_t ranks);
    bool reduces;  // the result is a sum over ranks; otherwise each block is its owner's input
    std::int64_t (*count_for)(std::int64_t size_elements, std::int64_t ranks);
    std::int64_t (*send_elements)(std::int64_t count, std::int64_t ranks);
    std::int64_t (*recv_elements)(std::int64_t count, std::int64_t ranks);
    std::int64_t (*send_base)(std::int64_t count, std::int64_t rank);  // in the nccl-tests size
    std::int64_t (*recv_base)(std::int64_t count, std::int64_t rank);

    // The nccl-tests size (elements) of a call with `count` over `ranks`.
    std::int64_t size_elements(std::int64_t count, std::int64_t ranks) const;
};

const CollectiveInfo& collective_info(CollectiveKind k);
std::string collective_name(CollectiveKind k);
std::optional<CollectiveKind> parse_collective(const std::string& s);

inline double bus_factor(CollectiveKind k, std::int64_t ranks) { return collective_info(k).bus_factor(ranks); }

// How the executor calls each collective (exec/executor_ops.cpp): all-reduce in place on the
// buffer it packed; all-gather and reduce-scatter from their input (or stage) into the output
// buffer, another buffer. The collective model prices MPI's copies of an out-of-place call by it.
inline bool executor_in_place(CollectiveKind k) { return k == CollectiveKind::all_reduce || k == CollectiveKind::broadcast; }
// Bytes one rank sends (= receives) in a bandwidth-optimal algorithm: size * factor.
double wire_bytes(CollectiveKind k, std::int64_t size_bytes, std::int64_t ranks);
double algbw_GBps(std::int64_t size_bytes, double seconds);
double busbw_GBps(CollectiveKind k, std::int64_t size_bytes, std::int64_t ranks, double seconds);

}  // namespace shardsim::plan
