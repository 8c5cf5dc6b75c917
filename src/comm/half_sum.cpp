#include "half_sum.hpp"

#include "shardsim/core/half.hpp"

namespace shardsim::comm {

void add_bf16(const std::uint16_t* in, std::uint16_t* inout, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) inout[i] = float_to_bf16(bf16_to_float(in[i]) + bf16_to_float(inout[i]));
}

void add_fp16(const std::uint16_t* in, std::uint16_t* inout, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) inout[i] = float_to_fp16(fp16_to_float(in[i]) + fp16_to_float(inout[i]));
}

}  // namespace shardsim::comm
