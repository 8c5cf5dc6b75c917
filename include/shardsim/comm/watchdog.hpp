#pragma once
// [Note: collective watchdog]
// A rank that stops (SIGSTOP, a debugger, a hung node) leaves every other rank blocked in its
// next collective, for ever: MPI and NCCL have no timeout of their own. The watchdog is a thread
// per rank that knows which collective each of this rank's threads is in (InCollective marks it:
// the op, its group, how many calls this rank has made on that group) and, when one has waited
// longer than the timeout, asks every member of the group over a communicator of its own what it
// is doing. A member that has not entered that call, or does not answer within a few seconds
// (stopped, or dead), "did not arrive". The lowest rank that did arrive prints one line naming
// the op, the group and those ranks, aborts the NCCL communicators it was given
// (ncclCommAbort), then the job (MPI_Abort, exit kExitCollectiveTimeout); the others wait a
// little for that and do the same themselves if it does not come.
//
// Groups are identified by the order they are added: every rank adds the same groups in the same
// order (run: the step's world-level calls, then the plan's groups), so a group's index and the
// count of calls on it mean the same thing on every member.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "shardsim/comm/communicator.hpp"

namespace shardsim::comm {

// 124, as coreutils' timeout(1) exits when the command it watches runs out of time.
inline constexpr int kExitCollectiveTimeout = 124;

namespace watchdog {

// Adds a group (a name for messages, e.g. "shard group 1", and its members' world ranks) and
// returns its index. Call in the same order on every rank.
int add_group(std::string name, std::vector<int> world_ranks);

// Collective over `world`: starts the watch (a thread and a duplicate of `world`). `timeout_s`
// <= 0 leaves it off. `describe_op` names an op of the schedule for messages ("op 57 (all-gather
// ...)"); the op is the one the calling thread was running (CallLog::current_op).
void start(MPI_Comm world, double timeout_s, std::function<std::string(int op)> describe_op);
// Ends the watch on this rank (joins the thread; not collective).
void stop() noexcept;
bool running();
// The step the run is in, for messages.
void set_step(int step);
// Communicators aborted before the job is (NCCL: ncclCommAbort ends the kernels that wait).
void abort_on_timeout(Communicator* c);
// The group whose "calls" are the host's waits for a GPU's streams: with NCCL a collective
// returns at once and the host blocks in those waits instead (-1: none, CPU runs).
void set_device_group(int group);
int device_group();

}  // namespace watchdog

// Marks the calling thread as inside a collective call on group `group` (an index from
// watchdog::add_group) for its lifetime. `what` names the call ("all-gather"); it must outlive
// the scope (a string literal).
class InCollective {
public:
    InCollective(int group, const char* what);
    ~InCollective();
    InCollective(const InCollective&) = delete;
    InCollective& operator=(const InCollective&) = delete;

private:
    std::int64_t id_;
};

// A Communicator whose every call is a watched collective of `group`.
class WatchedCommunicator final : public Communicator {
public:
    WatchedCommunicator(Communicator& inner, int group) : inner_(inner), group_(group) {}
    std::string backend() const override { return inner_.backend(); }
    int rank() const override { return inner_.rank(); }
    int size() const override { return inner_.size(); }
    void all_gather(const void* send, void* recv, std::int64_t count, DType dtype) override;
    void reduce_scatter(const void* send, void* recv, std::int64_t count, DType dtype) override;
    void all_reduce(const void* send, void* recv, std::int64_t count, DType dtype) override;
    void broadcast(void* buf, std::int64_t count, DType dtype, int root) override;
    void barrier() override;
    std::unique_ptr<Communicator> split(int color, int key) override { return inner_.split(color, key); }
    void abort() noexcept override { inner_.abort(); }

private:
    Communicator& inner_;
    int group_;
};

}  // namespace shardsim::comm
