#pragma once
// The tracking allocator: every byte the executor or the model allocates is tagged with its
// memory category and the op that asked for it, so measured memory is reported in the plan's
// categories and can be compared with the ledger op by op.
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "shardsim/core/memory.hpp"

namespace shardsim::device {

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
    std::int64_t in_use;  // device (or, for `offloaded`, host) bytes already allocated
};

class TrackingAllocator {
public:
    explicit TrackingAllocator(RawMemory device, RawMemory host);
    ~TrackingAllocator();
    TrackingAllocator(const TrackingAllocator&) = delete;
    TrackingAllocator& operator=(const TrackingAllocator&) = delete;

    // `offloaded` goes to host memory, every other category to the device.
    void* allocate(std::int64_t bytes, MemCategory category, const std::string& what);
    // At most this many device bytes at once (0: as much as the raw memory gives). A CPU rank
    // stands in for a GPU of the topology's memory: past it, allocation fails as it would there.
    void set_device_limit(std::int64_t bytes);
    void release(void* p);

    // Subsequent allocations of the calling code are tagged with this op (-1: outside any op).
    // (A per-thread tag: each lane thread runs its own op.)
    static void set_op(int op);
    static int op();

    // Thread-safe: the executor's communication and copy threads allocate too.
    MemoryByCategory current() const;
    // The largest device total since the last reset_peak(), with its breakdown.
    MemoryByCategory peak() const;
    void reset_peak();
    // current() and peak() at once, then reset_peak(): what a memory sample takes.
    std::pair<MemoryByCategory, MemoryByCategory> sample_and_reset();
    std::vector<Allocation> live() const;

    // Per-op tallies: what each op (by the per-thread tag) allocated minus what it freed.
    void reset_op_tallies(std::size_t ops);
    MemoryByCategory op_net(int op) const;

private:
    RawMemory device_, host_;
    std::int64_t device_limit_ = 0;
    std::unordered_map<void*, Allocation> live_;
    mutable std::mutex mu_;
    MemoryByCategory current_;
    MemoryByCategory peak_;
    std::vector<MemoryByCategory> op_net_;
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

}  // namespace shardsim::device
