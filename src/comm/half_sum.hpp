#pragma once
// The elementwise 16-bit sums behind MpiCommunicator's bf16 / fp16 reductions: inout[i] =
// round(in[i] + inout[i]), added in fp32, rounded to nearest-even (core/half.hpp). In a file of
// their own because they are built with full vectorisation (see CMakeLists.txt): on 2 ranks a
// bf16 reduce-scatter is bound by this loop.
#include <cstdint>

namespace shardsim::comm {

void add_bf16(const std::uint16_t* in, std::uint16_t* inout, std::int64_t n);
void add_fp16(const std::uint16_t* in, std::uint16_t* inout, std::int64_t n);

}  // namespace shardsim::comm
