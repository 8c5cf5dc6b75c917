#pragma once
// The real transformer the executor trains, call by call of the forward program, on a Device.
// It owns no parameters: every call receives the unsharded tensors of the units it reads from
// the executor (resident, or gathered for the call) and, in backward, the buffers to accumulate
// gradients into. It allocates its activations through the device's tracking allocator under
// `activations` (and transient workspaces under `temporaries`), keeping exactly the terms
// plan::call_activations lists, and counts the GEMM FLOPs it performs by model::call_flops's rule.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "shardsim/nn/data.hpp"
#include "shardsim/device/device.hpp"
#include "shardsim/device/tensor.hpp"
#include "shardsim/plan/plan.hpp"

namespace shardsim::nn {

using device::CallTensors;
using device::Device;

class Transformer {
public:
    // `loss_scale` multiplies the summed token losses before backward: the executor passes
    // 1 / (tokens of the whole global batch of one optimizer step), so that gradients summed over
    // micro-batches and ranks are those of the global mean loss.
    Transformer(const plan::ShardingPlan& plan, Device& device, double loss_scale);
    ~Transformer();

    // Token ids of this rank's next micro-batch.
    void start_micro_batch(const Batch& batch);
    void forward(int call, const CallTensors& params);
    // Checkpointed blocks only: rebuild the activations forward dropped.
    void recompute(int call, const CallTensors& params);
    // Accumulates (+=) the gradients of the call's trainable tensors into `grads` (in their
    // dtype) and frees the call's activations.
    void backward(int call, const CallTensors& params, const CallTensors& grads);

    // Mean cross-entropy per token of the last micro-batch's forward (unscaled).
    double last_loss() const;
    // GEMM FLOPs performed since construction.
    double flops() const;
    // The activation terms the last forward (or recompute) of `call` kept, by name and bytes,
    // for the contract test against plan::call_activations.
    std::vector<std::pair<std::string, std::int64_t>> saved_terms(int call) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace shardsim::nn
