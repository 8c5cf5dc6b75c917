#pragma once
// PyTorch's CUDA caching allocator, replayed over a simulated step (ENGINES.md §8): the rules that
// decide what it reserves at the peak. Requests round up to 512 B; up to 1 MiB they come from 2 MiB
// segments (the small pool), above it from 20 MiB segments (under 10 MiB) or segments rounded up
// to 2 MiB; a cached free block serves the smallest request it fits (best fit, per stream and
// pool); a block is split when the rest is at least 512 B (small pool) or more than 1 MiB (large
// pool), otherwise handed out whole and counted whole; freed blocks merge with free neighbours of
// their segment; segments are never returned, except that when a new segment would pass the
// device's memory every wholly free segment is released first (the out-of-memory retry).
// What this leaves out: cross-stream reuse waiting for events (record_stream), expandable
// segments, max_split_size, and tensors within one of our buffers (an activation buffer is one
// block here, many tensors in PyTorch).
#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "shardsim/plan/plan.hpp"
#include "shardsim/plan/schedule.hpp"
#include "shardsim/timeline/timeline.hpp"

namespace shardsim::sim {

namespace detail {
constexpr std::int64_t kMiB = 1 << 20;
constexpr std::int64_t kMinBlock = 512;
constexpr std::int64_t kSmallSize = kMiB;
constexpr std::int64_t kSmallBuffer = 2 * kMiB;
constexpr std::int64_t kLargeBuffer = 20 * kMiB;
constexpr std::int64_t kMinLargeAlloc = 10 * kMiB;
constexpr std::int64_t kRoundLarge = 2 * kMiB;
inline std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }
inline std::int64_t round_size(std::int64_t n) { return n < kMinBlock ? kMinBlock : round_up(n, kMinBlock); }
inline std::int64_t segment_size(std::int64_t n) {
    if (n <= kSmallSize) return kSmallBuffer;
    if (n < kMinLargeAlloc) return kLargeBuffer;
    return round_up(n, kRoundLarge);
}
}  // namespace detail

struct AllocatorPeaks {
    std::int64_t allocated = 0;  // max_memory_allocated: live blocks, rounded and as split
    std::int64_t reserved = 0;   // max_memory_reserved: segments
    std::int64_t retries = 0;    // out-of-memory retries (segments released to make room)
};

// The allocator itself: alloc returns a handle (segment, offset) that release takes back.
class CachingAllocator {
public:
    explicit CachingAllocator(std::int64_t capacity) : capacity_(capacity) {}

    // Returns a handle (segment, offset).
    std::pair<int, std::int64_t> alloc(std::int64_t bytes, int stream) {
        const std::int64_t size = detail::round_size(bytes);
        const bool small = size <= detail::kSmallSize;
        const Pool key{stream, small};
        auto& free = free_[key];
        auto it = free.lower_bound({size, -1, -1});
        if (it == free.end()) {
            const std::int64_t seg = detail::segment_size(size);
            if (reserved_ + seg > capacity_) release_free_segments();
            segments_.push_back({key, seg, {{0, Block{seg, true}}}});
            reserved_ += seg;
            peaks_.reserved = std::max(peaks_.reserved, reserved_);
            free.insert({seg, static_cast<int>(segments_.size()) - 1, 0});
            it = free.lower_bound({size, -1, -1});
        }
        const auto [bsize, s, off] = *it;
        free.erase(it);
        Segment& sg = segments_[static_cast<std::size_t>(s)];
        Block& b = sg.blocks.at(off);
        const std::int64_t rest = bsize - size;
        const bool split = small ? rest >= detail::kMinBlock : rest > detail::kSmallSize;
        if (split) {
            b.size = size;
            sg.blocks[off + size] = Block{rest, true};
            free.insert({rest, s, off + size});
        }
        b.free = false;
        allocated_ += b.size;
        peaks_.allocated = std::max(peaks_.allocated, allocated_);
        return {s, off};
    }

    void release(std::pair<int, std::int64_t> h) {
        Segment& sg = segments_[static_cast<std::size_t>(h.first)];
        auto& free = free_[sg.pool];
        auto it = sg.blocks.find(h.second);
        allocated_ -= it->second.size;
        it->second.free = true;
        // Merge with the free neighbours.
        auto next = std::next(it);
        if (next != sg.blocks.end() && next->second.free) {
            free.erase({next->second.size, h.first, next->first});
            it->second.size += next->second.size;
            sg.blocks.erase(next);
        }
        if (it != sg.blocks.begin()) {
            auto prev = std::prev(it);
            if (prev->second.free) {
                free.erase({prev->second.size, h.first, prev->first});
                prev->second.size += it->second.size;
                sg.blocks.erase(it);
                it = prev;
            }
        }
        free.insert({it->second.size, h.first, it->first});
    }

    AllocatorPeaks peaks() const { return peaks_; }

private:
    struct Block {
        std::int64_t size = 0;
        bool free = true;
    };
    using Pool = std::pair<int, bool>;  // stream, small pool
    struct Segment {
        Pool pool;
        std::int64_t size = 0;
        std::map<std::int64_t, Block> blocks;  // by offset
        bool released = false;
    };
    using FreeKey = std::tuple<std::int64_t, int, std::int64_t>;  // size, segment, offset

    void release_free_segments() {
        bool any = false;
        for (std::size_t s = 0; s < segments_.size(); ++s) {
            Segment& sg = segments_[s];
            if (sg.released || sg.blocks.size() != 1 || !sg.blocks.begin()->second.free) continue;
            free_[sg.pool].erase({sg.size, static_cast<int>(s), 0});
            sg.blocks.clear();
            sg.released = true;
            reserved_ -= sg.size;
            any = true;
        }
        if (any) ++peaks_.retries;
    }

    std::int64_t capacity_;
    std::int64_t allocated_ = 0, reserved_ = 0;
    AllocatorPeaks peaks_;
    std::vector<Segment> segments_;
    std::map<Pool, std::set<FreeKey>> free_;
};


// `ops` are the step's records with their times: buffers are allocated and freed in the order
// the memory replay uses. `capacity` is what the allocator may reserve (the device less the
// runtime's own memory).
AllocatorPeaks replay_allocator(const plan::ShardingPlan& plan, const plan::Schedule& schedule,
                                const std::vector<timeline::OpRecord>& ops, std::int64_t capacity);

}  // namespace shardsim::sim
