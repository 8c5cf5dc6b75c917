#include "shardsim/core/dtype.hpp"

namespace shardsim {

std::string_view dtype_name(DType t) {
    switch (t) {
        case DType::fp32: return "fp32";
        case DType::bf16: return "bf16";
        case DType::fp16: return "fp16";
    }
    return "?";
}

std::optional<DType> parse_dtype(std::string_view s) {
    if (s == "fp32") return DType::fp32;
    if (s == "bf16") return DType::bf16;
    if (s == "fp16") return DType::fp16;
    return std::nullopt;
}

}  // namespace shardsim
