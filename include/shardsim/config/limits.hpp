#pragma once
// The largest value every size of the job, topology and model files may take. Each is far beyond
// real use (the reason is given beside it) and small enough that the sizes derived from it stay
// well inside int64; the parser refuses anything larger with the house error, so a typo such as
// `gpus_per_node = 9e18` is a one-line error, not an overflow. Sizes that several keys multiply
// together (bytes of an attention's scores, a model's parameter count) are also computed with
// overflow checks (core/checked.hpp), and a few products have their own maxima below.
#include <cstdint>

namespace shardsim::config::limits {

// ---- cluster --------------------------------------------------------------------------------
// The largest training clusters today have ~100,000 GPUs; 10x that.
inline constexpr std::int64_t kWorld = 1'000'000;
inline constexpr std::int64_t kNodes = kWorld;
// 8-16 GPUs per node today; a CPU host runs one rank per core (a few hundred).
inline constexpr std::int64_t kGpusPerNode = 1024;
inline constexpr std::int64_t kNics = 64;
// Device or host memory: 1 PiB (today's largest device has 192 GiB, hosts a few TiB).
inline constexpr double kMemoryGiB = 1024.0 * 1024.0;
// Runtime overhead and bucket sizes: 1 TiB.
inline constexpr double kBufferMiB = 1024.0 * 1024.0;
// Rates: 1,000x the fastest hardware of today (an H100: ~1,000 dense TFLOP/s, 3,350 GB/s HBM,
// 450 GB/s NVLink per direction).
inline constexpr double kTflops = 1e6;
inline constexpr double kGBps = 1e6;
inline constexpr double kGelemsPerSecond = 1e6;
// Latencies: one second per message step.
inline constexpr double kLatencyUs = 1e6;

// ---- job ------------------------------------------------------------------------------------
inline constexpr std::int64_t kSteps = 1'000'000;
// Sequences per rank per micro-batch: real jobs use 1-1,024.
inline constexpr std::int64_t kMicroBatch = 65'536;
// Micro-batches per step: the schedule lists every micro-batch's ops and numbers them with an
// int, so this also keeps every index exact (real jobs: 1-1,024).
inline constexpr std::int64_t kGradAccum = 1 << 20;
// Tokens per sequence: 2^20 = 1,048,576 (the longest contexts trained today are ~1M tokens).
inline constexpr std::int64_t kSeqLen = 1 << 20;
inline constexpr std::int64_t kLoraRank = 65'536;
// Elements: 2^50 (~1.1e15), 1,000x the largest published dense model. Also the largest model.
inline constexpr std::int64_t kParams = std::int64_t{1} << 50;
// Units of the model x micro-batches: each is a few ops on every stream, ~1 KiB of memory per
// op in the simulator. 2^19 is ~3.6 million ops, ~3 GiB and ~10 s per simulated step;
// Llama-2-70B at grad_accum 1,024 is 84,000.
inline constexpr std::int64_t kUnitPasses = 1 << 19;

// ---- model ----------------------------------------------------------------------------------
// Published models have at most a few hundred layers, widths up to ~25,000, up to 128 heads,
// FFN widths up to ~100,000 and vocabularies up to ~256,000.
inline constexpr std::int64_t kLayers = 65'536;
inline constexpr std::int64_t kHidden = 1 << 20;
inline constexpr std::int64_t kHeads = 65'536;
inline constexpr std::int64_t kFfn = 1 << 22;
inline constexpr std::int64_t kVocab = 1 << 24;
inline constexpr std::int64_t kBuckets = 65'536;

}  // namespace shardsim::config::limits
