#pragma once
// Overflow-checked int64 arithmetic for every count that user input can make large (elements,
// bytes, tokens). A product or sum that would wrap is bad input, reported as an InputError that
// names what overflowed and the operands, never a negative size that "fits". The schema's maxima
// keep ordinary jobs far from the limit; these checks catch the combinations the maxima alone
// cannot (e.g. every dimension near its maximum at once).
#include <cstdint>
#include <initializer_list>

#include "shardsim/core/error.hpp"

namespace shardsim {

// An InputError: the sizes came from the user's files or --set values.
class OverflowError : public InputError {
public:
    using InputError::InputError;
};

// "<what> overflows int64: <a> <op> <b> is beyond 9,223,372,036,854,775,807 (allowed: ...)"
[[noreturn]] void throw_overflow(const char* what, std::int64_t a, char op, std::int64_t b);

constexpr std::int64_t checked_add(std::int64_t a, std::int64_t b, const char* what = "a size") {
    std::int64_t r = 0;
    if (__builtin_add_overflow(a, b, &r)) throw_overflow(what, a, '+', b);
    return r;
}

constexpr std::int64_t checked_sub(std::int64_t a, std::int64_t b, const char* what = "a size") {
    std::int64_t r = 0;
    if (__builtin_sub_overflow(a, b, &r)) throw_overflow(what, a, '-', b);
    return r;
}

constexpr std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* what = "a size") {
    std::int64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r)) throw_overflow(what, a, 'x', b);
    return r;
}

// The product of several factors, each step checked.
constexpr std::int64_t checked_product(std::initializer_list<std::int64_t> factors, const char* what = "a size") {
    std::int64_t r = 1;
    for (std::int64_t f : factors) r = checked_mul(r, f, what);
    return r;
}

}  // namespace shardsim
