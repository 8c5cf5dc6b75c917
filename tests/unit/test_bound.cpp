// The plan search's memory bound ([Note: memory bound]): over thousands of random setups it never
// exceeds what the full simulation reports (device peak of the fullest rank, host use of the
// fullest node), and its persistent part is exactly the plan's persistent state.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "shardsim/core/error.hpp"
#include "shardsim/plan/bound.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/sim/predict.hpp"

using namespace shardsim;

namespace {

struct RandomSetup {
    std::string model;
    std::vector<std::string> sets;
};

// Two modules of each family (PEFT's names).
std::string lora_targets(const std::string& model) {
    if (model.find("gpt2") != std::string::npos) return "c_attn,c_fc";
    if (model.find("llama") != std::string::npos) return "q_proj,v_proj";
    if (model.find("t5") != std::string::npos && model.find("codet5p") == std::string::npos) return "q,v";
    if (model.find("bloom") != std::string::npos) return "query_key_value,dense";
    return "qkv_proj,fc_in";
}

template <class T>
const T& pick(std::mt19937& rng, const std::vector<T>& v) {
    return v[std::uniform_int_distribution<std::size_t>(0, v.size() - 1)(rng)];
}
int roll(std::mt19937& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

// Every knob the search turns, and the ones it leaves to the job, drawn at random: some draws are
// invalid and the plan refuses them (those are skipped, the test counts the valid ones).
RandomSetup random_setup(std::mt19937& rng, const std::vector<std::string>& models) {
    RandomSetup r;
    r.model = pick(rng, models);
    auto set = [&](const std::string& kv) { r.sets.push_back(kv); };
    const int nodes = roll(rng, 1, 3) == 3 ? 2 : 1;
    const int gpn = roll(rng, 1, 6);
    set("topology.cluster.nodes=" + std::to_string(nodes));
    set("topology.cluster.gpus_per_node=" + std::to_string(gpn));
    set("topology.gpu.allocator_fragmentation=" + pick(rng, std::vector<std::string>{"0", "0.1", "0.3"}));
    const int world = nodes * gpn;
    const std::string strategy = pick(rng, config::strategy_names());
    set("parallel.strategy=" + strategy);
    if (strategy == "fsdp-hybrid-shard") set("parallel.shard_size=" + std::to_string(roll(rng, 1, std::max(1, world / 2))));
    if (strategy == "zero3" && roll(rng, 0, 2) == 0) set("parallel.secondary_shard=" + std::to_string(roll(rng, 2, 4)));
    const auto engine = plan::traits(*config::parse_strategy(strategy)).engine;
    if (engine != plan::Engine::fsdp) set("parallel.bucket_mib=" + pick(rng, std::vector<std::string>{"auto", "0.01", "1", "25"}));
    // Engine keys are refused for another engine's strategy.
    if (engine == plan::Engine::ddp) set("ddp.gradient_as_bucket_view=" + pick(rng, std::vector<std::string>{"true", "false"}));
    if (engine == plan::Engine::deepspeed) {
        set("deepspeed.overlap_comm=" + pick(rng, std::vector<std::string>{"auto", "true", "false"}));
        set("deepspeed.hf_auto=" + pick(rng, std::vector<std::string>{"true", "false"}));
        set("deepspeed.stage3_prefetch_bucket_size=" + pick(rng, std::vector<std::string>{"auto", "0", "1000", "100000000"}));
        set("deepspeed.stage3_max_live_parameters=" + pick(rng, std::vector<std::string>{"1e9", "0", "5000"}));
        set("deepspeed.stage3_max_reuse_distance=" + pick(rng, std::vector<std::string>{"1e9", "0", "5000"}));
    }
    if (engine == plan::Engine::fsdp) {
        set("fsdp.backward_prefetch=" + pick(rng, std::vector<std::string>{"backward_pre", "backward_post", "none"}));
        set("fsdp.forward_prefetch=" + pick(rng, std::vector<std::string>{"true", "false"}));
        set("fsdp.no_sync=" + pick(rng, std::vector<std::string>{"true", "false"}));
        set("fsdp.limit_all_gathers=" + pick(rng, std::vector<std::string>{"true", "false"}));
    }
    const std::string params = pick(rng, std::vector<std::string>{"bf16", "bf16", "fp16", "fp32"});
    set("precision.params=" + params);
    set("precision.grads=" + pick(rng, std::vector<std::string>{params, "fp32"}));
    set("precision.reduce=" + pick(rng, std::vector<std::string>{params, "fp32"}));
    set("precision.master_weights=" + pick(rng, std::vector<std::string>{"true", "false"}));
    set("optimizer.name=" + pick(rng, std::vector<std::string>{"adamw", "adamw", "sgd"}));
    set("batch.micro_batch=" + std::to_string(roll(rng, 1, 4)));
    set("batch.grad_accum=" + std::to_string(roll(rng, 1, 3)));
    set("batch.seq_len=" + std::to_string(roll(rng, 8, 64)));
    set("memory.activation_checkpointing=" + pick(rng, std::vector<std::string>{"true", "false", "selective"}));
    // Offload where the strategy can (the plan refuses the rest, which the search never asks for).
    const auto& t = plan::traits(*config::parse_strategy(strategy));
    const int offload = t.shard_params ? roll(rng, 0, 3) : t.shard_optimizer ? roll(rng, 0, 2) : 0;
    set(std::string("memory.offload_optimizer=") + (offload >= 2 ? "true" : "false"));
    set(std::string("memory.offload_params=") + (offload == 3 ? "true" : "false"));
    set("memory.attention=" + pick(rng, std::vector<std::string>{"auto", "eager", "sdpa"}));
    set("memory.loss=" + pick(rng, std::vector<std::string>{"eager", "fused"}));
    if (roll(rng, 0, 3) == 0) {
        set("lora.rank=" + std::to_string(roll(rng, 1, 8)));
        set("lora.targets=" + lora_targets(r.model));
    }
    return r;
}

model::Scenario load(const RandomSetup& r) {
    const std::string text = "[job]\nmodel = " + r.model +
                             "\ntopology = 4x8-h100-ib\n[parallel]\nstrategy = ddp\n[batch]\nseq_len = 16\n";
    return model::load_scenario_text("<bound test>", text, "", r.sets);
}

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += "--set " + x + " ";
    return s;
}

plan::MemoryBound bound_of(const model::Scenario& s) {
    plan::BoundModel m(s.model, s.lora());
    const auto& t = plan::traits(s.job.strategy);
    const plan::ParallelDims dims = plan::parallel_dims(s, t);
    const plan::ShardingRules rules = plan::sharding_rules(s, dims);
    m.prepare(rules.param_shards());
    m.prepare(rules.state_shards());
    const auto acts = plan::activation_sums(m.activation_inputs(s, rules.precision.params));
    return plan::memory_bound(m, s, rules, acts);
}

// Category by category, so that a failure names the one that differs: the bound's persistent
// part is the plan's less DeepSpeed's step-group and offload extras, never more.
void require_persistent_within(const MemoryByCategory& bound, const MemoryByCategory& plan) {
    for (MemCategory c : kAllMemCategories) {
        INFO(category_name(c));
        REQUIRE(bound[c] <= plan[c]);
    }
}

}  // namespace

TEST_CASE("the memory bound never exceeds the simulated peak, over thousands of random setups") {
    std::mt19937 rng(20240615);
    const std::vector<std::string> models = {"tiny-gpt2", "tiny-llama", "tiny-t5", "tiny-bloom", "tiny-codet5p", "mini-llama"};
    int valid = 0;
    for (int i = 0; i < 3000; ++i) {
        const RandomSetup r = random_setup(rng, models);
        model::Scenario s;
        sim::Prediction p;
        try {
            s = load(r);
            p = sim::predict(s);
        } catch (const InputError& e) {
            continue;  // the plan refuses this draw; so would the search
        }
        ++valid;
        const plan::MemoryBound b = bound_of(s);
        const io::Json summary = report::summary_json(p.run);
        INFO(r.model, " ", joined(r.sets));
        require_persistent_within(b.persistent, p.plan->persistent());
        REQUIRE(b.device_bytes <= p.device_peak_bytes());
        REQUIRE(b.host_bytes_per_node <= summary.at("host_peak_bytes_per_node").as_int());
    }
    MESSAGE(valid, " valid setups");
    CHECK(valid > 1500);
}

TEST_CASE("the memory bound on full-size models: never above the simulated peak") {
    std::mt19937 rng(7);
    const std::vector<std::string> models = {"gpt2-large", "llama-7b", "t5-3b", "codet5p-2b", "bloomz-7b1"};
    int valid = 0, tight = 0;
    for (int i = 0; i < 160; ++i) {
        RandomSetup r = random_setup(rng, models);
        r.sets.push_back("batch.seq_len=" + std::to_string(roll(rng, 128, 1024)));
        model::Scenario s;
        sim::Prediction p;
        try {
            s = load(r);
            p = sim::predict(s);
        } catch (const InputError&) {
            continue;
        }
        ++valid;
        const plan::MemoryBound b = bound_of(s);
        INFO(r.model, " ", joined(r.sets));
        require_persistent_within(b.persistent, p.plan->persistent());
        REQUIRE(b.device_bytes <= p.device_peak_bytes());
        // Tight: the bound's transient part covers at least half of the simulated one. (On the
        // tiny models above, buckets and workspaces the bound leaves out dominate the transient.)
        const std::int64_t base = p.plan->persistent().device_total();
        if (2 * (b.device_bytes - base) >= p.device_peak_bytes() - base) ++tight;
    }
    MESSAGE(valid, " valid setups; the bound's transient part covers half the simulated one or more on ", tight);
    CHECK(valid > 60);
    // A bound of zero would pass the checks above: it must also be close enough to prune.
    // (3 in 5: the caching allocator's reserve — segment rounding, blocks it cannot split — sits on
    // top of the allocations the bound counts.)
    CHECK(tight * 5 > valid * 3);
}
