// DeepSpeed's model-state estimators (estimate_zero2_model_states_mem_needs and
// estimate_zero3_model_states_mem_needs, ENGINES.md §3) term by term against the buffers the plan
// keeps, for every offload row; and what DeepSpeed holds that the estimators leave out (ENGINES.md
// §1-2), by name. N: parameters; S: this rank's partition (N/G, padded as the plan pads it);
// L: the largest parameter. The estimators' CPU figures are per node, times
// additional_buffer_factor (1.5) and the model-loading term max(4 x GPUs per node); the per-rank
// states below are their 16 N/G or 18 N/G.
#include <doctest/doctest.h>

#include <algorithm>

#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/buffers.hpp"
#include "shardsim/plan/plan.hpp"

using namespace shardsim;

namespace {

plan::PlanPtr ds_plan(const std::string& strategy, std::vector<std::string> sets) {
    const std::string text = "[job]\nmodel = llama-7b\ntopology = 8x-a100-80g-nvlink\n[parallel]\nstrategy = " + strategy +
                             "\n[precision]\nparams = bf16\n[batch]\nmicro_batch = 1\nseq_len = 16\n";
    return plan::ShardingPlan::build(model::load_scenario_text("test.ini", text, "", sets));
}

struct Terms {
    std::int64_t N = 0, S = 0, L = 0;
};

Terms terms(const plan::ShardingPlan& p) {
    Terms t;
    for (const auto& u : p.unit_plans()) {
        t.N += u.params.real.count();
        t.S += u.state.shard.count();
        for (const auto& c : u.full_state.chunks) t.L = std::max(t.L, c.rows * c.row_elements);
    }
    return t;
}

// Persistent buffers whose name contains `what`.
std::int64_t held(const plan::ShardingPlan& p, const std::string& what, plan::Side side) {
    std::int64_t n = 0;
    for (const auto& b : p.buffers().all())
        if (b.persistent && b.has_memory() && b.side == side && b.name.find(what) != std::string::npos) n += b.bytes;
    return n;
}

std::int64_t host(const plan::ShardingPlan& p, const std::string& what) { return held(p, what, plan::Side::host); }
std::int64_t device(const plan::ShardingPlan& p, const std::string& what) { return held(p, what, plan::Side::device); }

// The fp32 gradients of the step groups (transient, at the step).
std::int64_t step_fp32(const plan::ShardingPlan& p) {
    std::int64_t n = 0;
    for (const auto& g : p.buffers().step_groups())
        if (g.fp32 >= 0) n = std::max(n, p.buffers()[g.fp32].bytes);
    return n;
}

}  // namespace

TEST_CASE("DeepSpeed ZeRO-2 estimator, no offload: GPU = 2N + 18N/G at the step") {
    const auto p = ds_plan("zero2", {});
    const Terms t = terms(*p);
    const MemoryByCategory m = p->persistent();
    CHECK(m[MemCategory::params] == 2 * t.N);
    // 18 = 2 (bit16 gradient partition) + 4 (fp32 master) + 8 (Adam) + 4 (the fp32 partition
    // gradient the step converts to).
    CHECK(m[MemCategory::grads] == 2 * t.S);
    CHECK(m[MemCategory::master_params] == 4 * t.S);
    CHECK(m[MemCategory::optimizer_states] == 8 * t.S);
    CHECK(step_fp32(*p) == 4 * t.S);
    CHECK(m[MemCategory::params] + m[MemCategory::grads] + m[MemCategory::master_params] + m[MemCategory::optimizer_states] +
              step_fp32(*p) ==
          2 * t.N + 18 * t.S);
    // Left out by the estimator: the flattened bit16 copy the conversion starts from (2 N/G).
    REQUIRE(p->buffers().step_groups().size() == 1);
    CHECK(p->buffers()[p->buffers().step_groups()[0].flat].bytes == 2 * t.S);
}

TEST_CASE("DeepSpeed ZeRO-2 estimator, optimizer offload: GPU = 2N, CPU = 16N/G per rank") {
    for (const char* ga : {"1", "4"}) {
        CAPTURE(ga);
        const auto p = ds_plan("zero2", {"memory.offload_optimizer=true", std::string("batch.grad_accum=") + ga});
        const Terms t = terms(*p);
        const MemoryByCategory m = p->persistent();
        CHECK(m[MemCategory::params] == 2 * t.N);
        CHECK(m[MemCategory::grads] + m[MemCategory::master_params] + m[MemCategory::optimizer_states] == 0);
        // 16 = 4 (fp32 master) + 4 (fp32 gradient partition) + 8 (CPU Adam).
        CHECK(host(*p, "fp32 master shard") == 4 * t.S);
        CHECK(host(*p, "fp32 gradient shard (host)") == 4 * t.S);
        CHECK(host(*p, "adam") == 8 * t.S);
        // Left out by the estimator (ENGINES.md §1, ZeRO-Offload): the bit16 staging partition,
        // the largest parameter's temp gradient buffers (host and device), and with several
        // micro-batches the host buffers their sum accumulates in.
        CHECK(host(*p, "updated 16-bit shard (host)") == 2 * t.S);
        CHECK(host(*p, "largest-parameter gradient buffer") == 2 * t.L);
        CHECK(device(*p, "largest-parameter gradient buffer") == 2 * t.L);
        CHECK(host(*p, "accumulated gradients (host)") == (std::string(ga) == "1" ? 0 : 2 * t.S));
        CHECK(m[MemCategory::offloaded] == host(*p, ""));
        CHECK(m[MemCategory::offloaded] == 16 * t.S + 2 * t.S + 2 * t.L + (std::string(ga) == "1" ? 0 : 2 * t.S));
    }
}

TEST_CASE("DeepSpeed ZeRO-3 estimator, offload of optimizer and parameters: CPU = 18N/G per rank") {
    const auto p = ds_plan("zero3", {"memory.offload_optimizer=true", "memory.offload_params=true"});
    const Terms t = terms(*p);
    const MemoryByCategory m = p->persistent();
    // On the device: only the parameters under the persistence threshold, whole (below).
    CHECK(m[MemCategory::params] - device(*p, "small parameters kept whole") + m[MemCategory::grads] + m[MemCategory::master_params] + m[MemCategory::optimizer_states] == 0);
    // 18 = 2 (bit16 parameter partition) + 4 (fp32 master) + 4 (fp32 gradients of the largest
    // sub-group: the whole partition under sub_group_size 1e9) + 8 (CPU Adam).
    CHECK(host(*p, "param shard") == 2 * t.S);
    CHECK(host(*p, "fp32 master shard") == 4 * t.S);
    CHECK(host(*p, "fp32 sub-group gradient buffer (host)") == 4 * t.S);
    CHECK(host(*p, "adam") == 8 * t.S);
    // Left out by the estimator: the gradient partition in the accumulation dtype on the host
    // (grad_partitions_flat_buffer, ENGINES.md §2).
    CHECK(host(*p, "gradient shard (host)") == 2 * t.S);
    CHECK(m[MemCategory::offloaded] == 18 * t.S + 2 * t.S);
}

TEST_CASE("DeepSpeed ZeRO-3 estimator, optimizer offload only: GPU = 2N/G (+4L), CPU = 16N/G per rank") {
    const auto p = ds_plan("zero3", {"memory.offload_optimizer=true"});
    const Terms t = terms(*p);
    const MemoryByCategory m = p->persistent();
    CHECK(m[MemCategory::params] - device(*p, "small parameters kept whole") == 2 * t.S);
    CHECK(m[MemCategory::grads] + m[MemCategory::master_params] + m[MemCategory::optimizer_states] == 0);
    CHECK(host(*p, "fp32 master shard") + host(*p, "fp32 sub-group gradient buffer (host)") + host(*p, "adam") == 16 * t.S);
    CHECK(host(*p, "gradient shard (host)") == 2 * t.S);
    // No bit16 copy on the host: the fp32 master goes up through a device buffer of the sub-group.
    CHECK(host(*p, "updated 16-bit shard") == 0);
    REQUIRE(p->buffers().step_groups().size() == 1);
    CHECK(p->buffers()[p->buffers().step_groups()[0].upload].bytes == 4 * t.S);
}

TEST_CASE("DeepSpeed ZeRO-3 estimator, no offload: GPU = 18N/G (+4L) at the step, and sub_group_size splits the step") {
    const auto p = ds_plan("zero3", {});
    const Terms t = terms(*p);
    const MemoryByCategory m = p->persistent();
    // 18 = 2 (bit16 partition) + 4 (fp32 master) + 8 (Adam) + 4 (fp32 gradients of a sub-group).
    CHECK(m[MemCategory::params] - device(*p, "small parameters kept whole") == 2 * t.S);
    CHECK(m[MemCategory::master_params] == 4 * t.S);
    CHECK(m[MemCategory::optimizer_states] == 8 * t.S);
    CHECK(step_fp32(*p) == 4 * t.S);
    // Left out by the estimator: the persistent gradient partition (ENGINES.md §2).
    CHECK(m[MemCategory::grads] == 2 * t.S);

    // Smaller sub-groups: the step's fp32 buffer is the largest sub-group's, at least the size
    // asked and at most one unit more.
    const std::int64_t sub = t.S / 8;
    const auto q = ds_plan("zero3", {"deepspeed.sub_group_size=" + std::to_string(sub)});
    CHECK(q->buffers().step_groups().size() > 4);
    std::int64_t largest_unit = 0;
    for (const auto& u : q->unit_plans()) largest_unit = std::max(largest_unit, u.state.shard.count());
    CHECK(step_fp32(*q) >= 4 * sub);
    CHECK(step_fp32(*q) < 4 * (sub + largest_unit));
}

TEST_CASE("pin_memory decides which DeepSpeed host buffers are pinned; ZeRO-3's master never is") {
    auto pinned = [](const plan::ShardingPlan& p, const std::string& what) {
        std::int64_t n = 0;
        for (const auto& b : p.buffers().all())
            if (b.has_memory() && b.side == plan::Side::host && b.pinned && b.name.find(what) != std::string::npos) n += b.bytes;
        return n;
    };
    const auto z2 = ds_plan("zero2", {"memory.offload_optimizer=true"});
    const auto z2u = ds_plan("zero2", {"memory.offload_optimizer=true", "deepspeed.pin_memory=false"});
    const Terms t = terms(*z2);
    CHECK(pinned(*z2, "fp32 master shard") == 4 * t.S);
    CHECK(pinned(*z2, "adam") == 0);
    CHECK(pinned(*z2u, "") == 0);
    const auto z3 = ds_plan("zero3", {"memory.offload_optimizer=true", "memory.offload_params=true", "deepspeed.pin_memory=false"});
    CHECK(pinned(*z3, "fp32 master shard") == 0);
    CHECK(pinned(*z3, "param shard") == 2 * t.S);  // always pinned
}

TEST_CASE("DeepSpeed ZeRO-3 keeps parameters under stage3_param_persistence_threshold whole on every rank") {
    // Llama-7B's only tensors under 1e5 elements are its 65 norm weights of 4,096 (bf16).
    auto whole = [](const plan::ShardingPlan& p) { return device(p, "small parameters kept whole"); };
    CHECK(whole(*ds_plan("zero3", {})) == 65 * 4096 * 2);
    CHECK(whole(*ds_plan("zero3", {"deepspeed.stage3_param_persistence_threshold=4095"})) == 0);
    CHECK(whole(*ds_plan("zero3", {"deepspeed.stage3_param_persistence_threshold=0"})) == 0);
    // Hugging Face's "auto": 10 x hidden = 40,960 elements, the same norms.
    const auto hf = ds_plan("zero3", {"deepspeed.hf_auto=true"});
    CHECK(whole(*hf) == 65 * 4096 * 2);
    CHECK(hf->engine_settings().persistence_threshold == 40960);
    // Offloaded parameters: the kept-whole ones stay on the device.
    CHECK(whole(*ds_plan("zero3", {"memory.offload_optimizer=true", "memory.offload_params=true"})) == 65 * 4096 * 2);
}
