#include "shardsim/core/memory.hpp"

namespace shardsim {

std::string_view category_name(MemCategory c) {
    switch (c) {
        case MemCategory::params: return "params";
        case MemCategory::gathered_params: return "gathered_params";
        case MemCategory::grads: return "grads";
        case MemCategory::master_params: return "master_params";
        case MemCategory::optimizer_states: return "optimizer_states";
        case MemCategory::activations: return "activations";
        case MemCategory::comm_buffers: return "comm_buffers";
        case MemCategory::temporaries: return "temporaries";
        case MemCategory::runtime_overhead: return "runtime_overhead";
        case MemCategory::offloaded: return "offloaded";
    }
    return "?";
}

std::int64_t MemoryByCategory::device_total() const {
    std::int64_t s = 0;
    for (MemCategory c : kAllMemCategories)
        if (on_device(c)) s = checked_add(s, (*this)[c], "device memory");
    return s;
}

MemoryByCategory& MemoryByCategory::operator+=(const MemoryByCategory& o) {
    for (int i = 0; i < kMemCategoryCount; ++i) bytes[i] = checked_add(bytes[i], o.bytes[i], "memory of one category");
    return *this;
}

}  // namespace shardsim
