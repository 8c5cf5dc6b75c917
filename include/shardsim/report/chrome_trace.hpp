#pragma once
// Trace Event Format JSON, for https://ui.perfetto.dev and chrome://tracing: one process per rank
// (ranks that share one timeline, as every rank of a simulation does, are one process named after
// all of them), one thread per stream (compute, comm, copy, host), an "X" event per op with its
// bytes, FLOPs, unit, micro-batch and, for collectives, algbw/busbw, and the memory samples as
// counter tracks ("C" events, one series per category, MiB).
//
// A simulation and a measurement loaded together stay apart: measured ranks are pid = rank and
// "rank r (measured)", simulated ones pid = 100000 + rank and "rank r (simulated)"; a second file
// of the same kind adds 200000 and its file name. Every recorded step is written; steps whose
// times each start at 0 are laid end to end.
#include <cstdint>
#include <ostream>

#include "shardsim/report/report.hpp"

namespace shardsim::report {

inline constexpr std::int64_t kTracePidSimulated = 100000;
inline constexpr std::int64_t kTracePidSecondFile = 200000;

void write_chrome_trace(std::ostream& os, const LoadedRun& run, const LoadedRun* compare = nullptr);

}  // namespace shardsim::report
