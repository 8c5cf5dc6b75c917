#pragma once
// bf16 and fp16 on the host, bit for bit what the hardware does: round-to-nearest-even from fp32,
// gradual underflow to subnormals, overflow to infinity, NaN kept NaN (quieted, sign and top
// payload bits kept). The CPU device stores 16-bit tensors through these, MPI sums 16-bit values
// with them, tests use them for expected values. CUDA kernels use __float2bfloat16_rn / __float2half_rn, which round the same
// way for every non-NaN input.
#include <cstdint>
#include <cstring>

#include "shardsim/core/dtype.hpp"

namespace shardsim {

inline std::uint32_t float_bits(float f) {
    std::uint32_t u = 0;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

inline float bits_to_float(std::uint32_t u) {
    float f = 0;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

inline std::uint16_t float_to_bf16(float f) {
    std::uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
    // Adding 0x7fff plus the lowest kept bit rounds half-way cases to the even neighbour; a
    // carry out of the mantissa bumps the exponent, and out of the largest finite value to inf.
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<std::uint16_t>(u >> 16);
}

inline float bf16_to_float(std::uint16_t h) { return bits_to_float(static_cast<std::uint32_t>(h) << 16); }

inline std::uint16_t float_to_fp16(float f) {
    const std::uint32_t u = float_bits(f);
    const std::uint32_t sign = (u >> 16) & 0x8000u;
    std::uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    // 65520 is half-way between 65504 (the largest fp16, odd mantissa) and 2^16: ties to even = inf.
    if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);
    if (a >= 0x38800000u) {  // normal in fp16: |f| >= 2^-14
        a += 0xfffu + ((a >> 13) & 1u);
        a -= 112u << 23;  // exponent bias 127 -> 15
        return static_cast<std::uint16_t>(sign | (a >> 13));
    }
    if (a < 0x33000000u) return static_cast<std::uint16_t>(sign);  // <= 2^-25 rounds to (signed) zero
    // Subnormal: the value in units of 2^-24, rounded to nearest even.
    const std::uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - (a >> 23);  // 14..24
    std::uint32_t q = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return static_cast<std::uint16_t>(sign | q);
}

inline float fp16_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t e = (h >> 10) & 0x1fu;
    const std::uint32_t m = h & 0x3ffu;
    if (e == 0x1f) return bits_to_float(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
        return sign ? -v : v;
    }
    return bits_to_float(sign | ((e + 112u) << 23) | (m << 13));
}

// The value `v` rounded to `dtype` and back: what storing it in that dtype keeps.
inline float round_to(DType dtype, float v) {
    switch (dtype) {
        case DType::bf16: return bf16_to_float(float_to_bf16(v));
        case DType::fp16: return fp16_to_float(float_to_fp16(v));
        case DType::fp32: break;
    }
    return v;
}

// Element i of host-addressable memory holding `dtype` values.
inline float load_value(const void* p, DType dtype, std::int64_t i) {
    switch (dtype) {
        case DType::bf16: return bf16_to_float(static_cast<const std::uint16_t*>(p)[i]);
        case DType::fp16: return fp16_to_float(static_cast<const std::uint16_t*>(p)[i]);
        case DType::fp32: break;
    }
    return static_cast<const float*>(p)[i];
}

inline void store_value(void* p, DType dtype, std::int64_t i, float v) {
    switch (dtype) {
        case DType::bf16: static_cast<std::uint16_t*>(p)[i] = float_to_bf16(v); return;
        case DType::fp16: static_cast<std::uint16_t*>(p)[i] = float_to_fp16(v); return;
        case DType::fp32: break;
    }
    static_cast<float*>(p)[i] = v;
}

}  // namespace shardsim
