#pragma once
// Strong quantity types. Element counts and byte counts are different things (llm.c mixed them
// up more than once); keeping them apart in the type system makes `bytes = elements * dtype size`
// the only way across.
#include <compare>
#include <cstdint>

namespace shardsim {

template <class Tag>
class Quantity {
public:
    constexpr Quantity() = default;
    constexpr explicit Quantity(std::int64_t v) : v_(v) {}
    constexpr std::int64_t count() const { return v_; }

    constexpr Quantity& operator+=(Quantity o) { v_ += o.v_; return *this; }
    constexpr Quantity& operator-=(Quantity o) { v_ -= o.v_; return *this; }
    friend constexpr Quantity operator+(Quantity a, Quantity b) { return Quantity(a.v_ + b.v_); }
    friend constexpr Quantity operator-(Quantity a, Quantity b) { return Quantity(a.v_ - b.v_); }
    friend constexpr Quantity operator*(Quantity a, std::int64_t k) { return Quantity(a.v_ * k); }
    friend constexpr Quantity operator*(std::int64_t k, Quantity a) { return Quantity(a.v_ * k); }
    friend constexpr Quantity operator/(Quantity a, std::int64_t k) { return Quantity(a.v_ / k); }
    friend constexpr auto operator<=>(Quantity, Quantity) = default;

private:
    std::int64_t v_ = 0;
};

struct BytesTag {};
struct ElementsTag {};
using Bytes = Quantity<BytesTag>;
using Elements = Quantity<ElementsTag>;

// Seconds stay a plain double: durations are summed, scaled and compared, never mixed with counts.
using Seconds = double;

constexpr std::int64_t kKiB = 1024;
constexpr std::int64_t kMiB = 1024 * kKiB;
constexpr std::int64_t kGiB = 1024 * kMiB;

constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

}  // namespace shardsim
