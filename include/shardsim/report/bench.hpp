#pragma once
// What `shardsim bench` prints: per group and op a header with a units row, one fixed-width line
// per size (out of place, then in place: time, algbw, busbw, #wrong, the raw library's busbw and
// ours/raw), a footer per section and a pass/fail line. The text is rendered from the JSON of the
// same call, so the two cannot disagree.
//
// [Note: bench efficiency] ours/raw = our busbw / the raw library's busbw on the same buffers,
// size by size. "Large sizes" are those >= 32 MiB (the largest size alone when the sweep stops
// below): there the wrappers must keep >= 95% of the raw busbw — a benchmark figure, printed,
// never a pass/fail criterion (timing noise is not a bug). Pass/fail is #wrong alone.
#include <string>

#include "shardsim/bench/collectives.hpp"
#include "shardsim/io/json.hpp"

namespace shardsim::report {

inline constexpr std::int64_t kBenchLargeBytes = 32LL << 20;
inline constexpr double kBenchEfficiencyTarget = 0.95;

struct BenchReport {
    io::Json json;
    std::string text;
    bool passed = false;  // no wrong element anywhere
};

BenchReport bench_report(const bench::BenchRun& run);

}  // namespace shardsim::report
