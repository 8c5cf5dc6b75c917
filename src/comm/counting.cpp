#include "shardsim/comm/counting.hpp"

#include "shardsim/plan/collective.hpp"

namespace shardsim::comm {

namespace {
thread_local int g_current_op = -1;

std::int64_t size_of(plan::CollectiveKind k, std::int64_t count, std::int64_t ranks, DType dtype) {
    return plan::collective_info(k).size_elements(count, ranks) * dtype_size(dtype);
}
}  // namespace

void CallLog::set_current_op(int op) { g_current_op = op; }
int CallLog::current_op() { return g_current_op; }

void CallLog::reset(std::size_t ops) {
    std::lock_guard<std::mutex> lock(mu_);
    size_.assign(ops, -1);
}

void CallLog::add(std::int64_t size_bytes) {
    const int op = g_current_op;
    std::lock_guard<std::mutex> lock(mu_);
    if (op < 0 || static_cast<std::size_t>(op) >= size_.size()) return;
    auto& s = size_[static_cast<std::size_t>(op)];
    s = (s < 0 ? 0 : s) + size_bytes;
}

std::int64_t CallLog::size(int op) const {
    std::lock_guard<std::mutex> lock(mu_);
    return op >= 0 && static_cast<std::size_t>(op) < size_.size() ? size_[static_cast<std::size_t>(op)] : -1;
}

void CountingCommunicator::all_gather(const void* send, void* recv, std::int64_t count, DType dtype) {
    log_.add(size_of(plan::CollectiveKind::all_gather, count, size(), dtype));
    inner_.all_gather(send, recv, count, dtype);
}

void CountingCommunicator::reduce_scatter(const void* send, void* recv, std::int64_t count, DType dtype) {
    log_.add(size_of(plan::CollectiveKind::reduce_scatter, count, size(), dtype));
    inner_.reduce_scatter(send, recv, count, dtype);
}

void CountingCommunicator::all_reduce(const void* send, void* recv, std::int64_t count, DType dtype) {
    log_.add(size_of(plan::CollectiveKind::all_reduce, count, size(), dtype));
    inner_.all_reduce(send, recv, count, dtype);
}

void CountingCommunicator::broadcast(void* buf, std::int64_t count, DType dtype, int root) {
    log_.add(size_of(plan::CollectiveKind::broadcast, count, size(), dtype));
    inner_.broadcast(buf, count, dtype, root);
}

}  // namespace shardsim::comm
