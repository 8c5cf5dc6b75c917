#include "shardsim/device/memory.hpp"

#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::device {

OutOfMemory::OutOfMemory(const std::string& what, std::int64_t b, MemCategory c, int o, const MemoryByCategory& in_use)
    : std::runtime_error("out of memory: " + what + " asked for " + format_bytes(b) + " of " +
                         std::string(category_name(c)) + (o < 0 ? std::string(" (outside any op: the state set up before the first)") : " (op " + std::to_string(o) + ")") + " with " +
                         format_bytes(c == MemCategory::offloaded ? in_use.host_total() : in_use.device_total()) +
                         " already in use"),
      bytes(b),
      category(c),
      op(o),
      in_use(c == MemCategory::offloaded ? in_use.host_total() : in_use.device_total()) {}

TrackingAllocator::TrackingAllocator(RawMemory device, RawMemory host) : device_(std::move(device)), host_(std::move(host)) {}

TrackingAllocator::~TrackingAllocator() {
    for (auto& [p, a] : live_) (a.category == MemCategory::offloaded ? host_ : device_).release(p);
}

void* TrackingAllocator::allocate(std::int64_t bytes, MemCategory category, const std::string& what) {
    if (bytes <= 0) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    RawMemory& raw = category == MemCategory::offloaded ? host_ : device_;
    if (device_limit_ > 0 && category != MemCategory::offloaded && current_.device_total() + bytes > device_limit_)
        throw OutOfMemory(what, bytes, category, op(), current_);
    void* p = raw.allocate(bytes);
    if (!p) throw OutOfMemory(what, bytes, category, op(), current_);
    live_[p] = {bytes, category, op(), what};
    current_[category] += bytes;
    if (op() >= 0 && static_cast<std::size_t>(op()) < op_net_.size()) op_net_[static_cast<std::size_t>(op())][category] += bytes;
    // The peak is the device's: host allocations never replace a higher device peak.
    if (current_.device_total() > peak_.device_total()) peak_ = current_;
    return p;
}

void TrackingAllocator::set_device_limit(std::int64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    device_limit_ = bytes;
}

void TrackingAllocator::release(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    SHARDSIM_ASSERT(it != live_.end(), "release of memory the tracking allocator does not own");
    current_[it->second.category] -= it->second.bytes;
    if (op() >= 0 && static_cast<std::size_t>(op()) < op_net_.size())
        op_net_[static_cast<std::size_t>(op())][it->second.category] -= it->second.bytes;
    (it->second.category == MemCategory::offloaded ? host_ : device_).release(p);
    live_.erase(it);
}

namespace {
thread_local int t_op = -1;
}  // namespace

void TrackingAllocator::set_op(int op) { t_op = op; }
int TrackingAllocator::op() { return t_op; }

MemoryByCategory TrackingAllocator::current() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
}

MemoryByCategory TrackingAllocator::peak() const {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_;
}

void TrackingAllocator::reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = current_;
}

std::pair<MemoryByCategory, MemoryByCategory> TrackingAllocator::sample_and_reset() {
    std::lock_guard<std::mutex> lock(mu_);
    auto out = std::make_pair(current_, peak_);
    peak_ = current_;
    return out;
}

void TrackingAllocator::reset_op_tallies(std::size_t ops) {
    std::lock_guard<std::mutex> lock(mu_);
    op_net_.assign(ops, MemoryByCategory{});
}

MemoryByCategory TrackingAllocator::op_net(int op) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (op < 0 || static_cast<std::size_t>(op) >= op_net_.size()) return {};
    return op_net_[static_cast<std::size_t>(op)];
}

std::vector<Allocation> TrackingAllocator::live() const {
    std::lock_guard<std::mutex> lock(mu_);
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

}  // namespace shardsim::device
