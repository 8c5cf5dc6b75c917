#pragma once
// Where the schedule's ops run, in order per lane, after the ops they depend on.
//   CPU: compute and host ops run on the calling thread; comm and copy ops each on a thread of
//        their own when the rank has a core for them (`worker_threads`), so a blocking MPI
//        collective overlaps the compute thread's GEMMs for real; else on the calling thread too,
//        in the order submitted ([Note: a CPU host's cores], config/topology.hpp).
//   GPU: compute, comm and copy are CUDA streams (the work enqueues kernels / NCCL calls and
//        returns); a dependency is an event the consuming stream waits for; host ops wait for the
//        device and run on the calling thread.
// Times are seconds since the last reset_epoch(), read after drain().
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "shardsim/device/device.hpp"
#include "shardsim/plan/schedule.hpp"

namespace shardsim::exec {

using device::Device;
using device::Event;

class Lanes {
public:
    using Hook = std::function<void(int op, plan::Phase phase)>;

    Lanes(Device& device, std::size_t ops, Hook hook, bool worker_threads);
    ~Lanes();
    Lanes(const Lanes&) = delete;
    Lanes& operator=(const Lanes&) = delete;

    // Runs `work` for `op` on `stream` once every op in `deps` (and every earlier op of the same
    // stream) has finished. `hook` is called at the op's start and end, on the lane that runs it.
    void submit(int op, plan::OpStream stream, const std::vector<int>& deps, std::function<void()> work);
    // Waits until every submitted op has finished; rethrows the first failure of any lane.
    void drain();
    // A new step: op slots cleared, times relative to now.
    void reset_epoch();
    double start(int op) const { return slots_[static_cast<std::size_t>(op)].t0; }
    double end(int op) const { return slots_[static_cast<std::size_t>(op)].t1; }

private:
    struct Slot {
        bool done = false;
        double t0 = 0, t1 = 0;
        Event e0, e1;
    };
    struct Task {
        int op;
        std::vector<int> deps;
        std::function<void()> work;
    };
    struct Worker {
        std::thread thread;
        std::deque<Task> queue;
    };

    double now() const;
    void wait_for(const std::vector<int>& deps);
    void run(const Task& t);  // on the lane's thread
    void worker_loop(Worker& w);
    void submit_gpu(int op, plan::OpStream stream, const std::vector<int>& deps, const std::function<void()>& work);
    void synchronize_watched();

    Device& device_;
    Hook hook_;
    bool gpu_;
    bool threads_;  // CPU: comm and copy lanes on threads of their own
    std::vector<Slot> slots_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::exception_ptr failure_;
    bool stopping_ = false;
    std::size_t queued_ = 0, finished_ = 0;  // tasks handed to the lane threads, and done
    Worker comm_, copy_;
    double epoch_ = 0;
    Event epoch_event_;
};

}  // namespace shardsim::exec
