// The caching allocator's rules (sim/allocator.hpp, ENGINES.md §8) on requests worked by hand.
#include <doctest/doctest.h>

#include "shardsim/sim/allocator.hpp"

using namespace shardsim;

namespace {
constexpr std::int64_t MiB = 1 << 20;
}

TEST_CASE("caching allocator: rounding, pools, segments, splitting and whole blocks, by hand") {
    sim::CachingAllocator a(1024 * MiB);
    // 100 B: rounded to 512 B, from a new 2 MiB small-pool segment.
    const auto tiny = a.alloc(100, 0);
    CHECK(a.peaks().allocated == 512);
    CHECK(a.peaks().reserved == 2 * MiB);
    // 5 MiB: large pool, under 10 MiB, so a 20 MiB segment; split (15 MiB left > 1 MiB).
    const auto five = a.alloc(5 * MiB, 0);
    CHECK(a.peaks().allocated == 512 + 5 * MiB);
    CHECK(a.peaks().reserved == 22 * MiB);
    // 12 MiB: best fit is the 15 MiB rest; 3 MiB left > 1 MiB: split. Nothing new reserved.
    const auto twelve = a.alloc(12 * MiB, 0);
    CHECK(a.peaks().reserved == 22 * MiB);
    CHECK(a.peaks().allocated == 512 + 17 * MiB);
    // 2.5 MiB: the 3 MiB rest fits; 0.5 MiB left is not > 1 MiB, so the whole 3 MiB is handed out
    // and counted.
    const auto odd = a.alloc(5 * MiB / 2, 0);
    CHECK(a.peaks().allocated == 512 + 20 * MiB);
    CHECK(a.peaks().reserved == 22 * MiB);
    // Another stream has pools of its own: a new segment even though blocks are free elsewhere.
    a.release(odd);
    const auto other = a.alloc(MiB * 5 / 2, 1);
    CHECK(a.peaks().reserved == 42 * MiB);
    // Freed neighbours merge: the whole 20 MiB segment serves a 20 MiB request.
    a.release(five);
    a.release(twelve);
    const auto whole = a.alloc(20 * MiB, 0);
    CHECK(a.peaks().reserved == 42 * MiB);
    // Above 10 MiB a segment is the request rounded up to 2 MiB.
    const auto big = a.alloc(33 * MiB, 0);
    CHECK(a.peaks().reserved == 42 * MiB + 34 * MiB);
    (void)tiny, (void)other, (void)whole, (void)big;
    CHECK(a.peaks().retries == 0);
}

TEST_CASE("caching allocator: a segment that would pass the device releases wholly free ones first") {
    sim::CachingAllocator a(60 * MiB);
    const auto x = a.alloc(30 * MiB, 0);
    a.release(x);  // cached: 30 MiB reserved, none allocated
    // 40 MiB does not fit the cached 30 MiB block and 30 + 40 > 60: the free segment goes first.
    a.alloc(40 * MiB, 0);
    CHECK(a.peaks().retries == 1);
    CHECK(a.peaks().reserved == 40 * MiB);
}
