// Compute priced by shape (sim/compute.hpp): the work each op carries adds up to its FLOPs, tile
// and wave quantisation, the memory roofline, the attention rate; MFU and HFU.
#include <doctest/doctest.h>

#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/activations.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/sim/cost.hpp"
#include "shardsim/sim/simulator.hpp"
#include "test_util.hpp"

using namespace shardsim;

namespace {

timeline::RunTimeline simulate(const std::string& job, const std::vector<std::string>& sets = {}) {
    const auto p = plan::ShardingPlan::build(model::load_scenario(job, sets));
    return sim::simulate(*p, plan::build_schedule(*p));
}

sim::ComputeModel a100() {
    return sim::ComputeModel::from(config::load_topology("8x-a100-40g", "", "test", {}), DType::bf16);
}

}  // namespace

TEST_CASE("every compute op's work by shape adds up to its FLOPs, exactly") {
    const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
        {"tiny-llama-cpu", {}},
        {"tiny-llama-cpu", {"memory.activation_checkpointing=selective", "memory.attention=sdpa"}},
        {"tiny-t5-cpu", {"memory.activation_checkpointing=true"}},
        {"tiny-gpt2-cpu", {"memory.activation_checkpointing=selective", "lora.rank=4", "lora.targets=c_attn,c_fc"}},
        {"tiny-gpt2-cpu", {"memory.attention=eager", "lora.rank=4", "lora.targets=c_attn"}},
        {"llama-7b-fsdp-6x-a100-40g", {"memory.attention=sdpa"}},
        {"codet5p-2b-lora-1x-rtx4090", {}},
    };
    for (const auto& [job_binding, sets] : cases) {
        const auto& job = job_binding;  // clang 14: INFO's lambda cannot capture a structured binding
        INFO(job);
        const auto p = plan::ShardingPlan::build(model::load_scenario(job, sets));
        const auto s = plan::build_schedule(*p);
        int compute_ops = 0;
        for (const auto& op : s.ops) {
            if (op.flops == 0) continue;
            ++compute_ops;
            CHECK(op.work.flops() == doctest::Approx(op.flops).epsilon(1e-12));
            CHECK(op.work.kernels > 0);
        }
        CHECK(compute_ops > 0);
    }
}

TEST_CASE("GEMMs: tile and wave quantisation, and the memory roofline") {
    const sim::ComputeModel c = a100();
    REQUIRE(c.spec.sms == 108);
    // 32 x 32 tiles of 128 x 128 on 108 SMs: 10 waves, the last holding 52 tiles.
    CHECK(c.quantisation({4096, 4096, 4096, 1}) == doctest::Approx(1024.0 / 1080.0));
    CHECK(c.quantisation({512, 5120, 4096, 1}) == doctest::Approx(160.0 / 216.0));
    // A tile that sticks out of the matrix is paid in full: 100 x 100 in one 128 x 128 tile.
    CHECK(c.quantisation({100, 100, 64, 108}) == doctest::Approx(100.0 * 100.0 / (128.0 * 128.0)));
    // Large and square: compute-bound, at the ceiling times the quantisation.
    const model::Gemm big{8192, 8192, 8192, 1};
    CHECK(c.gemm_time(big) == doctest::Approx(big.flops() / (312e12 * 0.8 * c.quantisation(big))));
    // A thin product of a huge weight is bound by moving its operands.
    const model::Gemm thin{128, 65536, 65536, 1};
    CHECK(c.gemm_time(thin) == doctest::Approx((128.0 * 65536 + 65536.0 * 65536 + 128.0 * 65536) * 2 / (1555e9 * 0.85)));
    CHECK(c.gemm_time(thin) > thin.flops() / (312e12 * 0.8 * c.quantisation(thin)));
}

TEST_CASE("fused attention runs at its own rate; launches cost per kernel") {
    sim::ComputeModel c = a100();
    model::ComputeWork w;
    w.fused_attention_flops = 1e12;
    w.kernels = 10;
    const double t = c.op_time(w, 0);
    CHECK(t == doctest::Approx(1e12 / (312e12 * 0.6) + 10 * 4e-6));
    c.spec.attention_efficiency = 0.3;
    CHECK(c.op_time(w, 0) > t);
    CHECK(c.op_time({}, 1555e9 * 0.85) == doctest::Approx(1.0));  // memory-bound traffic
}

TEST_CASE("the same model on a GPU with more SMs or a higher GEMM efficiency computes faster") {
    const auto base = report::summary_json(simulate("llama-7b-fsdp-6x-a100-40g"));
    const auto faster = report::summary_json(simulate("llama-7b-fsdp-6x-a100-40g", {"topology.compute.gemm_efficiency=0.95"}));
    CHECK(faster.at("compute_time_s").as_number() < base.at("compute_time_s").as_number());
    const auto sdpa = report::summary_json(simulate("llama-7b-fsdp-6x-a100-40g", {"memory.attention=sdpa"}));
    const auto slow_attention =
        report::summary_json(simulate("llama-7b-fsdp-6x-a100-40g", {"memory.attention=sdpa", "topology.compute.attention_efficiency=0.1"}));
    CHECK(slow_attention.at("compute_time_s").as_number() > sdpa.at("compute_time_s").as_number());
}

TEST_CASE("MFU counts the model's FLOPs, HFU what the hardware executed: checkpointing raises HFU over MFU") {
    const auto plain = report::summary_json(simulate("llama-7b-fsdp-6x-a100-40g", {"topology.intra_node.bandwidth_gbps=3000"}));
    const auto ckpt = report::summary_json(
        simulate("llama-7b-fsdp-6x-a100-40g", {"topology.intra_node.bandwidth_gbps=3000", "memory.activation_checkpointing=true"}));
    for (const auto* j : {&plain, &ckpt}) {
        REQUIRE(j->contains("mfu"));
        REQUIRE(j->contains("hfu"));
        REQUIRE(j->contains("tokens_per_s"));
        // tokens/s: 6 ranks x micro-batch 1 x grad-accum 4 x 512 tokens per step.
        CHECK(j->at("tokens_per_s").as_number() == doctest::Approx(6.0 * 4 * 512 / j->at("step_time_s").as_number()));
        CHECK(j->at("hfu").as_number() == doctest::Approx(j->at("flops_per_rank").as_number() / j->at("step_time_s").as_number() / 312e12));
    }
    // The same model FLOPs per step, a slower step: MFU falls; recompute adds executed FLOPs.
    CHECK(ckpt.at("model_flops_per_step").as_number() == doctest::Approx(plain.at("model_flops_per_step").as_number()));
    CHECK(ckpt.at("mfu").as_number() < plain.at("mfu").as_number());
    CHECK(ckpt.at("hfu").as_number() / ckpt.at("mfu").as_number() > plain.at("hfu").as_number() / plain.at("mfu").as_number());
    // 6N + attention for Llama-7B at 512 tokens: 6 x 6.48e9 matmul weights + the attention term, per token.
    const double per_token = plain.at("model_flops_per_step").as_number() / (4 * 512);
    CHECK(per_token == doctest::Approx(6 * (6.74e9 - 32000.0 * 4096) + 12 * 32 * 4096 * 512.0).epsilon(0.01));
}

// What a forward writes (its activation traffic, priced as elementwise work): what it saves less
// its input, plus the hidden state it hands on. An embedding writes its output rows beside the
// ids it keeps (before, its forward was priced as the ids alone: ~0 on a CPU where it takes
// ~0.1 ms); a block's input and output are one size, so a block's is what it saves.
TEST_CASE("a forward's traffic: an embedding's output rows count; a block's is what it saves") {
    const auto p = plan::ShardingPlan::build(model::load_scenario("tiny-llama-cpu", {}));
    const auto s = plan::build_schedule(*p);
    const std::int64_t tokens = p->batch_shape().tokens(model::Stream::decoder);
    const std::int64_t hidden = p->scenario().model.decoder.hidden * dtype_size(p->precision().params);
    int seen = 0;
    for (const auto& op : s.ops) {
        if (op.kind != plan::OpKind::forward) continue;
        const auto& u = p->units().at(static_cast<std::size_t>(op.unit));
        const plan::CallActivations a = plan::call_activations(*p, op.call);
        CAPTURE(u.name);
        if (u.kind == model::UnitKind::embedding) {
            CHECK(op.activation_bytes == a.saved_bytes() + tokens * hidden);
            ++seen;
        } else if (u.kind == model::UnitKind::head) {
            CHECK(op.activation_bytes == a.saved_bytes() - tokens * hidden);
            ++seen;
        } else {
            CHECK(op.activation_bytes == a.saved_bytes());
        }
    }
    CHECK(seen == 2 * static_cast<int>(p->scenario().job.grad_accum));
}
