#pragma once
// The CPU device: host memory, CBLAS GEMMs, single-threaded loops for everything else. Streams
// run immediately on the calling thread, so events are plain timestamps.
#include <chrono>
#include <mutex>
#include <vector>

#include "shardsim/device/device.hpp"

namespace shardsim::device {

class CpuDevice final : public Device {
public:
    explicit CpuDevice(int threads);

    std::string name() const override;
    bool is_gpu() const override { return false; }

    void set_stream(DeviceStream s) override { stream_ = s; }
    DeviceStream stream() const override { return stream_; }
    Event record() override;
    void wait(Event) override {}
    void synchronize() override {}
    double event_seconds(Event e) override;
    std::int64_t runtime_bytes() override { return 0; }

    void copy(void* dst, const void* src, std::int64_t bytes) override;
    void copy_to_host(void* host, const void* dev, std::int64_t bytes) override;
    void copy_from_host(void* dev, const void* host, std::int64_t bytes) override;
    void fill_zero(void* dst, std::int64_t bytes) override;
    void convert(const Tensor& src, const Tensor& dst) override;
    void accumulate(const Tensor& dst, const Tensor& src) override;

    void norm_forward(const NormOp& op) override;
    void norm_backward(const NormGradOp& op) override;
    void activation_forward(Activation f, const Tensor& x, const Tensor& y) override;
    void activation_backward(Activation f, const Tensor& x, const Tensor& dy, const Tensor& dx, bool accumulate) override;
    void mul(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) override;
    void axpby(float alpha, const Tensor& a, float beta, const Tensor& b, const Tensor& out) override;
    void add_bias(const Tensor& x, const Tensor& bias) override;
    void bias_grad(const Tensor& dy, const Tensor& dbias) override;
    void softmax_forward(const SoftmaxOp& op) override;
    void softmax_backward(const SoftmaxGradOp& op) override;
    void rotary(const RotaryOp& op) override;
    void embedding_forward(const EmbeddingOp& op) override;
    void embedding_backward(const EmbeddingOp& op) override;
    void cross_entropy_forward(const CrossEntropyOp& op) override;
    void cross_entropy_backward(const CrossEntropyOp& op, float scale, const Tensor& dlogits) override;
    void cross_entropy_fused(const CrossEntropyOp& op, float scale) override;
    void dropout(const DropoutOp& op) override;
    void copy2d(const Copy2dOp& op) override;
    void adamw(const AdamWOp& op) override;
    void sgd(const SgdOp& op) override;

protected:
    void run_gemm(const GemmOp& op) override;

private:
    int threads_;
    DeviceStream stream_ = DeviceStream::compute;
    std::chrono::steady_clock::time_point start_;
    std::mutex events_mu_;  // the executor's comm and copy lanes record from their own threads
    std::vector<double> events_;
};

}  // namespace shardsim::device
