#pragma once
// The memory categories: one enum, used by the plan's ledger, the simulator, the executor's
// tracking allocator, the HDF5 columns and every report.
#include <array>
#include <string_view>

#include "shardsim/core/units.hpp"

namespace shardsim {

enum class MemCategory {
    params,            // resident parameters in their compute dtype (sharded or full)
    gathered_params,   // all-gather outputs: unsharded parameters of live units
    grads,             // gradient storage (full, sharded, or an unsharded unit before reduction)
    master_params,     // fp32 master copy of 16-bit parameters
    optimizer_states,  // Adam moments / SGD momentum
    activations,       // tensors saved for backward
    comm_buffers,      // buckets and dtype-cast buffers of collectives
    temporaries,       // transient workspaces of compute ops and the optimizer step
    runtime_overhead,  // CUDA context, NCCL buffers, allocator slack
    offloaded,         // host side: optimizer states / params moved to CPU memory
};

inline constexpr int kMemCategoryCount = 10;

inline constexpr std::array<MemCategory, kMemCategoryCount> kAllMemCategories = {
    MemCategory::params,           MemCategory::gathered_params, MemCategory::grads,
    MemCategory::master_params,    MemCategory::optimizer_states, MemCategory::activations,
    MemCategory::comm_buffers,     MemCategory::temporaries,     MemCategory::runtime_overhead,
    MemCategory::offloaded};

std::string_view category_name(MemCategory c);
constexpr int category_index(MemCategory c) { return static_cast<int>(c); }
// Everything except `offloaded` lives on the device.
constexpr bool on_device(MemCategory c) { return c != MemCategory::offloaded; }
// The persistent, sharded model states that the ZeRO formulas describe.
constexpr bool is_model_state(MemCategory c) {
    return c == MemCategory::params || c == MemCategory::grads || c == MemCategory::master_params ||
           c == MemCategory::optimizer_states;
}

// Bytes per category; the unit of every memory sample.
struct MemoryByCategory {
    std::array<std::int64_t, kMemCategoryCount> bytes{};

    std::int64_t& operator[](MemCategory c) { return bytes[category_index(c)]; }
    std::int64_t operator[](MemCategory c) const { return bytes[category_index(c)]; }
    std::int64_t device_total() const;
    std::int64_t host_total() const { return (*this)[MemCategory::offloaded]; }
    MemoryByCategory& operator+=(const MemoryByCategory& o);
    bool operator==(const MemoryByCategory&) const = default;
};

}  // namespace shardsim
