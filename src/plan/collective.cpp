#include "shardsim/plan/collective.hpp"

#include <array>

namespace shardsim::plan {

namespace {
double gather_factor(std::int64_t n) { return n > 0 ? static_cast<double>(n - 1) / static_cast<double>(n) : 0; }
double reduce_factor(std::int64_t n) { return 2.0 * gather_factor(n); }
double one(std::int64_t) { return 1.0; }

const std::array<CollectiveInfo, kCollectiveKindCount> kTable = {{
    {CollectiveKind::all_gather, "all_gather", gather_factor},
    {CollectiveKind::reduce_scatter, "reduce_scatter", gather_factor},
    {CollectiveKind::all_reduce, "all_reduce", reduce_factor},
    {CollectiveKind::broadcast, "broadcast", one},
}};
}  // namespace

const CollectiveInfo& collective_info(CollectiveKind k) { return kTable[static_cast<int>(k)]; }
std::string collective_name(CollectiveKind k) { return collective_info(k).name; }

std::optional<CollectiveKind> parse_collective(const std::string& s) {
    for (const auto& c : kTable)
        if (s == c.name) return c.kind;
    return std::nullopt;
}

double wire_bytes(CollectiveKind k, std::int64_t size_bytes, std::int64_t ranks) {
    return static_cast<double>(size_bytes) * bus_factor(k, ranks);
}

double algbw_GBps(std::int64_t size_bytes, double seconds) {
    return seconds > 0 ? static_cast<double>(size_bytes) / seconds / 1e9 : 0.0;
}

double busbw_GBps(CollectiveKind k, std::int64_t size_bytes, std::int64_t ranks, double seconds) {
    return algbw_GBps(size_bytes, seconds) * bus_factor(k, ranks);
}

}  // namespace shardsim::plan
