// The simulator: timelines, peaks, overlap, summaries, every shipped job, scale.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <random>

#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/buffers.hpp"
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
}  // namespace

TEST_CASE("peak is the maximum over the timeline, not the sum of per-category maxima") {
    timeline::RankTimeline tl;
    MemoryByCategory a, b;
    a[MemCategory::activations] = 100;  // activations peak early
    a[MemCategory::grads] = 10;
    b[MemCategory::activations] = 20;   // gradients peak late
    b[MemCategory::grads] = 70;
    tl.memory = {{0.0, -1, 0, {}}, {1.0, 0, 0, a}, {2.0, 1, 0, b}};
    const auto s = tl.summarize();
    CHECK(s.peak_bytes == 110);
    CHECK(s.peak_breakdown == a);
    CHECK(s.max_by_category[MemCategory::grads] == 70);
    CHECK(s.max_by_category[MemCategory::activations] + s.max_by_category[MemCategory::grads] == 170);
}

TEST_CASE("interval arithmetic for compute/communication overlap") {
    CHECK(timeline::union_length({{0, 2}, {1, 3}, {5, 6}}) == doctest::Approx(4));
    CHECK(timeline::uncovered_length({{0, 4}}, {{1, 2}, {3, 5}}) == doctest::Approx(2));
    CHECK(timeline::uncovered_length({{0, 1}}, {}) == doctest::Approx(1));
}

TEST_CASE("IntervalCover answers each query as uncovered_length does, without re-merging") {
    std::mt19937 rng(17);
    std::uniform_real_distribution<double> start(0, 100), len(0, 5);
    for (int trial = 0; trial < 20; ++trial) {
        std::vector<std::pair<double, double>> b;
        const int n = trial * 7;  // from none to overlapping crowds
        for (int i = 0; i < n; ++i) {
            const double s = start(rng);
            b.push_back({s, s + len(rng)});
        }
        const timeline::IntervalCover cover(b);
        for (int q = 0; q < 50; ++q) {
            const double s = start(rng) - 5, e = s + 3 * len(rng);
            const double expect = std::max(0.0, e - s) - timeline::uncovered_length({{s, e}}, b);
            CHECK(cover.covered(s, e) == doctest::Approx(expect).epsilon(1e-12));
        }
    }
    const timeline::IntervalCover cover({{1, 2}, {3, 5}});
    CHECK(cover.covered(0, 4) == doctest::Approx(2));
    CHECK(cover.covered(2, 3) == 0);
    CHECK(cover.covered(4, 4) == 0);
    CHECK(cover.covered(1.5, 1.75) == doctest::Approx(0.25));
}

TEST_CASE("simulated memory starts and ends at the persistent state; peak >= persistent") {
    for (const char* job : {"llama-7b-fsdp-6x-a100-40g", "flan-t5-xl-zero3-offload-8x-a100-40g", "t0-3b-lora-1x-a100-80g"}) {
        const auto p = plan::ShardingPlan::build(model::load_scenario(job, {}));
        const auto s = plan::build_schedule(*p);
        const auto tl = sim::simulate_rank(*p, s);
        INFO(job);
        // Fragmentation slack is added to runtime_overhead everywhere; compare the rest.
        MemoryByCategory first = tl.memory.front().bytes, last = tl.memory.back().bytes;
        CHECK(first == last);
        CHECK(tl.summarize().peak_bytes > first.device_total());
        for (std::size_t i = 1; i < tl.ops.size(); ++i) CHECK(tl.ops[i].t_end >= tl.ops[i].t_start);
    }
}

TEST_CASE("FSDP's backward prefetch hides all-gathers behind compute: less exposed communication") {
    // Without prefetch the next unit's all-gather queues behind this unit's reduce-scatter on the
    // one communication stream; BACKWARD_PRE issues it before the gradient is computed.
    const auto none = simulate("llama-7b-fsdp-6x-a100-40g", {"fsdp.backward_prefetch=none", "topology.intra_node.bandwidth_gbps=300"});
    const auto one = simulate("llama-7b-fsdp-6x-a100-40g", {"fsdp.backward_prefetch=backward_pre", "topology.intra_node.bandwidth_gbps=300"});
    const auto a = report::summary_json(none), b = report::summary_json(one);
    // Backward prefetch changes backward: the communication of backward left uncovered by compute
    // (forward's all-gathers, with their copy-out, are exposed the same either way). One
    // micro-batch, so that no forward follows the first backward.
    const auto none1 = simulate("llama-7b-fsdp-6x-a100-40g", {"fsdp.backward_prefetch=none", "topology.intra_node.bandwidth_gbps=300", "batch.grad_accum=1"});
    const auto one1 = simulate("llama-7b-fsdp-6x-a100-40g", {"fsdp.backward_prefetch=backward_pre", "topology.intra_node.bandwidth_gbps=300", "batch.grad_accum=1"});
    auto exposed_in_backward = [](const timeline::RunTimeline& r) {
        const auto& ops = r.timelines.at(0).ops;
        double first_backward = 1e300;
        std::vector<std::pair<double, double>> compute;
        for (const auto& op : ops) {
            if (op.stream == plan::OpStream::compute) compute.push_back({op.t_start, op.t_end});
            if (op.kind == plan::OpKind::backward) first_backward = std::min(first_backward, op.t_start);
        }
        const timeline::IntervalCover cover(compute);
        double exposed = 0;
        for (const auto& op : ops)
            if (op.stream == plan::OpStream::comm && op.t_start >= first_backward)
                exposed += (op.t_end - op.t_start) - cover.covered(op.t_start, op.t_end);
        return exposed;
    };
    CHECK(exposed_in_backward(one1) < 0.5 * exposed_in_backward(none1));
    CHECK(b.at("exposed_comm_s").as_number() < a.at("exposed_comm_s").as_number());
    CHECK(b.at("step_time_s").as_number() < a.at("step_time_s").as_number());
    // Same bytes either way.
    CHECK(a.at("comm_bytes_per_rank").dump() .find("size_bytes") != std::string::npos);
    CHECK(a.at("comm_bytes_per_rank").at("all_gather").at("size_bytes").as_int() ==
          b.at("comm_bytes_per_rank").at("all_gather").at("size_bytes").as_int());
}

TEST_CASE("collective model: ring time and nccl-tests bus bandwidth agree") {
    sim::LinkModel l;
    l.intra = {config::LinkKind::nvswitch, 125e9, 0.8, 0.0};  // bus bandwidth 100 GB/s, no latency
    l.gpus_per_node = 8;
    const sim::GroupSpan g{8, 1, 8};
    const std::int64_t size = 1 << 30;
    for (auto k : {plan::CollectiveKind::all_gather, plan::CollectiveKind::reduce_scatter, plan::CollectiveKind::all_reduce}) {
        const double t = sim::collective_time(l, k, size, g, true);
        CHECK(plan::busbw_GBps(k, size, 8, t) == doctest::Approx(100.0));
    }
}

TEST_CASE("summary JSON carries the documented keys") {
    const auto j = report::summary_json(simulate("llama-7b-fsdp-6x-a100-40g"));
    for (const char* k : {"world_size", "fits", "gpu_memory_bytes", "step_time_s", "compute_time_s", "comm_time_s",
                          "exposed_comm_s", "comm_bytes_per_rank", "param_count", "trainable_param_count", "ranks"})
        CHECK(j.contains(k));
    CHECK(j.at("world_size").as_int() == 6);
    CHECK(j.at("fits").as_bool());
    const auto& r = j.at("ranks")[0];
    CHECK(r.at("ranks").size() == 6);
    for (const char* k : {"peak_bytes", "peak_by_category", "model_state_bytes", "host_peak_bytes"}) CHECK(r.contains(k));
    for (MemCategory c : kAllMemCategories) CHECK(r.at("peak_by_category").contains(std::string(category_name(c))));
    for (const char* k : {"params", "grads", "master_params", "optimizer_states"}) CHECK(r.at("model_state_bytes").contains(k));
}

TEST_CASE("fit: Llama-7B DDP on one A100 40G does not fit; FSDP over six does") {
    CHECK_FALSE(report::summary_json(simulate("llama-7b-fsdp-6x-a100-40g", {"parallel.strategy=ddp"})).at("fits").as_bool());
    CHECK(report::summary_json(simulate("llama-7b-fsdp-6x-a100-40g")).at("fits").as_bool());
}

TEST_CASE("every shipped job simulates") {
    for (const auto& e : std::filesystem::directory_iterator(test::source_dir() + "/jobs")) {
        if (e.path().extension() != ".ini") continue;  // jobs/seed-configs/: the frameworks' configs
        INFO(e.path());
        const auto j = report::summary_json(simulate(e.path().string()));
        CHECK(j.at("step_time_s").as_number() > 0);
        CHECK(j.at("ranks")[0].at("peak_bytes").as_int() > 0);
    }
}

TEST_CASE("scale: Llama-2-70B full shard on 1,024 H100s simulates in well under a second") {
    const auto t0 = std::chrono::steady_clock::now();
    const auto run = simulate("llama-7b-fsdp-6x-a100-40g", {"job.model=llama-2-70b", "job.topology=128x8-h100-ib",
                                                            "topology.cluster.nodes=128"});
    CHECK(run.world_size == 1024);
    CHECK(run.timelines.size() == 1);  // one timeline serves every rank
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 5.0);  // generous for CI
}

// [Note: a CPU host's cores] (config/topology.hpp): a CPU rank overlaps its collectives with its
// compute only with a second core for them; ranks beyond the cores take turns on them.
TEST_CASE("a CPU host: collectives between compute on one core per rank, beside it on two, everything slower past the cores") {
    CHECK_FALSE(config::CpuHost::of(2, 2).comm_thread);
    CHECK(config::CpuHost::of(4, 2).comm_thread);
    CHECK(config::CpuHost::of(3, 2).comm_thread == false);  // 1.5 cores: no core of its own for the thread
    CHECK(config::CpuHost::of(2, 2).slowdown == 1);
    CHECK(config::CpuHost::of(2, 6).slowdown == 3);
    auto sim = [](std::int64_t cores) {
        return simulate("mini-llama-fsdp-2cpu", {"topology.host.cpu_cores=" + std::to_string(cores)});
    };
    const auto one = sim(2), two = sim(4), half = sim(1);
    auto step = [](const timeline::RunTimeline& r) { return report::summary_json(r).at("step_time_s").as_number(); };
    // One core per rank: one lane, so no op starts before the one before it in the schedule ended,
    // and the step is every op's time end to end.
    const auto& ops = one.timelines.at(0).ops;
    double busy = 0;
    for (std::size_t i = 0; i < ops.size(); ++i) {
        if (i > 0) CHECK(ops[i].t_start >= ops[i - 1].t_end - 1e-12);
        busy += ops[i].t_end - ops[i].t_start;
    }
    CHECK(step(one) == doctest::Approx(busy).epsilon(1e-9));
    // Two cores per rank: the comm lane runs beside compute (some collective overlaps a compute op).
    bool overlapped = false;
    for (const auto& c : two.timelines.at(0).ops)
        for (const auto& k : two.timelines.at(0).ops)
            if (c.stream == plan::OpStream::comm && k.stream == plan::OpStream::compute && c.t_start < k.t_end && k.t_start < c.t_end &&
                c.t_end > c.t_start && k.t_end > k.t_start)
                overlapped = true;
    CHECK(overlapped);
    CHECK(step(two) < step(one));
    // Two ranks on one core: each op twice as long.
    CHECK(step(half) == doctest::Approx(2 * step(one)).epsilon(1e-9));
    // Memory is the same plan's: the peaks only move with what overlaps.
    CHECK(one.timelines.at(0).summarize().peak_bytes <= two.timelines.at(0).summarize().peak_bytes);
}

// [Note: data movement around a collective] (sim/cost.cpp): a reduce-scatter's time is the wire's
// plus packing its input into the staging buffer (and zeroing it when padded rank-major) and adding
// the reduced shard into the gradient shard; on a CPU the addition goes element by element.
TEST_CASE("a reduce-scatter's time includes packing its input and landing the reduced shard, priced by the plan's buffers") {
    const std::vector<std::string> sets = {"topology.host.cpu_cores=2", "topology.compute.memory_efficiency=0.5",
                                           "topology.compute.stage_gelems=2", "topology.compute.accumulate_gelems=0.5"};
    const auto p = plan::ShardingPlan::build(model::load_scenario("mini-llama-fsdp-2cpu", sets));
    const auto schedule = plan::build_schedule(*p);
    const sim::CostModel cost(*p);
    const plan::Op* rs = nullptr;
    for (const auto& op : schedule.ops)
        if (op.kind == plan::OpKind::reduce_scatter && op.micro_batch == 0 && p->units().at(static_cast<std::size_t>(op.unit)).name == "block.3") rs = &op;
    REQUIRE(rs);
    const auto& buf = p->buffers();
    const plan::BufferSpec& in = buf[rs->use(plan::Role::input)->buffer];
    const plan::BufferSpec& stage = buf[rs->use(plan::Role::stage)->buffer];
    const plan::BufferSpec& result = buf[rs->use(plan::Role::result)->buffer];
    REQUIRE(in.dtype == DType::bf16);
    REQUIRE(stage.dtype == DType::bf16);
    REQUIRE(result.arrangement == plan::Arrangement::shard);
    const double streamed = 20e9 * 0.5;  // cpu-host's hbm_gbps x memory_efficiency
    const double zeroing = stage.arrangement == plan::Arrangement::gathered ? static_cast<double>(stage.bytes) / streamed : 0.0;
    const double expected = zeroing + static_cast<double>(in.bytes) / streamed + static_cast<double>(result.elements()) / 0.5e9;
    CHECK(cost.movement_time(*rs) == doctest::Approx(expected).epsilon(1e-9));
    const double wire = sim::collective_time(cost.links(), rs->collective->kind, rs->collective->size_bytes, p->groups().span(rs->collective->group),
                                              plan::executor_in_place(rs->collective->kind));
    CHECK(cost.op_time(*rs) == doctest::Approx(wire + expected).epsilon(1e-9));
    // The shard is 1 / ranks of the input: the landing is most of it on a core at these rates.
    CHECK(static_cast<double>(result.elements()) / 0.5e9 > 0.5 * expected);
}

// [Note: waiting for the last rank] (simulator.cpp): with compute times that spread, a collective
// lasts its transfer plus the expected wait for the last of its ranks.
TEST_CASE("a collective waits for the last rank: the spread of the compute since the last collective x E[max of n normals]") {
    CHECK(sim::expected_max_of_normals(1) == 0);
    CHECK(sim::expected_max_of_normals(2) == doctest::Approx(1 / std::sqrt(M_PI)).epsilon(1e-6));  // E|X - Y| / 2
    CHECK(sim::expected_max_of_normals(3) == doctest::Approx(1.5 / std::sqrt(M_PI)).epsilon(1e-6));
    CHECK(sim::expected_max_of_normals(6) == doctest::Approx(1.2672).epsilon(1e-3));  // tables of normal order statistics
    const std::vector<std::string> one_lane = {"topology.host.cpu_cores=2"};
    std::vector<std::string> spread = one_lane;
    spread.push_back("topology.compute.time_cv=0.05");
    const auto still = simulate("mini-llama-fsdp-2cpu", one_lane), noisy = simulate("mini-llama-fsdp-2cpu", spread);
    const auto& a = still.timelines.at(0).ops;
    const auto& b = noisy.timelines.at(0).ops;
    REQUIRE(a.size() == b.size());
    // Every collective preceded, since the one before it, by exactly one compute op of length T
    // waits 0.05 x T x E[max of 2].
    int checked = 0;
    for (std::size_t i = 1; i < a.size(); ++i) {
        if (a[i].kind != plan::OpKind::reduce_scatter && a[i].kind != plan::OpKind::all_gather) continue;
        std::vector<double> compute;
        for (std::size_t j = i; j-- > 0;) {
            if (a[j].kind == plan::OpKind::reduce_scatter || a[j].kind == plan::OpKind::all_gather) break;
            if (a[j].kind == plan::OpKind::forward || a[j].kind == plan::OpKind::backward) compute.push_back(a[j].t_end - a[j].t_start);
        }
        if (compute.size() != 1 || compute[0] <= 0) continue;
        const double wait = 0.05 * compute[0] * sim::expected_max_of_normals(2);
        CHECK((b[i].t_end - b[i].t_start) - (a[i].t_end - a[i].t_start) == doctest::Approx(wait).epsilon(1e-6));
        ++checked;
    }
    CHECK(checked > 10);
    CHECK(report::summary_json(noisy).at("comm_time_s").as_number() > report::summary_json(still).at("comm_time_s").as_number());
}
