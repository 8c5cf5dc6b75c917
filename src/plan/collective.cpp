#include "shardsim/plan/collective.hpp"

#include <algorithm>
#include <array>

namespace shardsim::plan {

namespace {
double gather_factor(std::int64_t n) { return n > 0 ? static_cast<double>(n - 1) / static_cast<double>(n) : 0; }
double reduce_factor(std::int64_t n) { return 2.0 * gather_factor(n); }
double one(std::int64_t) { return 1.0; }

std::int64_t per_rank(std::int64_t v, std::int64_t ranks) { return v / ranks; }
std::int64_t same(std::int64_t v, std::int64_t) { return v; }
std::int64_t all_blocks(std::int64_t count, std::int64_t ranks) { return count * ranks; }
std::int64_t own_block(std::int64_t count, std::int64_t rank) { return count * rank; }
std::int64_t start(std::int64_t, std::int64_t) { return 0; }

const std::array<CollectiveInfo, kCollectiveKindCount> kTable = {{
    {CollectiveKind::all_gather, "all_gather", gather_factor, false, per_rank, same, all_blocks, own_block, start},
    {CollectiveKind::reduce_scatter, "reduce_scatter", gather_factor, true, per_rank, all_blocks, same, start, own_block},
    {CollectiveKind::all_reduce, "all_reduce", reduce_factor, true, same, same, same, start, start},
    {CollectiveKind::broadcast, "broadcast", one, false, same, same, same, start, start},
}};
}  // namespace

std::int64_t CollectiveInfo::size_elements(std::int64_t count, std::int64_t ranks) const {
    return std::max(send_elements(count, ranks), recv_elements(count, ranks));
}

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
