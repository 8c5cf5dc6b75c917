#pragma once
// The collectives, each a row of one table (nccl-tests style): its name, the bus-bandwidth
// factor, and the bytes one rank puts on the wire. `size` is always what nccl-tests calls the
// size: the gathered output of all-gather, the full input of reduce-scatter, the buffer of
// all-reduce and broadcast.
//   algbw = size / time            busbw = algbw * factor(n)
//   all_gather, reduce_scatter: factor (n-1)/n     all_reduce: 2(n-1)/n     broadcast: 1
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
};

const CollectiveInfo& collective_info(CollectiveKind k);
std::string collective_name(CollectiveKind k);
std::optional<CollectiveKind> parse_collective(const std::string& s);

inline double bus_factor(CollectiveKind k, std::int64_t ranks) { return collective_info(k).bus_factor(ranks); }
// Bytes one rank sends (= receives) in a bandwidth-optimal algorithm: size * factor.
double wire_bytes(CollectiveKind k, std::int64_t size_bytes, std::int64_t ranks);
double algbw_GBps(std::int64_t size_bytes, double seconds);
double busbw_GBps(CollectiveKind k, std::int64_t size_bytes, std::int64_t ranks, double seconds);

}  // namespace shardsim::plan
