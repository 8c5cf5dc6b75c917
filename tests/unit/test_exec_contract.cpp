// The model against the plan's activation and FLOP contracts on the CPU device (see
// contract_helpers.hpp), for every call of every tiny model, with activation checkpointing off
// and on, LoRA off and on, fp32 and bf16.
#include <doctest/doctest.h>

#include "contract_helpers.hpp"
#include "shardsim/plan/schedule.hpp"

using namespace shardsim;
using test::Measured;

namespace {

// The families with an SDPA path in transformers, and the hidden dropout each applies (Llama has
// attention dropout only: HF LlamaModel drops nothing else).
bool has_sdpa(const std::string& model) { return model == "tiny-gpt2" || model == "tiny-llama"; }
std::string hidden_dropout(const std::string& model) { return model == "tiny-llama" ? "0" : "0.2"; }

// One variant's contract, named for the failure message.
void check_variant(const std::string& model, DType dt, bool ckpt, bool lora, const std::vector<std::string>& sets) {
    std::string what = model + " " + std::string(dtype_name(dt)) + (ckpt ? " checkpointed" : "") + (lora ? " lora" : "");
    for (const auto& s : sets) what += " " + s;
    CAPTURE(what);
    auto dev = device::make_cpu_device();
    test::check_contract(*dev, model, ckpt, lora, dt, sets);
}

}  // namespace

TEST_CASE("activation and FLOP contracts: every call of every tiny model, checkpointing and LoRA on and off") {
    for (const auto& model : test::tiny_models()) {
        Measured worst;
        for (const bool ckpt : {false, true})
            for (const bool lora : {false, true}) {
                CAPTURE(model);
                CAPTURE(ckpt);
                CAPTURE(lora);
                auto dev = device::make_cpu_device();
                const Measured m = test::check_contract(*dev, model, ckpt, lora, DType::fp32);
                if (!ckpt && !lora) worst = m;
            }
        MESSAGE(model << " (fp32, no checkpointing, no LoRA): largest transient within a call: forward " << worst.fwd_transient
                      << " B (plan estimate " << worst.fwd_estimate << " B), backward " << worst.bwd_transient
                      << " B (plan estimate " << worst.bwd_estimate << " B)");
    }
}

TEST_CASE("the activation contract also holds in bf16 (activations in the params dtype, statistics in fp32)") {
    for (const auto& model : test::tiny_models()) {
        CAPTURE(model);
        auto dev = device::make_cpu_device();
        const Measured m = test::check_contract(*dev, model, false, false, DType::bf16);
        MESSAGE(model << " (bf16): largest transient within a call: forward " << m.fwd_transient << " B (plan estimate "
                      << m.fwd_estimate << " B), backward " << m.bwd_transient << " B (plan estimate " << m.bwd_estimate << " B)");
    }
}

TEST_CASE("the encoder output lives only until the last cross-attention when no backward needs it") {
    // LoRA on q and wi only: no cross-attention k/v is trainable, so the encoder output is not a
    // saved term; it is freed after the last cross-attention forward.
    auto dev = device::make_cpu_device();
    test::Trainer tr(test::tiny_plan("tiny-t5", {"lora.rank=2", "lora.targets=q,wi_0"}), *dev);
    nn::Transformer& tf = tr.model();
    tf.start_micro_batch(tr.batch(0));
    std::int64_t forward_bytes = 0;
    for (int c = 0; c < tr.calls(); ++c) {
        tf.forward(c, tr.params(c));
        forward_bytes += plan::call_activations(tr.plan(), c).forward_bytes();
        for (const auto& [name, bytes] : tf.saved_terms(c)) CHECK(name != "encoder.output");
    }
    CHECK(dev->allocator().current()[MemCategory::activations] == forward_bytes);
    tr.backward();
    CHECK(dev->allocator().current()[MemCategory::activations] == 0);
}

// Every attention implementation a family has, attention and hidden dropout on, and the fused
// loss: the model keeps exactly the plan's terms (the fp32 softmax and the 1-byte masks included)
// and performs exactly the plan's GEMM FLOPs (sdpa / flash: the causal half, backward 2.5x).
TEST_CASE("activation and FLOP contracts: eager, sdpa and flash, dropout on, eager and fused loss") {
    for (const auto& model : test::tiny_models()) {
        const bool sdpa = has_sdpa(model);
        std::vector<std::vector<std::string>> variants = {{"memory.attention=eager"}, {"memory.loss=fused"}};
        if (sdpa) variants.push_back({"memory.attention=flash"});
        const std::string hidden = hidden_dropout(model);
        for (const char* attention : {"eager", "sdpa"}) {
            if (!sdpa && std::string(attention) == "sdpa") continue;
            variants.push_back({std::string("memory.attention=") + attention, "dropout.attention=0.2", "dropout.hidden=" + hidden});
            variants.push_back({std::string("memory.attention=") + attention, "dropout.attention=0.2", "dropout.hidden=" + hidden,
                                "memory.loss=fused"});
        }
        for (const auto& v : variants)
            for (const DType dt : {DType::fp32, DType::bf16})
                for (const bool ckpt : {false, true}) check_variant(model, dt, ckpt, false, v);
    }
}

TEST_CASE("a family without an SDPA path refuses sdpa and flash, naming the family and what is allowed") {
    for (const char* model : {"tiny-t5", "tiny-bloom", "tiny-codet5p"})
        for (const char* kind : {"sdpa", "flash"}) {
            CAPTURE(model);
            CAPTURE(kind);
            try {
                test::tiny_plan(model, {std::string("memory.attention=") + kind});
                FAIL("accepted");
            } catch (const InputError& e) {
                const std::string what = e.what();
                CHECK(what.find("--set memory.attention=" + std::string(kind) + ": memory.attention: bad value '" + kind + "'") !=
                      std::string::npos);
                CHECK(what.find("(allowed: auto, eager)") != std::string::npos);
            }
        }
    // auto is what transformers picks: sdpa where the family has it, eager elsewhere.
    CHECK(test::tiny_plan("tiny-llama")->scenario().job.attention == config::AttentionKind::sdpa);
    CHECK(test::tiny_plan("tiny-gpt2")->scenario().job.attention == config::AttentionKind::sdpa);
    CHECK(test::tiny_plan("tiny-t5")->scenario().job.attention == config::AttentionKind::eager);
    CHECK(test::tiny_plan("tiny-bloom")->scenario().job.attention == config::AttentionKind::eager);
    CHECK_THROWS_AS(test::tiny_plan("tiny-llama", {"dropout.hidden=0.1"}), InputError);
}

TEST_CASE("tracking allocator: current and peak per category are what was allocated") {
    auto dev = device::make_cpu_device();
    device::TrackingAllocator& a = dev->allocator();
    a.reset_peak();
    {
        device::Buffer off(a, 64, MemCategory::offloaded, "o");
        device::Buffer p(a, 1000, MemCategory::params, "p");
        device::Buffer act(a, 300, MemCategory::activations, "a");
        {
            device::Buffer t(a, 500, MemCategory::temporaries, "t");
            CHECK(a.current()[MemCategory::temporaries] == 500);
            CHECK(a.current().device_total() == 1800);
        }
        const MemoryByCategory cur = a.current(), peak = a.peak();
        CHECK(cur[MemCategory::params] == 1000);
        CHECK(cur[MemCategory::activations] == 300);
        CHECK(cur[MemCategory::temporaries] == 0);
        CHECK(cur.host_total() == 64);
        // The peak is the largest device total, with its breakdown at that moment.
        CHECK(peak.device_total() == 1800);
        CHECK(peak[MemCategory::temporaries] == 500);
    }
    CHECK(a.current().device_total() == 0);
    CHECK(a.current().host_total() == 0);
    CHECK(a.live().empty());
}

TEST_CASE("tracking allocator: past the device limit an allocation fails, saying who asked for what") {
    auto dev = device::make_cpu_device();
    device::TrackingAllocator& a = dev->allocator();
    a.set_device_limit(1000);
    device::TrackingAllocator::set_op(7);
    device::Buffer p(a, 600, MemCategory::params, "p");
    device::Buffer off(a, 5000, MemCategory::offloaded, "host side");  // host bytes do not count
    try {
        device::Buffer g(a, 401, MemCategory::gathered_params, "gathered block.3");
        FAIL("401 more bytes fitted under a limit of 1000 with 600 in use");
    } catch (const device::OutOfMemory& e) {
        CHECK(e.bytes == 401);
        CHECK(e.category == MemCategory::gathered_params);
        CHECK(e.op == 7);
        CHECK(e.in_use == 600);
        CHECK(std::string(e.what()).find("gathered block.3 asked for 401 B of gathered_params (op 7)") != std::string::npos);
    }
    CHECK(a.current().device_total() == 600);  // the failed allocation left nothing behind
    device::Buffer fits(a, 400, MemCategory::gathered_params, "exactly the rest");
    CHECK(a.current().device_total() == 1000);
    device::TrackingAllocator::set_op(-1);
}

// Per-layer checkpointing (memory.checkpoint_every = 2): blocks 2, 4, ... are checkpointed and
// recomputed, the others keep all they save; the executor keeps exactly the plan's terms either way.
TEST_CASE("checkpointing every 2nd block: the plan marks blocks 2, 4, ...; the executor keeps the plan's terms") {
    for (const auto& model : test::tiny_models()) {
        CAPTURE(model);
        auto dev = device::make_cpu_device();
        test::check_contract(*dev, model, true, false, DType::fp32, {"memory.checkpoint_every=2"});
        const auto plan = test::tiny_plan(model, {"memory.activation_checkpointing=true", "memory.checkpoint_every=2"});
        std::int64_t ordinal = 0, checkpointed = 0, blocks = 0;
        for (const auto& u : plan->units()) {
            const bool block = u.kind == model::UnitKind::encoder_block || u.kind == model::UnitKind::decoder_block;
            if (block) ++ordinal, ++blocks;
            CHECK(plan::checkpointed(*plan, u) == (block && ordinal % 2 == 0));
            checkpointed += plan::checkpointed(*plan, u) ? 1 : 0;
        }
        CHECK(checkpointed == blocks / 2);
        // Fewer recomputes than checkpointing every block, more than none.
        auto recomputes = [](const std::vector<std::string>& sets) {
            const auto p = test::tiny_plan("tiny-llama", sets);
            const auto s = plan::build_schedule(*p);
            return std::count_if(s.ops.begin(), s.ops.end(), [](const plan::Op& op) { return op.kind == plan::OpKind::recompute; });
        };
        if (model == "tiny-llama") {
            const auto every = recomputes({"memory.activation_checkpointing=true"});
            const auto half = recomputes({"memory.activation_checkpointing=true", "memory.checkpoint_every=2"});
            CHECK(half > 0);
            CHECK(half < every);
        }
    }
}

TEST_CASE("memory.checkpoint_every without checkpointing is refused, naming the key") {
    CHECK_THROWS_WITH_AS(test::tiny_plan("tiny-llama", {"memory.checkpoint_every=2"}),
                         doctest::Contains("memory.checkpoint_every: bad value '2': activation checkpointing is off"), InputError);
}

// Selective checkpointing (torchtitan's op-level policy): every tiny model, LoRA off and on, eager
// and sdpa / flash, dropout on, fp32 and bf16: the executor keeps exactly the plan's terms after
// forward (the block input, every other projection's output, the fused attention's output and
// log-sum-exp), rebuilds exactly the full list in recompute, and performs exactly the GEMM FLOPs
// the plan's recompute_work leaves in (the kept projections and attention kernels skipped).
TEST_CASE("selective checkpointing: the executor keeps, recomputes and skips what the plan says, in every family") {
    for (const auto& model : test::tiny_models()) {
        std::vector<std::vector<std::string>> variants = {{}, {"memory.attention=eager"}};
        if (has_sdpa(model)) variants.push_back({"memory.attention=flash", "dropout.attention=0.2"});
        variants.push_back({"dropout.attention=0.2", "dropout.hidden=" + hidden_dropout(model), "memory.checkpoint_every=2"});
        for (auto& v : variants) v.push_back("memory.activation_checkpointing=selective");
        for (const auto& v : variants)
            for (const DType dt : {DType::fp32, DType::bf16})
                for (const bool lora : {false, true}) check_variant(model, dt, true, lora, v);
    }
}
