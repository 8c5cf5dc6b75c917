#pragma once
// The dropout keep bits, one definition for the CPU device and the CUDA kernels (kernels.cu
// includes this file too, so it is plain C++17). A counter-based hash instead of a generator with
// state: the bit of an element depends only on (key, global sample, element within the sample),
// so any rank, world size, device or recompute of the same sample draws the same mask, and the
// single-process reference of --verify draws what the sharded run drew. PyTorch draws from a
// Philox stream instead: the same distribution, other bits.
#include <cstdint>

#ifdef __CUDACC__
#define SHARDSIM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SHARDSIM_HOST_DEVICE inline
#endif

namespace shardsim::device::dropout_bits {

// SplitMix64's finaliser (Steele, Lea, Flood 2014): a bijection that mixes every input bit.
SHARDSIM_HOST_DEVICE std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// An element is dropped when the top 24 bits of its hash fall below p * 2^24.
SHARDSIM_HOST_DEVICE std::uint32_t threshold(float p) { return static_cast<std::uint32_t>(p * 16777216.0f + 0.5f); }

SHARDSIM_HOST_DEVICE bool keep(std::uint64_t key, std::uint64_t sample, std::uint64_t element, std::uint32_t threshold) {
    const std::uint64_t h = mix(mix(key ^ mix(sample)) ^ element);
    return static_cast<std::uint32_t>(h >> 40) >= threshold;
}

// The keep bit of physical element (r, c) of a DropoutOp's block (device.hpp says the layout).
SHARDSIM_HOST_DEVICE bool keep_at(std::uint64_t key, std::int64_t first_sample, std::int64_t row0, std::int64_t rows_per_sample,
                                  std::int64_t width, std::int64_t r, std::int64_t c, std::uint32_t threshold) {
    const std::int64_t row = row0 + r;
    const std::int64_t sample = first_sample + row / rows_per_sample;
    const std::int64_t element = (row % rows_per_sample) * width + c;
    return keep(key, static_cast<std::uint64_t>(sample), static_cast<std::uint64_t>(element), threshold);
}

}  // namespace shardsim::device::dropout_bits
