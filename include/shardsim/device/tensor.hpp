#pragma once
// A non-owning view of device memory: data, dtype, row-major shape. 16-bit dtypes hold real
// 16-bit values (bf16 / fp16 bit patterns, rounded round-to-nearest-even); compute accumulates
// in fp32.
#include <cstdint>
#include <vector>

#include "shardsim/core/dtype.hpp"

namespace shardsim::device {

struct Tensor {
    void* data = nullptr;
    DType dtype = DType::fp32;
    std::vector<std::int64_t> shape;

    std::int64_t numel() const {
        std::int64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
    std::int64_t bytes() const { return numel() * dtype_size(dtype); }
    bool empty() const { return data == nullptr; }
};

// Every tensor of one unit, indexed like model::Unit::tensors. Entries a call must not touch
// (for gradients: frozen tensors) are empty.
struct UnitTensors {
    std::vector<Tensor> tensors;
};

// What the executor hands to one call of the forward program: one UnitTensors per unit the call
// reads (parallel to model::ProgramStep::reads, the call's own unit first).
struct CallTensors {
    std::vector<const UnitTensors*> units;
};

}  // namespace shardsim::device
