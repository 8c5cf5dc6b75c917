// validate on real CPU runs: the executor's measured memory changes, op by op and category by
// category, equal the plan's ledger; model-state bytes and collective sizes are exact; and a file
// with one byte count changed is caught, naming the op.
#include <doctest/doctest.h>
#include <mpi.h>

#include <algorithm>
#include <filesystem>

#include "mpi_helpers.hpp"
#include "shardsim/cli/run_setup.hpp"
#include "shardsim/exec/gather.hpp"
#include "shardsim/io/hdf5.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/report/validate.hpp"

using namespace shardsim;
using namespace shardsim::test;

namespace {

struct Both {
    timeline::RunTimeline predicted, measured;
};

// Simulates and runs `job` on every rank of the world; rank 0 gets both timelines.
Both simulate_and_run(const std::string& job, std::vector<std::string> sets) {
    const int rank = world_rank(), size = world_size();
    if (std::none_of(sets.begin(), sets.end(), [](const std::string& s) { return s.rfind("topology.cluster.", 0) == 0; }))
        sets.push_back("topology.cluster.gpus_per_node=" + std::to_string(size));
    auto ctx = cli::prepare_run(std::string(SHARDSIM_SOURCE_DIR) + "/jobs/" + job, sets, device::BackendRequest::mpi, 1, false, rank, size);
    for (int s = 0; s < 2; ++s) ctx.executor->run_step(s);
    Both b;
    b.predicted = ctx.prediction;
    b.measured = cli::collect_measured(ctx, 2, "");
    return b;
}


}  // namespace

TEST_CASE("validate: every op allocates and frees what the ledger says, for every family and option") {
    const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
        {"tiny-llama-cpu.ini", {}},
        {"tiny-llama-cpu.ini", {"parallel.strategy=zero2", "precision.params=bf16"}},
        {"tiny-llama-cpu.ini", {"parallel.strategy=zero1", "memory.offload_optimizer=true"}},
        {"tiny-llama-cpu.ini", {"parallel.strategy=ddp", "memory.activation_checkpointing=true"}},
        {"tiny-llama-cpu.ini", {"parallel.strategy=zero3", "memory.offload_optimizer=true", "memory.offload_params=true"}},
        {"tiny-llama-cpu.ini", {"lora.rank=4", "lora.targets=q_proj,v_proj", "precision.reduce=fp32", "precision.params=bf16"}},
        {"tiny-gpt2-cpu.ini", {"parallel.strategy=fsdp-shard-grad-op"}},
        {"tiny-bloom-cpu.ini", {"parallel.strategy=fsdp-no-shard"}},
        {"tiny-t5-cpu.ini", {}},
        {"tiny-t5-cpu.ini", {"lora.rank=4", "lora.targets=q", "memory.activation_checkpointing=true"}},
        {"tiny-llama-cpu.ini", {"fsdp.no_sync=true", "batch.grad_accum=2", "fsdp.backward_prefetch=backward_post"}},
        {"tiny-llama-cpu.ini", {"parallel.strategy=zero2", "batch.grad_accum=3"}},
        {"tiny-llama-cpu.ini", {"parallel.strategy=ddp", "parallel.bucket_mib=0.001", "precision.params=bf16", "precision.reduce=fp32"}},
        // Hugging Face's activations: T5's fp32 softmax next to its bf16 probabilities with
        // dropout 0.1 (masks in the probabilities, sublayers, FFN, stack ends), recomputed; Llama's
        // fp32 softmax with attention dropout and its sdpa; GPT-2's dropout with the fused loss.
        {"tiny-t5-cpu.ini", {"precision.params=bf16", "parallel.strategy=zero3"}},
        {"tiny-t5-cpu.ini", {"precision.params=bf16", "memory.activation_checkpointing=true"}},
        {"tiny-llama-cpu.ini", {"precision.params=bf16", "dropout.attention=0.1", "parallel.strategy=zero2"}},
        {"tiny-llama-cpu.ini", {"memory.attention=sdpa", "dropout.attention=0.1"}},
        {"tiny-gpt2-cpu.ini", {"memory.loss=fused", "precision.params=bf16"}},
        // DeepSpeed's engine: ZeRO-3's coordinator with reuse distance 0 and a live limit, small
        // sub-groups (the step's flattened and fp32 gradients per sub-group) and the persistence
        // threshold; ZeRO-2's buckets split below a unit; ZeRO-3 offloading the optimizer only (the
        // fp32 master up through the device); ZeRO-2 offload accumulating on the host.
        {"tiny-llama-cpu.ini", {"parallel.strategy=zero3", "precision.params=bf16", "deepspeed.stage3_max_reuse_distance=0",
                                "deepspeed.stage3_max_live_parameters=20000", "deepspeed.sub_group_size=8000",
                                "deepspeed.stage3_param_persistence_threshold=100"}},
        {"tiny-llama-cpu.ini", {"parallel.strategy=zero2", "precision.params=bf16", "parallel.bucket_mib=0.004", "batch.grad_accum=2"}},
        {"tiny-llama-cpu.ini", {"parallel.strategy=zero3", "precision.params=bf16", "memory.offload_optimizer=true", "deepspeed.sub_group_size=8000"}},
        {"tiny-llama-cpu.ini", {"parallel.strategy=zero2", "precision.params=bf16", "memory.offload_optimizer=true", "batch.grad_accum=2"}},
    };
    auto all = cases;
    // ZeRO++ hpZ and HSDP with a shard size of its own, where the world splits in two.
    if (world_size() >= 4 && world_size() % 2 == 0) {
        const std::string half = std::to_string(world_size() / 2);
        all.push_back({"tiny-llama-cpu.ini", {"parallel.strategy=zero3", "parallel.secondary_shard=" + half, "topology.cluster.nodes=2",
                                              "topology.cluster.gpus_per_node=" + half, "topology.inter_node.kind=ethernet",
                                              "topology.inter_node.bandwidth_gbps=1", "batch.grad_accum=2"}});
        all.push_back({"tiny-llama-cpu.ini", {"parallel.strategy=fsdp-hybrid-shard", "parallel.shard_size=2"}});
    }
    report::Thresholds th;
    th.time_pct = 0;  // times on an oversubscribed CPU host are not what this test is about
    for (const auto& [job, sets] : all) {
        const Both b = simulate_and_run(job, sets);
        if (!is_root()) continue;
        const auto v = report::validate_runs(b.predicted, b.measured, th);
        for (const auto& r : v.ranks) {
            std::string what = job;
            for (const auto& s : sets) what += " " + s;
            INFO(what << ": ranks " << report::rank_list(r.ranks));
            for (const auto& e : r.exact_failures) INFO(e);
            CHECK(r.exact_failures.empty());
            CHECK(r.divergence == "");
        }
    }
}

TEST_CASE("validate: a changed byte count in a measured file is caught, naming the op") {
    const Both b = simulate_and_run("tiny-llama-cpu.ini", {});
    if (!is_root()) return;
    if (b.measured.world_size < 2) {
        MESSAGE("skipped on 1 rank: a single rank runs no collective to corrupt");
        return;
    }
    const auto dir = std::filesystem::temp_directory_path() / ("shardsim-validate-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string sim = (dir / "sim.h5").string(), run = (dir / "run.h5").string(), bad = (dir / "bad.h5").string();
    io::write_run_file(sim, b.predicted);
    io::write_run_file(run, b.measured);
    report::Thresholds th;
    th.time_pct = 0;
    const auto good = report::validate_runs(io::read_run_file(sim), io::read_run_file(run), th);
    for (const auto& r : good.ranks) CHECK(r.exact_failures.empty());

    // Change the size of the first reduce-scatter of the last step on rank 0, and the memory
    // change of the op before it.
    auto corrupted = io::read_run_file(run);
    auto& ops = corrupted.timelines[static_cast<std::size_t>(corrupted.class_of_rank[0])].ops;
    int target = -1;
    for (auto& op : ops)
        if (op.step == 1 && op.kind == plan::OpKind::reduce_scatter) {
            op.bytes += 4;
            target = op.op_id;
            break;
        }
    REQUIRE(target >= 0);
    io::write_run_file(bad, corrupted);
    const auto v = report::validate_runs(io::read_run_file(sim), io::read_run_file(bad), th);
    CHECK_FALSE(v.passed);
    const std::string text = report::validation_text(v, th);
    INFO(text);
    CHECK(text.find("first collective whose size differs: op " + std::to_string(target) + " (reduce_scatter ") != std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("validate: a peak that differs while every op's change is as planned is put down to timing") {
    const Both b = simulate_and_run("tiny-llama-cpu.ini", {});
    if (!is_root()) return;
    report::Thresholds th;
    th.time_pct = 0;
    const auto good = report::validate_runs(b.predicted, b.measured, th);
    for (const auto& r : good.ranks)
        if (std::none_of(r.categories.begin(), r.categories.end(), [](const auto& c) { return c.failed; }))
            CHECK(r.memory_cause.empty());

    // 1 MiB more gradients in one sample in the middle of rank 0's last step: the per-op changes
    // (and the persistent bytes at the step's start) stay as planned, only the peak moves.
    auto shifted = b.measured;
    auto& samples = shifted.timelines[static_cast<std::size_t>(shifted.class_of_rank[0])].memory;
    std::vector<std::size_t> last;
    for (std::size_t i = 0; i < samples.size(); ++i)
        if (samples[i].step == 1) last.push_back(i);
    REQUIRE(last.size() > 2);
    samples[last[last.size() / 2]].bytes[MemCategory::grads] += 1 << 20;
    const auto v = report::validate_runs(b.predicted, shifted, th);
    CHECK_FALSE(v.passed);
    bool seen = false;
    for (const auto& r : v.ranks) {
        if (std::find(r.ranks.begin(), r.ranks.end(), 0) == r.ranks.end()) continue;
        seen = true;
        CHECK(r.divergence.empty());
        CHECK(r.exact_failures.empty());
        CHECK(r.memory_cause.find("which ops overlapped") != std::string::npos);
        CHECK(report::validation_text(v, th).find("why the peaks differ: ") != std::string::npos);
    }
    CHECK(seen);
}
