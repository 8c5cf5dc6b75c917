// bf16 / fp16 storage: round-to-nearest-even on known values, ties, subnormals, overflow, NaN; and
// the device's convert kernel agrees with the host helpers bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "shardsim/core/half.hpp"
#include "train_helpers.hpp"

using namespace shardsim;
using shardsim::bf16_to_float;
using shardsim::float_to_bf16;
using shardsim::float_to_fp16;
using shardsim::fp16_to_float;

namespace {
float f(std::uint32_t bits) { return shardsim::bits_to_float(bits); }
}  // namespace

TEST_CASE("bf16 rounds to nearest, ties to even, overflows to inf and keeps NaN") {
    CHECK(float_to_bf16(1.0f) == 0x3f80);
    CHECK(float_to_bf16(-2.0f) == 0xc000);
    CHECK(float_to_bf16(0.0f) == 0x0000);
    CHECK(float_to_bf16(-0.0f) == 0x8000);
    // 1 + 2^-8 lies half-way between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
    CHECK(float_to_bf16(f(0x3f808000)) == 0x3f80);
    // 1 + 3 * 2^-8 lies half-way between 1 + 2^-7 (odd) and 1 + 2^-6: up to the even one.
    CHECK(float_to_bf16(f(0x3f818000)) == 0x3f82);
    // Just above / below half-way.
    CHECK(float_to_bf16(f(0x3f808001)) == 0x3f81);
    CHECK(float_to_bf16(f(0x3f807fff)) == 0x3f80);
    // pi = 0x40490fdb -> 0x4049 (3.140625)
    CHECK(float_to_bf16(3.14159265f) == 0x4049);
    CHECK(bf16_to_float(0x4049) == 3.140625f);
    // The largest finite float rounds up to infinity; so does anything at or above half an ulp
    // past bf16's largest finite value (0x7f7f).
    CHECK(float_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);
    CHECK(float_to_bf16(f(0x7f7f7fff)) == 0x7f7f);
    CHECK(float_to_bf16(f(0x7f7f8000)) == 0x7f80);
    CHECK(float_to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80);
    CHECK(float_to_bf16(-std::numeric_limits<float>::infinity()) == 0xff80);
    // Subnormals keep bf16's 8 bits of exponent range: they round like any other value.
    CHECK(float_to_bf16(f(0x00010000)) == 0x0001);
    CHECK(float_to_bf16(f(0x00008000)) == 0x0000);  // tie -> even (0)
    CHECK(float_to_bf16(f(0x00018000)) == 0x0002);  // tie -> even (2)
    // NaN stays NaN (quiet), even one whose payload sits only in the low bits.
    CHECK(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    CHECK(std::isnan(bf16_to_float(float_to_bf16(f(0x7f800001)))));
    CHECK(std::isnan(bf16_to_float(float_to_bf16(f(0xff800001)))));
}

TEST_CASE("fp16 rounds to nearest even, with gradual underflow and overflow to inf") {
    CHECK(float_to_fp16(1.0f) == 0x3c00);
    CHECK(float_to_fp16(-2.0f) == 0xc000);
    CHECK(float_to_fp16(65504.0f) == 0x7bff);  // largest finite
    CHECK(float_to_fp16(65519.0f) == 0x7bff);  // below half-way to 2^16
    CHECK(float_to_fp16(65520.0f) == 0x7c00);  // half-way: ties to even = inf
    CHECK(float_to_fp16(1e6f) == 0x7c00);
    CHECK(float_to_fp16(-1e6f) == 0xfc00);
    // 1 + 2^-11: half-way between 1 and 1 + 2^-10 -> 1 (even); 1 + 3 * 2^-11 -> 1 + 2^-9.
    CHECK(float_to_fp16(1.0f + 0x1p-11f) == 0x3c00);
    CHECK(float_to_fp16(1.0f + 3 * 0x1p-11f) == 0x3c02);
    CHECK(float_to_fp16(0.1f) == 0x2e66);
    // Subnormals: 2^-24 is the smallest; 2^-25 is half of it (tie -> 0); 3 * 2^-25 -> 2 * 2^-24.
    CHECK(float_to_fp16(0x1p-24f) == 0x0001);
    CHECK(float_to_fp16(0x1p-25f) == 0x0000);
    CHECK(float_to_fp16(1.5f * 0x1p-25f) == 0x0001);
    CHECK(float_to_fp16(3 * 0x1p-25f) == 0x0002);
    CHECK(float_to_fp16(-0x1p-24f) == 0x8001);
    CHECK(float_to_fp16(0x1p-14f) == 0x0400);                 // smallest normal
    CHECK(float_to_fp16(0x1p-14f - 0x1p-25f) == 0x0400);      // rounds up into the normals
    CHECK(float_to_fp16(1023 * 0x1p-24f) == 0x03ff);          // largest subnormal
    CHECK(fp16_to_float(0x0001) == 0x1p-24f);
    CHECK(fp16_to_float(0x03ff) == 1023 * 0x1p-24f);
    CHECK(fp16_to_float(0x7bff) == 65504.0f);
    CHECK(fp16_to_float(0x7c00) == std::numeric_limits<float>::infinity());
    CHECK(std::isnan(fp16_to_float(float_to_fp16(std::numeric_limits<float>::quiet_NaN()))));
    CHECK(std::isnan(fp16_to_float(float_to_fp16(f(0x7f800001)))));
    // Every fp16 value survives a round trip through float.
    for (std::uint32_t h = 0; h < 0x10000; ++h) {
        const auto b = static_cast<std::uint16_t>(h);
        const float v = fp16_to_float(b);
        if (std::isnan(v)) continue;
        if (float_to_fp16(v) != b) FAIL_CHECK("fp16 round trip of " << h);
    }
    for (std::uint32_t h = 0; h < 0x10000; ++h) {
        const auto b = static_cast<std::uint16_t>(h);
        const float v = bf16_to_float(b);
        if (std::isnan(v)) continue;
        if (float_to_bf16(v) != b) FAIL_CHECK("bf16 round trip of " << h);
    }
}

TEST_CASE("the CPU device converts and accumulates in 16 bits as the host helpers round") {
    auto dev = device::make_cpu_device();
    const std::vector<double> v = {1.0, 1.0 + 0x1p-8, 1.0 + 3 * 0x1p-8, 65520.0, 0x1p-25, 3 * 0x1p-25, -0.1, 1e-40};
    for (const DType dt : {DType::bf16, DType::fp16}) {
        CAPTURE(dtype_name(dt));
        auto src = test::upload(*dev, v, DType::fp32, {static_cast<std::int64_t>(v.size())});
        auto dst = test::zeros(*dev, dt, {static_cast<std::int64_t>(v.size())});
        dev->convert(src.t, dst.t);
        const auto got = test::download(*dev, dst.t);
        for (std::size_t i = 0; i < v.size(); ++i) CHECK(got[i] == shardsim::round_to(dt, static_cast<float>(v[i])));
        // dst += src, computed in fp32 and rounded once.
        dev->accumulate(dst.t, src.t);
        const auto acc = test::download(*dev, dst.t);
        for (std::size_t i = 0; i < v.size(); ++i)
            CHECK(acc[i] == shardsim::round_to(dt, shardsim::round_to(dt, static_cast<float>(v[i])) + static_cast<float>(v[i])));
    }
}
