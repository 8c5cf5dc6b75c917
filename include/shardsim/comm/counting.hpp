#pragma once
// A Communicator that counts: every collective call is passed on to the wrapped communicator and
// its nccl-tests size (plan/collective.hpp: the gathered output of all-gather, the whole input of
// reduce-scatter, the buffer of all-reduce) is added to the op the calling thread is running.
// What the executor reports as "collective sizes as measured" is what went through the library
// here, not the sizes of the buffers it allocated.
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "shardsim/comm/communicator.hpp"

namespace shardsim::comm {

// Sizes per op, shared by the counting communicators of one executor. The op tag is per thread
// (each lane thread runs one op at a time), set by whoever runs the op.
class CallLog {
public:
    static void set_current_op(int op);
    static int current_op();

    void reset(std::size_t ops);
    void add(std::int64_t size_bytes);
    std::int64_t size(int op) const;  // -1: no collective was called for `op`

private:
    mutable std::mutex mu_;
    std::vector<std::int64_t> size_;
};

class CountingCommunicator final : public Communicator {
public:
    CountingCommunicator(Communicator& inner, CallLog& log) : inner_(inner), log_(log) {}
    std::string backend() const override { return inner_.backend(); }
    int rank() const override { return inner_.rank(); }
    int size() const override { return inner_.size(); }
    void all_gather(const void* send, void* recv, std::int64_t count, DType dtype) override;
    void reduce_scatter(const void* send, void* recv, std::int64_t count, DType dtype) override;
    void all_reduce(const void* send, void* recv, std::int64_t count, DType dtype) override;
    void broadcast(void* buf, std::int64_t count, DType dtype, int root) override;
    void barrier() override { inner_.barrier(); }
    std::unique_ptr<Communicator> split(int color, int key) override { return inner_.split(color, key); }
    void abort() noexcept override { inner_.abort(); }

private:
    Communicator& inner_;
    CallLog& log_;
};

}  // namespace shardsim::comm
