#pragma once
#include <optional>
#include <string_view>

#include "shardsim/core/units.hpp"

namespace shardsim {

enum class DType { fp32, bf16, fp16 };

constexpr std::int64_t dtype_size(DType t) { return t == DType::fp32 ? 4 : 2; }
constexpr Bytes bytes_of(Elements n, DType t) { return Bytes(checked_mul(n.count(), dtype_size(t), "a byte count")); }
constexpr bool is_16bit(DType t) { return dtype_size(t) == 2; }

std::string_view dtype_name(DType t);
std::optional<DType> parse_dtype(std::string_view s);
inline constexpr std::string_view kDTypeAllowed = "fp32, bf16, fp16";

}  // namespace shardsim
