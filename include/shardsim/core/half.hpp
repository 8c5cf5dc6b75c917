#pragma once
// 16-bit floating point storage: bf16 and fp16 bit patterns <-> float, rounding
// round-to-nearest-even as the hardware does (with subnormals, overflow to inf, NaN kept).
#include <cstdint>

namespace shardsim {

float bf16_to_float(std::uint16_t h);
std::uint16_t float_to_bf16(float f);
float fp16_to_float(std::uint16_t h);
std::uint16_t float_to_fp16(float f);

}  // namespace shardsim
