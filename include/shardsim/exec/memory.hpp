#pragma once
// The tracking allocator: every byte the executor or the model allocates is tagged with its
// memory category and the op that asked for it, so measured memory is reported in the plan's
// categories and can be compared with the ledger op by op.
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "shardsim/core/memory.hpp"

namespace shardsim::exec {

// Raw memory of one kind (host malloc, cudaMalloc, pinned host memory).
struct RawMemory {
    std::function<void*(std::int64_t)> allocate;  // returns nullptr when out of memory
    std::function<void(void*)> release;
    std::string name;                              // "host", "cuda:0"
};

struct Allocation {
    std::int64_t bytes = 0;
    MemCategory category = MemCategory::temporaries;
    int op = -1;
    std::string what;
};

// Thrown when raw memory is exhausted; says who asked for how much.
class OutOfMemory : public std::runtime_error {
public:
    OutOfMemory(const std::string& what, std::int64_t bytes, MemCategory c, int op, const MemoryByCategory& in_use);
    std::int64_t bytes;
    MemCategory category;
    int op;
};

class TrackingAllocator {
public:
    explicit TrackingAllocator(RawMemory device, RawMemory host);
    ~TrackingAllocator();
    TrackingAllocator(const TrackingAllocator&) = delete;
    TrackingAllocator& operator=(const TrackingAllocator&) = delete;

    // `offloaded` goes to host memory, every other category to the device.
    void* allocate(std::int64_t bytes, MemCategory category, const std::string& what);
    void release(void* p);

    // Subsequent allocations are tagged with this op (-1: outside any op).
    void set_op(int op) { op_ = op; }
    int op() const { return op_; }

    const MemoryByCategory& current() const { return current_; }
    // The largest device total since the last reset_peak(), with its breakdown.
    const MemoryByCategory& peak() const { return peak_; }
    void reset_peak() { peak_ = current_; }
    std::vector<Allocation> live() const;

private:
    RawMemory device_, host_;
    std::unordered_map<void*, Allocation> live_;
    MemoryByCategory current_;
    MemoryByCategory peak_;
    int op_ = -1;
};

// A move-only tracked allocation.
class Buffer {
public:
    Buffer() = default;
    Buffer(TrackingAllocator& a, std::int64_t bytes, MemCategory category, const std::string& what);
    ~Buffer() { reset(); }
    Buffer(Buffer&& o) noexcept;
    Buffer& operator=(Buffer&& o) noexcept;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    void reset();
    void* data() const { return data_; }
    template <class T>
    T* as() const { return static_cast<T*>(data_); }
    std::int64_t bytes() const { return bytes_; }
    MemCategory category() const { return category_; }
    explicit operator bool() const { return data_ != nullptr; }

private:
    TrackingAllocator* alloc_ = nullptr;
    void* data_ = nullptr;
    std::int64_t bytes_ = 0;
    MemCategory category_ = MemCategory::temporaries;
};

}  // namespace shardsim::exec
