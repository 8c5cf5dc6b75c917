#include "shardsim/exec/memory.hpp"

#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::exec {

OutOfMemory::OutOfMemory(const std::string& what, std::int64_t b, MemCategory c, int o, const MemoryByCategory& in_use)
    : std::runtime_error("out of memory: " + what + " asked for " + format_bytes(b) + " of " +
                         std::string(category_name(c)) + " (op " + std::to_string(o) + ") with " +
                         format_bytes(c == MemCategory::offloaded ? in_use.host_total() : in_use.device_total()) +
                         " already in use"),
      bytes(b),
      category(c),
      op(o) {}

TrackingAllocator::TrackingAllocator(RawMemory device, RawMemory host) : device_(std::move(device)), host_(std::move(host)) {}

TrackingAllocator::~TrackingAllocator() {
    for (auto& [p, a] : live_) (a.category == MemCategory::offloaded ? host_ : device_).release(p);
}

void* TrackingAllocator::allocate(std::int64_t bytes, MemCategory category, const std::string& what) {
    if (bytes <= 0) return nullptr;
    RawMemory& raw = category == MemCategory::offloaded ? host_ : device_;
    void* p = raw.allocate(bytes);
    if (!p) throw OutOfMemory(what, bytes, category, op_, current_);
    live_[p] = {bytes, category, op_, what};
    current_[category] += bytes;
    if (current_.device_total() > peak_.device_total() || (category == MemCategory::offloaded && current_.host_total() > peak_.host_total()))
        peak_ = current_;
    return p;
}

void TrackingAllocator::release(void* p) {
    if (!p) return;
    auto it = live_.find(p);
    SHARDSIM_ASSERT(it != live_.end(), "release of memory the tracking allocator does not own");
    current_[it->second.category] -= it->second.bytes;
    (it->second.category == MemCategory::offloaded ? host_ : device_).release(p);
    live_.erase(it);
}

std::vector<Allocation> TrackingAllocator::live() const {
    std::vector<Allocation> out;
    for (const auto& [p, a] : live_) out.push_back(a);
    return out;
}

Buffer::Buffer(TrackingAllocator& a, std::int64_t bytes, MemCategory category, const std::string& what)
    : alloc_(&a), data_(a.allocate(bytes, category, what)), bytes_(bytes), category_(category) {}

Buffer::Buffer(Buffer&& o) noexcept : alloc_(o.alloc_), data_(o.data_), bytes_(o.bytes_), category_(o.category_) {
    o.data_ = nullptr;
    o.bytes_ = 0;
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
    if (this != &o) {
        reset();
        alloc_ = o.alloc_;
        data_ = o.data_;
        bytes_ = o.bytes_;
        category_ = o.category_;
        o.data_ = nullptr;
        o.bytes_ = 0;
    }
    return *this;
}

void Buffer::reset() {
    if (data_ && alloc_) alloc_->release(data_);
    data_ = nullptr;
    bytes_ = 0;
}

}  // namespace shardsim::exec
