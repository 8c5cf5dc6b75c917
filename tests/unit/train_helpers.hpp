#pragma once
// Helpers shared by the exec tests (unit and gpu): tiny plans, host <-> device tensors, and a
// single-process trainer that holds every parameter unsharded, runs the Transformer call by call
// (program order forward, reverse backward) and steps AdamW or SGD with the device's kernels.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "shardsim/nn/data.hpp"
#include "shardsim/device/device.hpp"
#include "shardsim/core/half.hpp"
#include "shardsim/nn/init.hpp"
#include "shardsim/nn/transformer.hpp"
#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/plan.hpp"

namespace shardsim::test {

// The original T5 (v1.0) at toy size: ReLU FFN and a head tied to the shared embedding (scaled
// by d_model^-0.5), which the catalogue's tiny-t5 (v1.1 style) does not cover.
inline std::string tiny_t5_v10_file() {
    static const std::string path = [] {
        const std::string p = std::filesystem::temp_directory_path() / ("shardsim-tiny-t5-v10-" + std::to_string(::getpid()) + ".ini");
        std::ofstream(p) << "[model]\nname = tiny-t5-v10\narch = t5\nvocab = 96\nffn_kind = relu\ntied_embeddings = true\n"
                            "relative_buckets = 8\nmax_positions = 64\n[encoder]\nlayers = 2\nhidden = 32\nheads = 4\n"
                            "head_dim = 8\nffn = 64\n[decoder]\nlayers = 2\nhidden = 32\nheads = 4\nhead_dim = 8\nffn = 64\n"
                            "cross_attention_layers = 1\n";
        return p;
    }();
    return path;
}

inline bool encoder_decoder(const std::string& model) {
    return model == "tiny-t5" || model == "tiny-codet5p" || model == "tiny-t5-v10";
}

// A one-process job on the CPU host for a tiny model: micro-batch 2, 12 tokens (encoder-decoder:
// 12 encoder, 8 decoder), fp32, AdamW; `sets` override any key ("lora.rank=4", ...).
inline plan::PlanPtr tiny_plan(const std::string& model, const std::vector<std::string>& sets = {}) {
    std::string text = "[job]\nmodel = " + (model == "tiny-t5-v10" ? tiny_t5_v10_file() : model) +
                       "\ntopology = cpu-host\nseed = 7\n[parallel]\nstrategy = ddp\nworld_size = 1\n"
                       "[precision]\nparams = fp32\ngrads = fp32\nreduce = fp32\n"
                       "[optimizer]\nname = adamw\nlr = 0.01\n[batch]\nmicro_batch = 2\nseq_len = 12\n";
    if (encoder_decoder(model)) text += "decoder_seq_len = 8\n";
    return plan::ShardingPlan::build(model::load_scenario_text("tiny-test.ini", text, "", sets));
}

// LoRA on every projection module the architecture names (that the model has).
inline std::vector<std::string> lora_all(const std::string& model) {
    if (model == "tiny-gpt2") return {"lora.rank=4", "lora.alpha=8", "lora.targets=c_attn,c_proj,c_fc"};
    if (model == "tiny-llama")
        return {"lora.rank=4", "lora.alpha=8", "lora.targets=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"};
    if (model == "tiny-bloom")
        return {"lora.rank=4", "lora.alpha=8", "lora.targets=query_key_value,dense,dense_h_to_4h,dense_4h_to_h"};
    if (model == "tiny-t5") return {"lora.rank=4", "lora.alpha=8", "lora.targets=q,k,v,o,wi_0,wi_1,wo"};
    if (model == "tiny-t5-v10") return {"lora.rank=4", "lora.alpha=8", "lora.targets=q,v,wi"};
    return {"lora.rank=4", "lora.alpha=8", "lora.targets=qkv_proj,out_proj,fc_in,fc_out,q_proj,k_proj,v_proj"};
}

inline const std::vector<std::string>& tiny_models() {
    static const std::vector<std::string> m = {"tiny-gpt2", "tiny-llama", "tiny-bloom", "tiny-t5", "tiny-codet5p", "tiny-t5-v10"};
    return m;
}

// A tracked device buffer holding a tensor.
struct DeviceTensor {
    device::Buffer buf;
    device::Tensor t;
};

inline DeviceTensor upload(device::Device& dev, const std::vector<double>& v, DType dt, std::vector<std::int64_t> shape,
                           MemCategory cat = MemCategory::temporaries) {
    DeviceTensor d;
    d.t = device::Tensor{nullptr, dt, std::move(shape)};
    SHARDSIM_ASSERT(d.t.numel() == static_cast<std::int64_t>(v.size()), "upload: shape and values differ");
    d.buf = device::Buffer(dev.allocator(), d.t.bytes(), cat, "test tensor");
    d.t.data = d.buf.data();
    std::vector<std::uint16_t> h16(v.size());
    std::vector<float> h32(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        h32[i] = static_cast<float>(v[i]);
        if (dt != DType::fp32) shardsim::store_value(h16.data(), dt, static_cast<std::int64_t>(i), h32[i]);
    }
    dev.copy_from_host(d.t.data, dt == DType::fp32 ? static_cast<const void*>(h32.data()) : h16.data(), d.t.bytes());
    return d;
}

inline DeviceTensor zeros(device::Device& dev, DType dt, std::vector<std::int64_t> shape,
                          MemCategory cat = MemCategory::temporaries) {
    std::int64_t n = 1;
    for (auto s : shape) n *= s;
    return upload(dev, std::vector<double>(static_cast<std::size_t>(n), 0.0), dt, std::move(shape), cat);
}

inline std::vector<double> download(device::Device& dev, const device::Tensor& t) {
    std::vector<std::uint8_t> raw(static_cast<std::size_t>(t.bytes()));
    dev.copy_to_host(raw.data(), t.data, t.bytes());
    std::vector<double> out(static_cast<std::size_t>(t.numel()));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = shardsim::load_value(raw.data(), t.dtype, static_cast<std::int64_t>(i));
    return out;
}

inline std::vector<double> random_values(std::size_t n, std::uint64_t seed, double scale = 1.0) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> dist(0.0, scale);
    std::vector<double> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

// Every parameter unsharded on one device, with gradients, master weights and optimizer states.
class Trainer {
public:
    Trainer(plan::PlanPtr plan, device::Device& dev, std::uint64_t seed = 7)
        : plan_(std::move(plan)), dev_(dev), seed_(seed) {
        const auto& p = plan_->precision();
        for (const auto& u : plan_->units()) {
            Unit s;
            for (const auto& t : u.tensors) {
                const auto init = nn::initial_values(seed_, t, 0, t.numel().count());
                s.params.push_back(upload(dev_, std::vector<double>(init.begin(), init.end()), p.params, t.shape, MemCategory::params));
                s.p.tensors.push_back(s.params.back().t);
                State st;
                if (t.trainable) {
                    st.grad = zeros(dev_, p.grads, t.shape, MemCategory::grads);
                    if (p.master)
                        st.master = upload(dev_, std::vector<double>(init.begin(), init.end()), DType::fp32, t.shape,
                                           MemCategory::master_params);
                    for (int m = 0; m < p.moment_count; ++m) st.moments.push_back(zeros(dev_, p.moments, t.shape, MemCategory::optimizer_states));
                }
                s.g.tensors.push_back(st.grad.t);
                s.state.push_back(std::move(st));
            }
            units_.push_back(std::move(s));
        }
        const auto shape = plan_->batch_shape();
        model_ = std::make_unique<nn::Transformer>(*plan_, dev_, 1.0 / static_cast<double>(shape.tokens(model::Stream::decoder)));
    }

    nn::Transformer& model() { return *model_; }
    const plan::ShardingPlan& plan() const { return *plan_; }

    nn::Batch batch(std::int64_t step) const {
        const auto shape = plan_->batch_shape();
        return nn::make_batch(plan_->scenario().job.seed, nn::first_sample(step, 0, 0, 1, 1, shape.batch), shape.batch, shape,
                                plan_->scenario().model.vocab);
    }

    device::CallTensors params(int call) {
        device::CallTensors c;
        for (int u : plan_->program().at(static_cast<std::size_t>(call)).reads) c.units.push_back(&units_[static_cast<std::size_t>(u)].p);
        return c;
    }
    device::CallTensors grads(int call) {
        device::CallTensors c;
        for (int u : plan_->program().at(static_cast<std::size_t>(call)).reads) c.units.push_back(&units_[static_cast<std::size_t>(u)].g);
        return c;
    }
    int calls() const { return static_cast<int>(plan_->program().size()); }

    double forward(const nn::Batch& b) {
        model_->start_micro_batch(b);
        for (int i = 0; i < calls(); ++i) model_->forward(i, params(i));
        return model_->last_loss();
    }
    void backward() {
        for (int i = calls() - 1; i >= 0; --i) {
            model_->recompute(i, params(i));
            model_->backward(i, params(i), grads(i));
        }
    }
    void zero_grads() {
        for (auto& u : units_)
            for (auto& s : u.state)
                if (s.grad.buf) dev_.fill_zero(s.grad.t.data, s.grad.t.bytes());
    }
    // One optimizer step on batch `step`; returns the loss before the update.
    double step(std::int64_t step) {
        zero_grads();
        const double loss = forward(batch(step));
        backward();
        update(step + 1);
        return loss;
    }

    void update(std::int64_t t) {
        const auto& job = plan_->scenario().job;
        for (auto& u : units_)
            for (std::size_t i = 0; i < u.state.size(); ++i) {
                State& s = u.state[i];
                if (!s.grad.buf) continue;
                const device::Tensor param = s.master.buf ? s.master.t : u.params[i].t;
                const device::Tensor copy = s.master.buf ? u.params[i].t : device::Tensor{};
                if (job.optimizer == config::OptimizerKind::adamw) {
                    device::AdamWOp op;
                    op.param = param;
                    op.grad = s.grad.t;
                    op.exp_avg = s.moments.at(0).t;
                    op.exp_avg_sq = s.moments.at(1).t;
                    op.param_copy = copy;
                    op.lr = static_cast<float>(job.lr);
                    op.beta1 = static_cast<float>(job.beta1);
                    op.beta2 = static_cast<float>(job.beta2);
                    op.eps = static_cast<float>(job.eps);
                    op.weight_decay = static_cast<float>(job.weight_decay);
                    op.step = t;
                    dev_.adamw(op);
                } else {
                    device::SgdOp op;
                    op.param = param;
                    op.grad = s.grad.t;
                    op.momentum_buf = s.moments.empty() ? device::Tensor{} : s.moments[0].t;
                    op.param_copy = copy;
                    op.lr = static_cast<float>(job.lr);
                    op.momentum = static_cast<float>(job.momentum);
                    op.weight_decay = static_cast<float>(job.weight_decay);
                    dev_.sgd(op);
                }
            }
    }

    std::vector<double> values(int unit, int tensor) { return download(dev_, at(unit, tensor).params[static_cast<std::size_t>(tensor)].t); }
    std::vector<double> grad(int unit, int tensor) {
        const auto& g = at(unit, tensor).state[static_cast<std::size_t>(tensor)].grad;
        return g.buf ? download(dev_, g.t) : std::vector<double>{};
    }
    void set_values(int unit, int tensor, const std::vector<double>& v) {
        const device::Tensor& t = at(unit, tensor).params[static_cast<std::size_t>(tensor)].t;
        DeviceTensor src = upload(dev_, v, t.dtype, t.shape);
        dev_.copy(t.data, src.t.data, t.bytes());
    }

private:
    struct State {
        DeviceTensor grad, master;
        std::vector<DeviceTensor> moments;
    };
    struct Unit {
        std::vector<DeviceTensor> params;
        std::vector<State> state;
        device::UnitTensors p, g;
    };
    Unit& at(int unit, int tensor) {
        Unit& u = units_.at(static_cast<std::size_t>(unit));
        SHARDSIM_ASSERT(tensor >= 0 && tensor < static_cast<int>(u.params.size()), "no such tensor");
        return u;
    }

    plan::PlanPtr plan_;
    device::Device& dev_;
    std::uint64_t seed_;
    std::vector<Unit> units_;
    std::unique_ptr<nn::Transformer> model_;
};

}  // namespace shardsim::test
