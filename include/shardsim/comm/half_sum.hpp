#pragma once
// The elementwise 16-bit sums behind MpiCommunicator's bf16 / fp16 reductions: inout[i] =
// round(in[i] + inout[i]), added in fp32, rounded to nearest-even (core/half.hpp). On 2 ranks a
// 16-bit reduce-scatter is bound by these loops, so src/comm/half_sum.cpp is built with full
// vectorisation (see CMakeLists.txt) and fp16 uses the CPU's conversion instructions (F16C) when
// it has them.
#include <cstdint>

namespace shardsim::comm {

void add_bf16(const std::uint16_t* in, std::uint16_t* inout, std::int64_t n);
void add_fp16(const std::uint16_t* in, std::uint16_t* inout, std::int64_t n);
// add_fp16 without the conversion instructions: the reference the tests hold add_fp16 to.
void add_fp16_portable(const std::uint16_t* in, std::uint16_t* inout, std::int64_t n);

}  // namespace shardsim::comm
