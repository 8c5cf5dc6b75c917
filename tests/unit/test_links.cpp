// The collective model (sim/links.hpp): published nccl-tests figures, protocol regimes, link
// kinds that change behaviour, the host path pcie-no-p2p shares with offload copies, reductions.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "shardsim/model/scenario.hpp"
#include "shardsim/report/bench_predict.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/sim/cost.hpp"
#include "shardsim/sim/simulator.hpp"
#include "test_util.hpp"

using namespace shardsim;
using plan::CollectiveKind;

namespace {

std::vector<config::TopologyConfig> shipped_topologies() {
    std::vector<config::TopologyConfig> out;
    for (const auto& e : std::filesystem::directory_iterator(test::source_dir() + "/topologies"))
        out.push_back(config::load_topology(e.path().string(), "", "test", {}));
    return out;
}

timeline::RunTimeline simulate(const std::string& job, const std::vector<std::string>& sets = {}) {
    const auto p = plan::ShardingPlan::build(model::load_scenario(job, sets));
    return sim::simulate(*p, plan::build_schedule(*p));
}

}  // namespace

TEST_CASE("shipped A100 / H100 topologies predict the nccl-tests busbw they cite within 10%, 8 MiB - 8 GiB") {
    int checked = 0;
    for (const auto& t : shipped_topologies()) {
        const bool nvlink_node = (t.intra.kind == config::LinkKind::nvlink || t.intra.kind == config::LinkKind::nvswitch) &&
                                 t.gpus_per_node > 1;
        const bool a100_h100 = t.gpu.name.find("A100") != std::string::npos || t.gpu.name.find("H100") != std::string::npos;
        INFO(t.name);
        if (a100_h100 && nvlink_node) CHECK_MESSAGE(!t.published.points.empty(), "an NVLink A100/H100 node cites no nccl-tests figures");
        const sim::LinkModel links = sim::LinkModel::from(t);
        const plan::GroupSpan span = report::span_of_ranks(t.published.ranks, t.gpus_per_node);
        for (const auto& p : t.published.points) {
            if (p.size_bytes < (8LL << 20) || p.size_bytes > (8LL << 30)) continue;
            const auto kind = *plan::parse_collective(p.op);
            const double busbw = plan::busbw_GBps(kind, p.size_bytes, span.ranks, sim::collective_time(links, kind, p.size_bytes, span, false));
            INFO(p.op << " " << p.size_bytes << " B: model " << busbw << " GB/s, published " << p.busbw_gbps);
            CHECK(std::abs(busbw / p.busbw_gbps - 1) <= 0.10);
            ++checked;
        }
    }
    CHECK(checked >= 10);
}

TEST_CASE("protocol regimes: LL for tiny messages, Simple for large ones; busbw grows with size") {
    const auto t = config::load_topology("8x-a100-40g", "", "test", {});
    const sim::LinkModel l = sim::LinkModel::from(t);
    const plan::GroupSpan g{8, 1, 8};
    CHECK(sim::estimate_collective(l, CollectiveKind::all_reduce, 8, g, true).protocol == sim::Protocol::ll);
    CHECK(sim::estimate_collective(l, CollectiveKind::all_reduce, 8LL << 30, g, true).protocol == sim::Protocol::simple);
    std::set<sim::Protocol> seen;
    double last = 0;
    for (std::int64_t size = 8; size <= (8LL << 30); size *= 2) {
        const auto e = sim::estimate_collective(l, CollectiveKind::all_reduce, size, g, true);
        seen.insert(e.protocol);
        const double busbw = plan::busbw_GBps(CollectiveKind::all_reduce, size, 8, e.time_s);
        CHECK(busbw > last);
        last = busbw;
    }
    CHECK(seen.size() == 3);  // LL128 in between, on NVLink
    // PCIe has no LL128 (NCCL enables it on NVLink only).
    const auto pcie = config::load_topology("8x-a100-40g", "", "test", {{"intra_node", "kind", "pcie", "--set"}});
    for (std::int64_t size = 8; size <= (8LL << 30); size *= 2)
        CHECK(sim::estimate_collective(sim::LinkModel::from(pcie), CollectiveKind::all_reduce, size, g, true).protocol != sim::Protocol::ll128);
}

TEST_CASE("across nodes NCCL's tree wins small all-reduces, the ring large ones") {
    const auto t = config::load_topology("4x8-h100-ib", "", "test", {});
    const sim::LinkModel l = sim::LinkModel::from(t);
    const plan::GroupSpan world{32, 4, 8};
    CHECK(sim::estimate_collective(l, CollectiveKind::all_reduce, 1 << 20, world, true).algorithm == sim::Algorithm::tree);
    CHECK(sim::estimate_collective(l, CollectiveKind::all_reduce, 8LL << 30, world, true).algorithm == sim::Algorithm::ring);
    // Crossing the network costs more than staying in a node, for the same bytes per rank.
    const plan::GroupSpan node{8, 1, 8};
    CHECK(sim::collective_time(l, CollectiveKind::all_gather, 1 << 20, {16, 2, 8}, true) > sim::collective_time(l, CollectiveKind::all_gather, 1 << 20, node, true));
}

TEST_CASE("a reduction rate makes reducing collectives slower than all-gather; 0 makes it free") {
    sim::LinkModel l;
    l.intra = {config::LinkKind::shm, 10e9, 1.0, 1e-6};
    const plan::GroupSpan g{2, 1, 2};
    const std::int64_t size = 64 << 20;
    CHECK(sim::collective_time(l, CollectiveKind::reduce_scatter, size, g, true) ==
          doctest::Approx(sim::collective_time(l, CollectiveKind::all_gather, size, g, true)));
    l.reduce_Bps = 2e9;
    const double extra = sim::collective_time(l, CollectiveKind::reduce_scatter, size, g, true) -
                         sim::collective_time(l, CollectiveKind::all_gather, size, g, true);
    CHECK(extra == doctest::Approx(static_cast<double>(size) / 2 / 2e9));  // (n-1)/n of the buffer, added at 2 GB/s
}

TEST_CASE("--sweep topology.intra_node.kind=pcie,pcie-no-p2p,nvlink gives three different answers") {
    std::set<double> steps, comms;
    for (const char* kind : {"pcie", "pcie-no-p2p", "nvlink"}) {
        const auto j = report::summary_json(simulate("llama-7b-fsdp-6x-a100-40g", {std::string("topology.intra_node.kind=") + kind}));
        steps.insert(j.at("step_time_s").as_number());
        comms.insert(j.at("comm_time_s").as_number());
    }
    CHECK(steps.size() == 3);
    CHECK(comms.size() == 3);
    // Staging through host memory halves the bandwidth: the slowest of the three by far.
    const auto staged = report::summary_json(simulate("llama-7b-fsdp-6x-a100-40g", {"topology.intra_node.kind=pcie-no-p2p"}));
    const auto p2p = report::summary_json(simulate("llama-7b-fsdp-6x-a100-40g", {"topology.intra_node.kind=pcie"}));
    CHECK(staged.at("comm_time_s").as_number() > 1.8 * p2p.at("comm_time_s").as_number());
}

TEST_CASE("pcie-no-p2p: staged collectives and offload copies take turns on the host path; with P2P they overlap") {
    auto overlaps = [](const timeline::RunTimeline& run) {
        std::vector<std::pair<double, double>> copies, comms;
        for (const auto& op : run.timelines[0].ops) {
            if (op.t_end <= op.t_start) continue;
            if (op.stream == plan::OpStream::copy) copies.push_back({op.t_start, op.t_end});
            if (op.collective >= 0) comms.push_back({op.t_start, op.t_end});
        }
        double shared = 0;
        for (const auto& c : copies)
            for (const auto& m : comms) shared += std::max(0.0, std::min(c.second, m.second) - std::max(c.first, m.first));
        return shared;
    };
    const std::string job = "flan-t5-xl-zero3-offload-2x-rtx4090";
    CHECK(overlaps(simulate(job, {"topology.intra_node.kind=pcie-no-p2p"})) == doctest::Approx(0.0));
    CHECK(overlaps(simulate(job, {"topology.intra_node.kind=pcie"})) > 0);
}

TEST_CASE("bench --predict prints the model's table beside the published figures, without MPI") {
    const auto r = test::run_command(test::shardsim_binary() + " bench --predict --topology 8x-a100-40g --op all_reduce --min-bytes 8M --max-bytes 8G");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(r.output.find("published") != std::string::npos);
    CHECK(r.output.find("8589934592") != std::string::npos);
    CHECK(r.output.find("ring/Simple") != std::string::npos);
    const auto bad = test::run_command(test::shardsim_binary() + " bench --predict");
    CHECK(bad.exit_code == 2);
    CHECK(test::lines(bad.output).size() == 1);
}

TEST_CASE("nccl_tests figures that do not parse are refused with file, key and what is allowed") {
    test::TempDir dir;
    const std::string text = "[cluster]\nnodes = 1\ngpus_per_node = 8\n[gpu]\nname = x\nmemory_gib = 80\nbf16_tflops = 1\n"
                             "fp16_tflops = 1\nfp32_tflops = 1\nhbm_gbps = 1\n[intra_node]\nkind = nvswitch\nbandwidth_gbps = 300\n"
                             "[host]\nmemory_gib = 10\n[nccl_tests]\nsource = s\nranks = 8\nall_reduce_busbw_gbps = 8M:130 64Q:200\n";
    const std::string path = dir.file("t.ini", text);
    try {
        config::load_topology(path, "", "test", {});
        FAIL("accepted");
    } catch (const InputError& e) {
        INFO(e.what());
        CHECK(std::string(e.what()).find("t.ini:19: nccl_tests.all_reduce_busbw_gbps: bad value '64Q:200'") != std::string::npos);
    }
}

// [Note: a CPU host's cache] The share of the node's buffers beyond the cache, times
// spill_slowdown - 1: 2 ranks, 8 MiB of cache, slowdown 3. An out-of-place all-gather of 16 MiB
// holds 2 x (8 + 16) = 48 MiB: 5/6 beyond, factor 1 + 5/6 x 2; in place 2 x 16: 3/4 beyond; of
// 2 MiB, 6 MiB: inside, 1.
TEST_CASE("shm links: the bytes of a collective's buffers beyond the cache move spill_slowdown times slower") {
    sim::LinkModel l;
    l.intra = {config::LinkKind::shm, 10e9, 1, 1e-6};
    l.gpus_per_node = 2;
    l.cache_bytes = 8.0 * 1024 * 1024;
    l.spill_extra = 2;
    const sim::GroupSpan pair{2, 1, 2};
    const std::int64_t mib = 1024 * 1024;
    CHECK(sim::spill_factor(l, CollectiveKind::all_gather, 2 * mib, pair, false) == 1.0);
    CHECK(sim::spill_factor(l, CollectiveKind::all_gather, 16 * mib, pair, false) == doctest::Approx(1 + 5.0 / 6.0 * 2));
    CHECK(sim::spill_factor(l, CollectiveKind::all_gather, 16 * mib, pair, true) == doctest::Approx(1 + 0.75 * 2));
    // All-reduce out of place: 2 x 2 x 4 MiB, half beyond; in place 2 x 4: inside.
    CHECK(sim::spill_factor(l, CollectiveKind::all_reduce, 4 * mib, pair, false) == doctest::Approx(1 + 0.5 * 2));
    CHECK(sim::spill_factor(l, CollectiveKind::all_reduce, 4 * mib, pair, true) == 1.0);
    // Reduce-scatter: its input, the temporary copy and, out of place, the receive buffer:
    // 2 x (16 + 16 + 8) = 80 MiB, 9/10 beyond.
    CHECK(sim::spill_factor(l, CollectiveKind::reduce_scatter, 16 * mib, pair, false) == doctest::Approx(1 + 0.9 * 2));
    // The transfer takes the factor: the time less the latency grows by it.
    sim::LinkModel flat = l;
    flat.spill_extra = 0;
    const double lat = sim::collective_time(flat, CollectiveKind::all_gather, 8, pair, true);
    const double t1 = sim::collective_time(flat, CollectiveKind::all_gather, 16 * mib, pair, true) - lat;
    const double t3 = sim::collective_time(l, CollectiveKind::all_gather, 16 * mib, pair, true) - lat;
    CHECK(t3 / t1 == doctest::Approx(1 + 0.75 * 2).epsilon(0.01));
    // A cache of 0 (unknown) or a slowdown of 1: no term.
    sim::LinkModel none = l;
    none.cache_bytes = 0;
    CHECK(sim::spill_factor(none, CollectiveKind::all_gather, 1LL << 30, pair, false) == 1.0);
}

// [Note: MPI's out-of-place copy] On shm an out-of-place all-reduce first copies the whole buffer,
// an out-of-place all-gather the rank's block; a reduce-scatter copies its input into a temporary
// and its block out of it in either placement, and in place moves the result to the rank's block;
// at copy_Bps, beyond the cache spill_slowdown times slower. NCCL: no difference.
TEST_CASE("shm links: MPI's own-data copy makes a call's placement cost what it copies") {
    sim::LinkModel l;
    l.intra = {config::LinkKind::shm, 10e9, 1, 1e-6};
    l.gpus_per_node = 2;
    l.reduce_Bps = 5e9;
    l.copy_Bps = 20e9;
    const sim::GroupSpan pair{2, 1, 2};
    const std::int64_t size = 4 * 1024 * 1024;
    const auto gap = [&](CollectiveKind k) {
        return sim::collective_time(l, k, size, pair, false) - sim::collective_time(l, k, size, pair, true);
    };
    CHECK(gap(CollectiveKind::all_reduce) == doctest::Approx(static_cast<double>(size) / 20e9));
    CHECK(gap(CollectiveKind::all_gather) == doctest::Approx(static_cast<double>(size) / 2 / 20e9));
    CHECK(gap(CollectiveKind::reduce_scatter) == doctest::Approx(-static_cast<double>(size) / 2 / 20e9));
    CHECK(sim::own_copy_bytes(CollectiveKind::reduce_scatter, size, 2, false) == 1.5 * static_cast<double>(size));
    CHECK(sim::own_copy_bytes(CollectiveKind::all_reduce, size, 2, true) == 0);
    // Beyond the cache the copy slows down with the rest, and an out-of-place call holds more: 4 MiB
    // of cache, an all-reduce of 4 MiB holds 2 x 4 in place (factor 1.5), 2 x 2 x 4 out (1.75).
    const double flat = sim::collective_time(l, CollectiveKind::all_reduce, size, pair, true);
    l.cache_bytes = 4.0 * 1024 * 1024;
    l.spill_extra = 1;
    const double x = (sim::collective_time(l, CollectiveKind::all_reduce, size, pair, true) - flat) / 0.5;  // transfer + reduction
    CHECK(gap(CollectiveKind::all_reduce) == doctest::Approx(0.25 * x + 1.75 * static_cast<double>(size) / 20e9));
    // The executor's placements: all-reduce in place, the others out of place.
    CHECK(plan::executor_in_place(CollectiveKind::all_reduce));
    CHECK_FALSE(plan::executor_in_place(CollectiveKind::all_gather));
    CHECK_FALSE(plan::executor_in_place(CollectiveKind::reduce_scatter));
    sim::LinkModel nv = l;
    nv.intra.kind = config::LinkKind::nvlink;
    CHECK(sim::collective_time(nv, CollectiveKind::all_reduce, size, pair, false) ==
          sim::collective_time(nv, CollectiveKind::all_reduce, size, pair, true));
}
