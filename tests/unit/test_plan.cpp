// The sharding plan and schedule against the ZeRO paper's formulas (Rajbhandari et al. 2020,
// section 5) and hand-computed golden numbers; ledger invariants.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <set>

#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/activations.hpp"
#include "shardsim/plan/schedule.hpp"

using namespace shardsim;

namespace {

// A job on `world` H100s (8 per node, InfiniBand between nodes).
plan::PlanPtr make_plan(const std::string& model, const std::string& strategy, std::int64_t world,
                        std::vector<std::string> extra = {}, const std::string& precision = "bf16") {
    const std::string text = "[job]\nmodel = " + model + "\ntopology = 4x8-h100-ib\n[parallel]\nstrategy = " + strategy +
                             "\n[precision]\nparams = " + precision + "\n[batch]\nmicro_batch = 1\nseq_len = 16\n";
    std::vector<std::string> sets = {"topology.cluster.nodes=" + std::to_string(world >= 8 ? world / 8 : 1),
                                     "topology.cluster.gpus_per_node=" + std::to_string(world >= 8 ? 8 : world)};
    sets.insert(sets.end(), extra.begin(), extra.end());
    return plan::ShardingPlan::build(model::load_scenario_text("test.ini", text, "", sets));
}

std::int64_t model_states(const plan::ShardingPlan& p) {
    const MemoryByCategory m = p.persistent();
    return m[MemCategory::params] + m[MemCategory::grads] + m[MemCategory::master_params] + m[MemCategory::optimizer_states];
}

std::int64_t padding(const plan::ShardingPlan& p) {
    std::int64_t n = 0;
    for (const auto& u : p.unit_plans()) n += std::max(u.params.padding().count(), u.state.padding().count());
    return n;
}

}  // namespace

TEST_CASE("model states per device follow the ZeRO formulas (bf16 params, fp32 master, AdamW)") {
    for (const char* m : {"llama-7b", "gpt2-xl", "flan-t5-xl"}) {
        for (std::int64_t n : {1, 4, 16, 64, 1024}) {
            const double N = static_cast<double>(n);
            struct Row {
                const char* strategy;
                double bytes_per_param;  // of Psi
            };
            const double psi_ddp = 16, psi_z1 = 4 + 12 / N, psi_z2 = 2 + 14 / N, psi_z3 = 16 / N;
            for (const Row& r : {Row{"ddp", psi_ddp}, Row{"zero1", psi_z1}, Row{"zero2", psi_z2}, Row{"zero3", psi_z3},
                                 Row{"fsdp-full-shard", psi_z3}, Row{"fsdp-no-shard", psi_ddp}}) {
                // The paper partitions every parameter: no DeepSpeed persistence threshold.
                const auto p = make_plan(m, r.strategy, n,
                                         std::string(r.strategy) == "zero3"
                                             ? std::vector<std::string>{"deepspeed.stage3_param_persistence_threshold=0"}
                                             : std::vector<std::string>{});
                const double psi = static_cast<double>(p->param_count().count());
                const double got = static_cast<double>(model_states(*p));
                const double want = r.bytes_per_param * psi;
                INFO(m << " " << r.strategy << " N=" << n << ": " << got << " vs " << want);
                // Shards are padded: at most 16 bytes per padding element, spread over N ranks.
                CHECK(got >= want - 0.5);
                CHECK(got <= want + 16.0 * static_cast<double>(padding(*p)) / N + 0.5);
            }
        }
    }
}

TEST_CASE("communication per rank per step follows the ZeRO paper (in parameter-dtype bytes)") {
    // DDP moves 2 Psi (N-1)/N, ZeRO-3 3 Psi (N-1)/N: all-gather in forward and backward plus
    // reduce-scatter — counted as the paper counts, with every unit gathered again in backward
    // (stage3_max_reuse_distance 0; by default DeepSpeed keeps the last blocks gathered, below). DeepSpeed's ZeRO-1 and ZeRO-2 move 3 Psi (N-1)/N where the ZeRO paper counts
    // 2: with its defaults (reduce_scatter, use_multi_rank_bucket_allreduce) a gradient bucket is
    // all-reduced and each rank keeps its own rows (ENGINES.md §1), then the updated parameters
    // are all-gathered. Untied models, so every unit is gathered twice — except, under FSDP,
    // the root's units (embeddings and head), which FSDP1 keeps gathered from forward into
    // backward: gathered once.
    for (const char* m : {"llama-7b", "llama-2-13b"}) {
        for (std::int64_t n : {4, 16, 1024}) {
            const double N = static_cast<double>(n);
            for (const auto& sf :
                 std::vector<std::pair<const char*, double>>{{"ddp", 2}, {"zero1", 3}, {"zero2", 3}, {"zero3", 3}, {"fsdp-full-shard", 3}}) {
                const char* strategy = sf.first;  // not a structured binding: clang 14 cannot capture one (INFO)
                const double factor = sf.second;
                const auto p = make_plan(m, strategy, n,
                                         std::string(strategy) == "zero3" ? std::vector<std::string>{"deepspeed.stage3_max_reuse_distance=0"}
                                                                          : std::vector<std::string>{});
                const auto s = plan::build_schedule(*p);
                double wire = 0;
                for (auto k : {plan::CollectiveKind::all_gather, plan::CollectiveKind::reduce_scatter, plan::CollectiveKind::all_reduce})
                    wire += s.collective_wire_bytes(k);
                const double psi_bytes = 2.0 * static_cast<double>(p->param_count().count());
                double root_bytes = 0;
                if (std::string(strategy).rfind("fsdp-", 0) == 0)
                    for (const auto& u : p->units())
                        if (u.kind == model::UnitKind::embedding || u.kind == model::UnitKind::head)
                            root_bytes += 2.0 * static_cast<double>(u.params().count());
                const double want = (factor * psi_bytes - root_bytes) * (N - 1) / N;
                INFO(m << " " << strategy << " N=" << n << ": " << wire << " vs " << want);
                CHECK(wire >= want - 1);
                CHECK(wire <= want + factor * 2.0 * static_cast<double>(padding(*p)) + 1);
            }
        }
    }
    // ZeRO-3 moves 1.5x the bytes of DDP (as the paper counts: every unit gathered again in backward).
    const auto ddp = plan::build_schedule(*make_plan("llama-7b", "ddp", 8));
    const auto z3 = plan::build_schedule(*make_plan("llama-7b", "zero3", 8, {"deepspeed.stage3_max_reuse_distance=0"}));
    const double d = ddp.collective_wire_bytes(plan::CollectiveKind::all_reduce);
    const double z = z3.collective_wire_bytes(plan::CollectiveKind::all_gather) + z3.collective_wire_bytes(plan::CollectiveKind::reduce_scatter);
    CHECK(z / d == doctest::Approx(1.5).epsilon(0.001));
}

TEST_CASE("layouts: shards over ranks cover every element once, padding explicit") {
    const auto p = make_plan("tiny-llama", "zero3", 3);
    for (const auto& up : p->unit_plans()) {
        for (const auto* l : {&up.params, &up.state}) {
            std::int64_t owned = 0;
            for (std::int64_t r = 0; r < l->shards; ++r) {
                CHECK(l->owned(r) <= l->shard);
                owned += l->owned(r).count();
            }
            CHECK(owned == l->real.count());
            CHECK(l->padding().count() == l->gathered().count() - l->real.count());
            CHECK(l->padding().count() >= 0);
        }
    }
}

TEST_CASE("golden: tiny-llama, fp32, AdamW, by hand") {
    // Psi = 29344 (see test_catalogue). fp32 params need no master copy.
    const std::int64_t psi = 29344;
    SUBCASE("ddp on 2 ranks: 4 + 4 + 8 bytes per parameter, one bucketed all-reduce of 4 Psi") {
        const auto p = make_plan("tiny-llama", "ddp", 2, {}, "fp32");
        const auto m = p->persistent();
        CHECK(m[MemCategory::params] == 4 * psi);
        CHECK(m[MemCategory::grads] == 4 * psi);
        CHECK(m[MemCategory::master_params] == 0);
        CHECK(m[MemCategory::optimizer_states] == 8 * psi);
        const auto s = plan::build_schedule(*p);
        CHECK(s.collective_size_bytes(plan::CollectiveKind::all_reduce) == 4 * psi);  // 117,376 B < 25 MiB: one bucket
        CHECK(s.collective_wire_bytes(plan::CollectiveKind::all_reduce) == doctest::Approx(4.0 * psi));  // x 2(N-1)/N = 1
    }
    SUBCASE("zero3 on 3 ranks: padded shards") {
        // Rows split in 3 (k = ceil(rows/3)): embed 96x32 -> 32 rows, no padding; a block pads
        // norm 32->33 (+1 twice), q and o 32->33 rows (+32 each), k and v 16->18 rows (+64 each),
        // gate and up 88->90 rows (+64 each), down 32->33 rows of 88 (+88): 410 per block, so a
        // block shard is (11584 + 410) / 3 = 3998; head: norm +1, lm_head 96 rows: (3104 + 1) / 3
        // = 1035. Shard = 1024 + 2 * 3998 + 1035 = 10055 elements. (Every tensor of this toy is
        // under DeepSpeed's persistence threshold, which would keep them all whole: off here.)
        const auto p = make_plan("tiny-llama", "zero3", 3, {"deepspeed.stage3_param_persistence_threshold=0"}, "fp32");
        CHECK(p->unit_plan(1).params.shard.count() == 3998);
        CHECK(p->unit_plan(3).params.shard.count() == 1035);
        const auto m = p->persistent();
        CHECK(m[MemCategory::params] == 10055 * 4);
        CHECK(m[MemCategory::grads] == 10055 * 4);
        CHECK(m[MemCategory::optimizer_states] == 10055 * 8);
        // All-gathers: every unit once (DeepSpeed's coordinator keeps a model this small gathered
        // from forward to backward), each the padded gathered size: 3 * 10055 * 4 bytes; with
        // stage3_max_reuse_distance 0, twice; reduce-scatter once: 3 * 10055 * 4.
        const auto s = plan::build_schedule(*p);
        CHECK(plan::build_schedule(*make_plan("tiny-llama", "zero3", 3, {"deepspeed.stage3_max_reuse_distance=0"}, "fp32"))
                  .collective_size_bytes(plan::CollectiveKind::all_gather) == 2 * 3 * 10055 * 4);
        CHECK(s.collective_size_bytes(plan::CollectiveKind::all_gather) == 3 * 10055 * 4);
        CHECK(s.collective_size_bytes(plan::CollectiveKind::reduce_scatter) == 3 * 10055 * 4);
    }
    SUBCASE("zero2 on 2 ranks: full params, sharded grads and states, gather after the step") {
        const auto p = make_plan("tiny-llama", "zero2", 2, {}, "fp32");
        const auto m = p->persistent();
        CHECK(m[MemCategory::params] == 4 * psi);
        CHECK(m[MemCategory::grads] == 2 * psi);
        CHECK(m[MemCategory::optimizer_states] == 4 * psi);
        // DeepSpeed reduces its buckets by all-reduce (one bucket here: 5e8 elements is more
        // than the model), then all-gathers the updated parameters.
        const auto s = plan::build_schedule(*p);
        CHECK(s.collective_size_bytes(plan::CollectiveKind::all_reduce) == 4 * psi);
        CHECK(s.collective_size_bytes(plan::CollectiveKind::reduce_scatter) == 0);
        CHECK(s.collective_size_bytes(plan::CollectiveKind::all_gather) == 4 * psi);
    }
    SUBCASE("FLOPs of one step: 3x forward (all trainable), forward by hand") {
        // micro-batch 1 x 16 tokens. Projections per block: q 32x32 + k,v 16x32 + o 32x32 +
        // 3 x 88x32 = 11520 weights, two blocks, plus lm_head 96x32: 26112 -> 2 * 16 * 26112 =
        // 835,584. Attention per block: 4 * 1 * 4 heads * 16 * 16 * 8 = 32,768, two blocks: 65,536.
        const auto p = make_plan("tiny-llama", "ddp", 1, {"memory.attention=eager"}, "fp32");
        const double forward = 835584 + 65536;
        CHECK(plan::build_schedule(*p).total_flops() == doctest::Approx(3 * forward));
    }
    SUBCASE("FLOPs with sdpa (Llama's default): causal scores for the unmasked half, backward 2.5x") {
        // Query i of 16 reads keys 0..i: 16 * 17 / 2 = 136 pairs per head instead of 256, so the
        // attention forward per block is 4 * 4 heads * 136 * 8 = 17,408 (two blocks: 34,816) and
        // its backward 2.5 times that (the scores computed again: five GEMMs for two).
        const auto p = make_plan("tiny-llama", "ddp", 1, {}, "fp32");
        CHECK(p->scenario().job.attention == config::AttentionKind::sdpa);
        CHECK(plan::build_schedule(*p).total_flops() == doctest::Approx(3 * 835584 + 3.5 * 34816));
    }
}

TEST_CASE("ledger: everything allocated in a step is freed by its end; nothing goes negative") {
    const std::vector<std::vector<std::string>> variants = {
        {},
        {"batch.grad_accum=3"},
        {"memory.activation_checkpointing=true"},
        {"memory.offload_optimizer=true"},
        {"memory.offload_optimizer=true", "memory.offload_params=true"},
        {"lora.rank=4", "lora.targets=q_proj,v_proj"},
        {"precision.reduce=fp32", "batch.grad_accum=2"},
        {"deepspeed.stage3_prefetch_bucket_size=0"},
        {"deepspeed.stage3_prefetch_bucket_size=3000", "deepspeed.stage3_max_live_parameters=20000",
         "deepspeed.stage3_max_reuse_distance=5000"},
        {"fsdp.backward_prefetch=none", "fsdp.limit_all_gathers=false"},
        {"fsdp.backward_prefetch=backward_post", "fsdp.forward_prefetch=true"},
        {"fsdp.no_sync=true", "batch.grad_accum=3"},
    };
    for (const char* strategy : {"ddp", "zero1", "zero2", "zero3", "fsdp-full-shard", "fsdp-shard-grad-op", "fsdp-no-shard",
                                 "fsdp-hybrid-shard"}) {
        for (std::int64_t world : {1, 3, 16}) {
            if (std::string(strategy) == "fsdp-hybrid-shard" && world < 16) continue;
            for (const auto& v : variants) {
                const bool offload = !v.empty() && v[0].rfind("memory.offload", 0) == 0;
                const auto& tr = plan::traits(*config::parse_strategy(strategy));
                if (offload && !tr.shard_optimizer) continue;
                if (v.size() > 1 && v[1] == "memory.offload_params=true" && !tr.shard_params) continue;
                // Engine keys go with their engine's strategies only.
                const bool fsdp_keys = !v.empty() && v[0].rfind("fsdp.", 0) == 0;
                const bool zero3_keys = !v.empty() && v[0].rfind("deepspeed.", 0) == 0;
                if (fsdp_keys && tr.engine != plan::Engine::fsdp) continue;
                if (zero3_keys && tr.engine != plan::Engine::deepspeed) continue;
                for (const char* m : {"tiny-llama", "tiny-t5", "tiny-gpt2"}) {
                    std::vector<std::string> sets = v;
                    if (!v.empty() && v[0] == "lora.rank=4")
                        sets[1] = std::string("lora.targets=") + (std::string(m) == "tiny-t5" ? "q,v" : std::string(m) == "tiny-gpt2" ? "c_attn" : "q_proj,v_proj");
                    const auto p = make_plan(m, strategy, world, sets);
                    const auto s = plan::build_schedule(*p);
                    MemoryByCategory cur = s.initial;
                    bool negative = false;
                    for (const auto& op : s.ops) {
                        for (const auto& e : op.ledger) cur[e.category] += e.bytes;
                        for (MemCategory c : kAllMemCategories) negative = negative || cur[c] < 0;
                    }
                    INFO(strategy << " N=" << world << " " << m << " " << (v.empty() ? "" : v[0]));
                    CHECK_FALSE(negative);
                    CHECK(cur == s.initial);
                }
            }
        }
    }
}

TEST_CASE("activations: Llama block by hand (bf16, eager, no checkpointing)") {
    // b=1, s=16, h=32, 4 heads of 8, 2 KV heads, ffn 88, 2 bytes:
    // input_layernorm input 16*32*2 + rstd 16*4; attn input 1024; q 1024, k 512, v 512;
    // softmax(dtype=float32) 1*4*16*16*4 = 4096 and its .to(bf16) 1*4*16*16*2 = 2048; context
    // 1024; post norm 1024 + 64; mlp input 1024; gate, act, up, prod 4 * 16*88*2 = 11264.
    const auto p = make_plan("tiny-llama", "ddp", 1, {"memory.attention=eager"});
    const auto a = plan::call_activations(*p, 1);
    CHECK(a.saved_bytes() == 1024 + 64 + 1024 + 1024 + 512 + 512 + 4096 + 2048 + 1024 + 1024 + 64 + 1024 + 11264);
    CHECK(a.kept_bytes() == 1024);  // only the block input is kept when checkpointing
    // LoRA on q_proj, v_proj: the frozen o_proj, down_proj, gate/up no longer need their inputs,
    // the adapters keep their rank-4 middles (16*4*2 each).
    const auto lora = make_plan("tiny-llama", "ddp", 1, {"memory.attention=eager", "lora.rank=4", "lora.targets=q_proj,v_proj"});
    const auto b = plan::call_activations(*lora, 1);
    CHECK(b.saved_bytes() == a.saved_bytes() - 1024 /*context*/ - 1024 /*mlp input*/ - 2816 /*prod*/ + 2 * 128);
}

TEST_CASE("groups: named dimensions with sizes, instances and spans ([Note: rank groups])") {
    // 6 ranks on one node of 6, as replicate 3 x shard 2 (HSDP with a shard size of 2).
    const plan::Groups g(plan::ParallelDims{3, 2, 1, 6});
    CHECK(g.world() == 6);
    CHECK(g.dims().factors() == "world 6 = replicate 3 x shard 2");
    const auto& shard = g[plan::kShardGroup];
    const auto& rep = g[plan::kReplicateGroup];
    // Rank 3: second shard group {2, 3}, member 1; replicate group {1, 3, 5}, member 1.
    CHECK(shard.instance(3) == 1);
    CHECK(shard.member(3) == 1);
    CHECK(rep.instance(3) == 1);
    CHECK(rep.member(3) == 1);
    CHECK(rep.instance(4) == 0);
    CHECK(rep.member(4) == 2);
    // Every rank is in exactly one instance of each group, with a distinct member index.
    for (const auto& grp : g.all()) {
        std::set<std::pair<std::int64_t, std::int64_t>> seen;
        for (std::int64_t r = 0; r < g.world(); ++r) {
            CHECK(grp.member(r) < grp.size);
            CHECK(seen.insert({grp.instance(r), grp.member(r)}).second);
        }
    }
    CHECK(g.span(plan::kReplicateGroup).nodes == 1);
    CHECK(g.span(plan::kReplicateGroup).per_node == 3);
    // 2 nodes of 4, shard 4: the replicate group has one rank per node; the world spans both.
    const plan::Groups two(plan::ParallelDims{2, 4, 1, 4});
    CHECK(two.span(plan::kReplicateGroup).nodes == 2);
    CHECK(two.span(plan::kReplicateGroup).per_node == 1);
    CHECK(two.span(plan::kWorldGroup).nodes == 2);
    CHECK(two.span(plan::kWorldGroup).per_node == 4);
    CHECK(two.span(plan::kShardGroup).nodes == 1);
    // A shard group of 4 on nodes of 2 spans 2 nodes, 2 ranks each.
    const plan::Groups wide(plan::ParallelDims{2, 4, 1, 2});
    CHECK(wide.span(plan::kShardGroup).nodes == 2);
    CHECK(wide.span(plan::kShardGroup).per_node == 2);
}

TEST_CASE("hybrid shard size: any divisor of the world, the replicate all-reduce on its group") {
    auto p = make_plan("tiny-llama", "fsdp-hybrid-shard", 6, {"parallel.shard_size=2"});
    CHECK(p->groups().shard_size() == 2);
    CHECK(p->groups().replicate_size() == 3);
    const plan::Schedule s = plan::build_schedule(*p);
    int replicate_all_reduces = 0;
    for (const auto& op : s.ops)
        if (op.collective && op.collective->group == plan::kReplicateGroup) {
            ++replicate_all_reduces;
            CHECK(op.collective->kind == plan::CollectiveKind::all_reduce);
            CHECK(op.collective->ranks == 3);
        }
    CHECK(replicate_all_reduces > 0);
}

TEST_CASE("ZeRO++ hpZ: forward gathers over the shard group, backward inside the secondary group") {
    // 32 H100s as 4 nodes of 8, zero3 with a secondary copy per node.
    auto plain = make_plan("llama-7b", "zero3", 32);
    auto hpz = make_plan("llama-7b", "zero3", 32, {"parallel.secondary_shard=8"});
    REQUIRE(hpz->groups().secondary_size() == 8);
    CHECK(hpz->groups().span(plan::kSecondaryGroup).nodes == 1);
    const plan::Schedule s = plan::build_schedule(*hpz);
    int forward_gathers = 0, backward_gathers = 0;
    const int last_call = static_cast<int>(hpz->program().size()) - 1;
    bool in_backward = false;  // from the last forward call of a micro-batch to its next first one
    for (const auto& op : s.ops) {
        if (op.kind == plan::OpKind::forward) in_backward = op.call == last_call;
        if (op.kind != plan::OpKind::all_gather) continue;
        if (op.collective->group == plan::kSecondaryGroup) {
            ++backward_gathers;
            CHECK(op.collective->ranks == 8);
            CHECK(in_backward);
        } else {
            ++forward_gathers;
            CHECK(op.collective->ranks == 32);
        }
    }
    CHECK(forward_gathers > 0);
    CHECK(backward_gathers > 0);
    // The secondary copy costs one node's share of every unit (the ZeRO++ paper's M / N_node),
    // held from forward to the end of backward; nothing is left after the step.
    std::int64_t secondary = 0;
    for (const auto& u : hpz->units()) secondary += hpz->buffers()[hpz->buffers().unit(u.index).secondary].bytes;
    const std::int64_t params_bf16 = hpz->param_count().count() * 2;
    CHECK(secondary >= params_bf16 / 8);
    CHECK(secondary < params_bf16 / 8 + params_bf16 / 100);  // padding is small
    for (MemCategory c : kAllMemCategories) {
        std::int64_t net = 0;
        for (const auto& op : s.ops) net += op.net(c);
        CHECK(net == 0);
    }
    // Same bytes gathered per step, fewer of them across nodes.
    CHECK(s.collective_size_bytes(plan::CollectiveKind::all_gather) ==
          plan::build_schedule(*plain).collective_size_bytes(plan::CollectiveKind::all_gather));
}

TEST_CASE("DDP buckets: whole tensors in backward order, a smaller first bucket, storage unless gradients are its views") {
    // llama-7b in bf16: a block has 7 projections of 32-90 MiB and two 8 KiB norms.
    auto count_all_reduces = [](const plan::Schedule& s) {
        int n = 0;
        for (const auto& op : s.ops) n += op.kind == plan::OpKind::all_reduce;
        return n;
    };
    const auto big = make_plan("llama-7b", "ddp", 8, {"parallel.bucket_mib=1000"});
    const auto dflt = make_plan("llama-7b", "ddp", 8);
    const auto small = make_plan("llama-7b", "ddp", 8, {"parallel.bucket_mib=0.004"});
    const auto& bk = dflt->buffers().buckets();
    REQUIRE(bk.size() > 2);
    // The first bucket closes at the first tensor that reaches 1 MiB: the head alone (250 MiB).
    CHECK(bk.front().units.size() == 1);
    CHECK(dflt->units()[static_cast<std::size_t>(bk.front().units.front())].kind == model::UnitKind::head);
    std::int64_t covered = 0;
    for (std::size_t k = 0; k < bk.size(); ++k) {
        CHECK(bk[k].offset == covered);  // contiguous ranges of the gradient arena
        covered += bk[k].bytes;
    }
    CHECK(covered == dflt->buffers()[dflt->buffers().grad_arena()].bytes);
    // Units split into buckets: 25 MiB buckets split every block (each projection closes one, a norm
    // rides with the next); 4 KiB ones hold one tensor each.
    const int n_big = count_all_reduces(plan::build_schedule(*big)), n_default = count_all_reduces(plan::build_schedule(*dflt)),
              n_small = count_all_reduces(plan::build_schedule(*small));
    CHECK(n_big < n_default);
    CHECK(n_default < n_small);
    CHECK(n_default > static_cast<int>(dflt->units().size()));
    // The same bytes are reduced whatever the bucket size.
    CHECK(plan::build_schedule(*big).collective_size_bytes(plan::CollectiveKind::all_reduce) ==
          plan::build_schedule(*small).collective_size_bytes(plan::CollectiveKind::all_reduce));
    // PyTorch's default keeps bucket storage beside the gradients; gradient_as_bucket_view does not.
    const auto view = make_plan("llama-7b", "ddp", 8, {"ddp.gradient_as_bucket_view=true"});
    const std::int64_t grads = dflt->persistent()[MemCategory::grads];
    CHECK(dflt->persistent()[MemCategory::comm_buffers] == grads);
    CHECK(view->persistent()[MemCategory::comm_buffers] == 0);
    CHECK(view->persistent()[MemCategory::grads] == grads);
}

namespace {
// Which units a ZeRO-3 schedule gathers more than once in its first micro-batch (released after
// their forward use, gathered again for backward — or prefetched again before it).
std::set<int> regathered_in_backward(const plan::ShardingPlan& p) {
    std::map<int, int> count;
    for (const auto& op : plan::build_schedule(p).ops)
        if (op.kind == plan::OpKind::all_gather && op.micro_batch == 0) ++count[op.unit];
    std::set<int> out;
    for (const auto& [u, n] : count)
        if (n > 1) out.insert(u);
    return out;
}
}  // namespace

TEST_CASE("ZeRO-3's coordinator: reuse distance and the live-parameter limit, by hand on a 4-unit toy") {
    // tiny-llama: embed 3,072 elements, block.0 and block.1 11,584 each, head 3,104 — trace:
    // forward embed, b0, b1, head, then backward head, b1, b0, embed. After the forward of a
    // unit, its next use is its backward; the elements in between are the units used in between,
    // repeats counted, and the walk stops before a unit once they reach the distance:
    //   head: 0     b1: head + head = 6,208     b0: b1 + 2 x head + b1 = 29,376
    //   embed: 2 x (b0 + b1 + head) = 52,544
    auto p = [](std::int64_t reuse) {
        return make_plan("tiny-llama", "zero3", 2, {"deepspeed.stage3_max_reuse_distance=" + std::to_string(reuse)}, "fp32");
    };
    const auto units = [](std::initializer_list<int> v) { return std::set<int>(v); };
    REQUIRE(p(0)->units().size() == 4);
    REQUIRE(p(0)->unit_plan(1).params.real.count() == 11584);
    REQUIRE(p(0)->unit_plan(3).params.real.count() == 3104);
    CHECK(regathered_in_backward(*p(0)) == units({0, 1, 2, 3}));  // the walk stops at once
    CHECK(regathered_in_backward(*p(1)) == units({0, 1, 2}));
    CHECK(regathered_in_backward(*p(6208)) == units({0, 1, 2}));
    CHECK(regathered_in_backward(*p(6209)) == units({0, 1}));
    CHECK(regathered_in_backward(*p(29376)) == units({0, 1}));
    CHECK(regathered_in_backward(*p(29377)) == units({0}));
    CHECK(regathered_in_backward(*p(52545)).empty());
    // The default (1e9) keeps a model this small gathered from forward to backward.
    CHECK(regathered_in_backward(*make_plan("tiny-llama", "zero3", 2, {}, "fp32")).empty());
}

TEST_CASE("ZeRO-3's prefetch budget: min(max live - gathered since forward began, prefetch bucket)") {
    // The all-gathers issued before the first forward: the embed on demand, then prefetches while
    // the budget lasts (the last may overshoot it).
    auto gathers_before_forward = [](std::int64_t bucket, std::int64_t live) {
        const auto p = make_plan("tiny-llama", "zero3", 2,
                                 {"deepspeed.stage3_prefetch_bucket_size=" + std::to_string(bucket),
                                  "deepspeed.stage3_max_live_parameters=" + std::to_string(live)},
                                 "fp32");
        int n = 0;
        for (const auto& op : plan::build_schedule(*p).ops) {
            if (op.kind == plan::OpKind::forward) break;
            n += op.kind == plan::OpKind::all_gather;
        }
        return n;
    };
    CHECK(gathers_before_forward(0, 1000000000) == 1);       // no prefetch: the embed alone
    CHECK(gathers_before_forward(1, 1000000000) == 2);       // one element of budget: block.0 overshoots it
    CHECK(gathers_before_forward(11584, 1000000000) == 2);   // exactly block.0
    CHECK(gathers_before_forward(11585, 1000000000) == 3);   // block.0, then block.1 overshoots
    CHECK(gathers_before_forward(100000, 1000000000) == 4);  // everything
    CHECK(gathers_before_forward(100000, 3072 + 1) == 2);    // the live limit: the embed counted, one element left
    CHECK(gathers_before_forward(100000, 3072) == 1);        // the limit reached by the embed itself
}
