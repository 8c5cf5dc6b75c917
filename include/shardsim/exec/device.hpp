#pragma once
// A compute device: tracked allocation, data movement, GEMMs, the elementwise and reduction
// kernels the transformer needs, and timing. CpuDevice (CBLAS, one thread per rank) always;
// CudaDevice (cuBLAS + our kernels) when built with CUDA.
//
// Streams: kernels run on the device's current stream (compute, comm or copy). On the CPU every
// stream runs on the calling thread at once; on a GPU they are CUDA streams, and an Event
// recorded on one stream can be waited for on another — overlap without a host sync.
#include <cstdint>
#include <memory>
#include <string>

#include "shardsim/exec/memory.hpp"
#include "shardsim/exec/tensor.hpp"

namespace shardsim::exec {

enum class DeviceStream { compute, comm, copy };

// A point on a stream; its time becomes readable once the stream has passed it.
struct Event {
    int id = -1;
};

class Device {
public:
    virtual ~Device() = default;
    virtual std::string name() const = 0;
    virtual bool is_gpu() const = 0;
    TrackingAllocator& allocator() { return *allocator_; }

    // --- streams, events, time -----------------------------------------------------------
    virtual void set_stream(DeviceStream s) = 0;
    virtual DeviceStream stream() const = 0;
    virtual Event record() = 0;                 // on the current stream
    virtual void wait(Event e) = 0;             // the current stream waits for e
    virtual void synchronize() = 0;             // the host waits for every stream
    virtual double event_seconds(Event e) = 0;  // time of e since the device was made (after it completed)
    // Bytes the runtime itself holds on the device (CUDA context etc.; 0 on the CPU).
    virtual std::int64_t runtime_bytes() = 0;

    // --- data movement ---------------------------------------------------------------------
    virtual void copy(void* dst, const void* src, std::int64_t bytes) = 0;            // device -> device
    virtual void copy_to_host(void* host, const void* dev, std::int64_t bytes) = 0;   // device -> host
    virtual void copy_from_host(void* dev, const void* host, std::int64_t bytes) = 0; // host -> device
    virtual void fill_zero(void* dst, std::int64_t bytes) = 0;
    // dst = src converted between dtypes (round-to-nearest-even into 16 bits); same numel.
    virtual void convert(const Tensor& src, const Tensor& dst) = 0;
    // dst += src (dst and src of any dtypes, same numel), accumulating in fp32.
    virtual void accumulate(const Tensor& dst, const Tensor& src) = 0;

    // --- kernels ------------------------------------------------------------------------------
    // (GEMM, norms, activations, attention softmax, rotary, embedding, cross-entropy, AdamW,
    // SGD, ...: declared here by the compute layer.)

    // GEMM FLOPs performed on this device (2 per multiply-add).
    double gemm_flops() const { return gemm_flops_; }

protected:
    std::unique_ptr<TrackingAllocator> allocator_;
    double gemm_flops_ = 0;
};

// One thread per process unless `threads` says otherwise.
std::unique_ptr<Device> make_cpu_device(int threads = 1);
// Whether this build has CUDA and a GPU is visible; `why` says why not.
bool cuda_available(std::string* why);
// The GPU `index` as seen by this process (after CUDA_VISIBLE_DEVICES).
std::unique_ptr<Device> make_cuda_device(int index);

}  // namespace shardsim::exec
