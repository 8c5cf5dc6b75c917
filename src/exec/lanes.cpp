#include "shardsim/exec/lanes.hpp"

#include <chrono>

#include "shardsim/comm/watchdog.hpp"
#include "shardsim/core/error.hpp"

namespace shardsim::exec {

using device::Device;
using device::DeviceStream;

namespace {
double steady_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
DeviceStream device_stream(plan::OpStream s) {
    switch (s) {
        case plan::OpStream::comm: return DeviceStream::comm;
        case plan::OpStream::copy: return DeviceStream::copy;
        default: return DeviceStream::compute;
    }
}
}  // namespace

Lanes::Lanes(Device& device, std::size_t ops, Hook hook, bool worker_threads)
    : device_(device), hook_(std::move(hook)), gpu_(device.is_gpu()), threads_(!gpu_ && worker_threads), slots_(ops) {
    if (threads_) {
        comm_.thread = std::thread([this] { worker_loop(comm_); });
        copy_.thread = std::thread([this] { worker_loop(copy_); });
    }
    reset_epoch();
}

Lanes::~Lanes() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (comm_.thread.joinable()) comm_.thread.join();
    if (copy_.thread.joinable()) copy_.thread.join();
}

double Lanes::now() const { return steady_seconds() - epoch_; }

void Lanes::reset_epoch() {
    drain();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& s : slots_) s = Slot{};
    if (gpu_) {
        device_.synchronize();
        device_.set_stream(DeviceStream::compute);
        epoch_event_ = device_.record();
        device_.synchronize();
    }
    epoch_ = steady_seconds();
}

void Lanes::wait_for(const std::vector<int>& deps) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] {
        if (failure_) return true;
        for (int d : deps)
            if (!slots_[static_cast<std::size_t>(d)].done) return false;
        return true;
    });
    if (failure_) std::rethrow_exception(failure_);
}

void Lanes::run(const Task& t) {
    wait_for(t.deps);
    Slot& s = slots_[static_cast<std::size_t>(t.op)];
    s.t0 = now();
    hook_(t.op, plan::Phase::start);
    t.work();
    hook_(t.op, plan::Phase::end);
    const double t1 = now();
    {
        std::lock_guard<std::mutex> lock(mu_);
        s.t1 = t1;
        s.done = true;
    }
    cv_.notify_all();
}

void Lanes::worker_loop(Worker& w) {
    for (;;) {
        Task t;
        {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [&] { return stopping_ || !w.queue.empty(); });
            if (w.queue.empty()) return;
            t = std::move(w.queue.front());
            w.queue.pop_front();
        }
        try {
            run(t);
            {
                std::lock_guard<std::mutex> lock(mu_);
                ++finished_;
            }
            cv_.notify_all();
        } catch (...) {
            {
                std::lock_guard<std::mutex> lock(mu_);
                if (!failure_) failure_ = std::current_exception();
                // Whatever this lane still holds will never run.
                w.queue.clear();
            }
            cv_.notify_all();
        }
    }
}

void Lanes::submit_gpu(int op, plan::OpStream stream, const std::vector<int>& deps, const std::function<void()>& work) {
    Slot& s = slots_[static_cast<std::size_t>(op)];
    if (stream == plan::OpStream::host) {
        synchronize_watched();  // host work reads what the streams produced
        s.t0 = now();
        hook_(op, plan::Phase::start);
        work();
        hook_(op, plan::Phase::end);
        s.t1 = now();
        s.done = true;
        return;
    }
    device_.set_stream(device_stream(stream));
    for (int d : deps) {
        const Slot& ds = slots_[static_cast<std::size_t>(d)];
        if (ds.e1.id >= 0) device_.wait(ds.e1);
    }
    s.e0 = device_.record();
    hook_(op, plan::Phase::start);
    work();
    hook_(op, plan::Phase::end);
    s.e1 = device_.record();
    s.done = true;
    device_.set_stream(DeviceStream::compute);
}

void Lanes::submit(int op, plan::OpStream stream, const std::vector<int>& deps, std::function<void()> work) {
    if (gpu_) {
        submit_gpu(op, stream, deps, work);
        return;
    }
    Task t{op, deps, std::move(work)};
    if (threads_ && (stream == plan::OpStream::comm || stream == plan::OpStream::copy)) {
        Worker& w = stream == plan::OpStream::comm ? comm_ : copy_;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (failure_) std::rethrow_exception(failure_);
            w.queue.push_back(std::move(t));
            ++queued_;
        }
        cv_.notify_all();
        return;
    }
    run(t);
}

// With NCCL a collective returns at once; the host waits for it here, so the watchdog watches
// these waits ([Note: collective watchdog]).
void Lanes::synchronize_watched() {
    const comm::InCollective watched(comm::watchdog::device_group(), "wait for the GPU's streams (NCCL collectives in flight)");
    device_.synchronize();
}

void Lanes::drain() {
    if (gpu_) {
        synchronize_watched();
        const double base = device_.event_seconds(epoch_event_);
        for (auto& s : slots_) {
            if (s.e0.id >= 0) s.t0 = device_.event_seconds(s.e0) - base;
            if (s.e1.id >= 0) s.t1 = device_.event_seconds(s.e1) - base;
        }
        return;
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return failure_ || queued_ == finished_; });
    if (failure_) std::rethrow_exception(failure_);
}

}  // namespace shardsim::exec
