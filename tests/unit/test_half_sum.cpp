// The 16-bit sums of MPI reductions (comm/half_sum.hpp) against core/half.hpp, bit for bit: every
// fp16 / bf16 value as one operand, a spread of values (zeros, subnormals, the largest finite,
// infinities, NaNs) as the other.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "shardsim/comm/half_sum.hpp"
#include "shardsim/core/half.hpp"

using namespace shardsim;

namespace {

// Every 61st pattern plus the special ones, for the second operand.
std::vector<std::uint16_t> second_operands() {
    std::vector<std::uint16_t> v;
    for (std::uint32_t x = 0; x < 0x10000u; x += 61) v.push_back(static_cast<std::uint16_t>(x));
    for (std::uint16_t x : {0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x0400, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x7c01,
                            0x7f80, 0xff80, 0x7fc0, 0x7f81, 0x0080, 0x007f, 0x3c00, 0xbc00})
        v.push_back(x);
    return v;
}

bool fp16_nan(std::uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }
bool bf16_nan(std::uint16_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0; }

}  // namespace

TEST_CASE("fp16 sums: the fast path gives core/half.hpp's bits for every value") {
    std::vector<std::uint16_t> in(0x10000), fast, portable;
    for (std::uint32_t x = 0; x < 0x10000u; ++x) in[x] = static_cast<std::uint16_t>(x);
    long checked = 0, differing = 0;
    for (std::uint16_t b : second_operands()) {
        fast.assign(in.size(), b);
        portable.assign(in.size(), b);
        // An odd length: the 8-wide loop and its scalar tail both run.
        comm::add_fp16(in.data(), fast.data(), static_cast<std::int64_t>(in.size()) - 3);
        comm::add_fp16_portable(in.data(), portable.data(), static_cast<std::int64_t>(in.size()) - 3);
        for (std::size_t i = 0; i + 3 < in.size(); ++i) {
            const std::uint16_t want = float_to_fp16(fp16_to_float(in[i]) + fp16_to_float(b));
            ++checked;
            // NaN + NaN: IEEE leaves open whose payload survives; both must still be a NaN.
            if (fp16_nan(in[i]) && fp16_nan(b)) {
                if (!fp16_nan(fast[i]) || !fp16_nan(portable[i])) ++differing;
                continue;
            }
            if (fast[i] != want || portable[i] != want) {
                if (differing++ < 5) CHECK_MESSAGE(false, "fp16 " << in[i] << " + " << b << ": fast " << fast[i] << ", portable " << portable[i] << ", want " << want);
            }
        }
        for (std::size_t i = in.size() - 3; i < in.size(); ++i) CHECK(fast[i] == b);  // past n: untouched
    }
    CHECK(differing == 0);
    CHECK(checked > 60'000'000);
}

TEST_CASE("bf16 sums give core/half.hpp's bits for every value") {
    std::vector<std::uint16_t> in(0x10000), out;
    for (std::uint32_t x = 0; x < 0x10000u; ++x) in[x] = static_cast<std::uint16_t>(x);
    long differing = 0;
    for (std::uint16_t b : second_operands()) {
        out.assign(in.size(), b);
        comm::add_bf16(in.data(), out.data(), static_cast<std::int64_t>(in.size()));
        for (std::size_t i = 0; i < in.size(); ++i) {
            if (bf16_nan(in[i]) && bf16_nan(b)) {
                if (!bf16_nan(out[i])) ++differing;
                continue;
            }
            if (out[i] != float_to_bf16(bf16_to_float(in[i]) + bf16_to_float(b))) ++differing;
        }
    }
    CHECK(differing == 0);
}
