#pragma once
// Collectives over a group of ranks. Two backends: MpiCommunicator (host buffers, blocking
// calls — the executor runs them on its communication thread) and NcclCommunicator (device
// buffers, stream-ordered on the device's communication stream: the call returns at once).
//
// Buffer conventions (the nccl-tests ones):
//   all_gather      send: `count` elements; recv: size*count, rank-major. In place when
//                   send == recv + rank*count elements.
//   reduce_scatter  send: size*count elements, rank-major blocks; recv: the sum of block `rank`.
//                   In place when recv == send + rank*count elements.
//   all_reduce      send, recv: `count` elements (may be the same buffer).
// Reductions are sums; 16-bit values are added in fp32 and rounded back (round-to-nearest-even).
#include <cstdint>
#include <memory>
#include <string>

#include "shardsim/core/dtype.hpp"

namespace shardsim::comm {

class Communicator {
public:
    virtual ~Communicator() = default;
    virtual std::string backend() const = 0;  // "mpi" | "nccl"
    virtual int rank() const = 0;
    virtual int size() const = 0;

    virtual void all_gather(const void* send, void* recv, std::int64_t count, DType dtype) = 0;
    virtual void reduce_scatter(const void* send, void* recv, std::int64_t count, DType dtype) = 0;
    virtual void all_reduce(const void* send, void* recv, std::int64_t count, DType dtype) = 0;
    virtual void broadcast(void* buf, std::int64_t count, DType dtype, int root) = 0;
    virtual void barrier() = 0;
    // The ranks of this group with the same `color`, ordered by `key` (collective).
    virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
    // Ends every outstanding operation without waiting for the other ranks (before aborting).
    virtual void abort() noexcept = 0;
};

}  // namespace shardsim::comm
