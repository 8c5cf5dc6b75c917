#pragma once
// Strong quantity types. Element counts and byte counts are different things (llm.c mixed them
// up more than once); keeping them apart in the type system makes `bytes = elements * dtype size`
// the only way across. Their arithmetic is overflow-checked (core/checked.hpp): a count that
// would wrap is an OverflowError naming the quantity, never a negative size.
#include <compare>
#include <cstdint>

#include "shardsim/core/checked.hpp"

namespace shardsim {

template <class Tag>
class Quantity {
public:
    constexpr Quantity() = default;
    constexpr explicit Quantity(std::int64_t v) : v_(v) {}
    constexpr std::int64_t count() const { return v_; }

    constexpr Quantity& operator+=(Quantity o) { v_ = checked_add(v_, o.v_, Tag::name); return *this; }
    constexpr Quantity& operator-=(Quantity o) { v_ = checked_sub(v_, o.v_, Tag::name); return *this; }
    friend constexpr Quantity operator+(Quantity a, Quantity b) { return Quantity(checked_add(a.v_, b.v_, Tag::name)); }
    friend constexpr Quantity operator-(Quantity a, Quantity b) { return Quantity(checked_sub(a.v_, b.v_, Tag::name)); }
    friend constexpr Quantity operator*(Quantity a, std::int64_t k) { return Quantity(checked_mul(a.v_, k, Tag::name)); }
    friend constexpr Quantity operator*(std::int64_t k, Quantity a) { return Quantity(checked_mul(a.v_, k, Tag::name)); }
    friend constexpr Quantity operator/(Quantity a, std::int64_t k) { return Quantity(a.v_ / k); }
    friend constexpr auto operator<=>(Quantity, Quantity) = default;

private:
    std::int64_t v_ = 0;
};

struct BytesTag {
    static constexpr const char* name = "a byte count";
};
struct ElementsTag {
    static constexpr const char* name = "an element count";
};
using Bytes = Quantity<BytesTag>;
using Elements = Quantity<ElementsTag>;

// Seconds stay a plain double: durations are summed, scaled and compared, never mixed with counts.
using Seconds = double;

constexpr std::int64_t kKiB = 1024;
constexpr std::int64_t kMiB = 1024 * kKiB;
constexpr std::int64_t kGiB = 1024 * kMiB;

// For a >= 0, b >= 1; exact where a + b - 1 would overflow.
constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

}  // namespace shardsim
