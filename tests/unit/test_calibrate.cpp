// calibrate: the fit recovers the link parameters a sweep was generated with; the bench file
// round-trips; the calibrated topology file keeps the user's text and holds the fitted values.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "shardsim/config/ini_edit.hpp"
#include "shardsim/core/stats.hpp"
#include "shardsim/config/topology.hpp"
#include "shardsim/io/bench_file.hpp"
#include "shardsim/io/json.hpp"
#include "shardsim/report/bench.hpp"
#include "shardsim/sim/calibrate.hpp"
#include "shardsim/sim/compute.hpp"
#include "test_util.hpp"

using namespace shardsim;
using plan::CollectiveKind;

namespace {

constexpr CollectiveKind kOps[] = {CollectiveKind::all_gather, CollectiveKind::reduce_scatter, CollectiveKind::all_reduce};

sim::LinkModel truth() {
    sim::LinkModel l;
    l.intra = {config::LinkKind::nvlink, 200e9, 0.75, 3e-6};  // bus bandwidth 150 GB/s
    l.inter = {config::LinkKind::infiniband, 25e9, 0.8, 8e-6};  // 20 GB/s per NIC
    l.nics = 4;
    l.gpus_per_node = 8;
    return l;
}

// Every op at every size 8 B .. 1 GiB on the given groups, timed by the model itself.
std::vector<sim::Measurement> synthetic(const sim::LinkModel& l, const std::vector<sim::GroupSpan>& spans) {
    std::vector<sim::Measurement> out;
    for (const auto& span : spans)
        for (auto k : kOps)
            for (std::int64_t size = 8; size <= (1LL << 30); size *= 2) {
                sim::Measurement m{k, size, span, 0};
                m.time_s = sim::predicted_time(l, m);
                out.push_back(m);
            }
    return out;
}

const sim::GroupSpan kNode{8, 1, 8}, kWorld{32, 4, 8}, kReplicate{4, 4, 1};

}  // namespace

TEST_CASE("calibrate recovers the latency and bandwidth a synthetic sweep was made with (within 1%)") {
    const sim::LinkModel real = truth();
    sim::LinkModel start = real;  // the datasheet guess the fit starts from: far off on purpose
    start.intra.latency_s = 20e-6;
    start.intra.bandwidth_Bps = 10e9;
    start.intra.efficiency = 1;
    start.inter.latency_s = 1e-6;
    start.inter.bandwidth_Bps = 100e9;
    const auto points = synthetic(real, {kNode, kWorld, kReplicate});
    const sim::Calibration c = sim::calibrate_links(start, points);
    REQUIRE(c.levels.size() == 2);
    for (const auto& f : c.levels) CHECK_MESSAGE(f.fitted, f.note);
    CHECK(c.links.intra.latency_s == doctest::Approx(real.intra.latency_s).epsilon(0.01));
    CHECK(c.links.intra.busbw_Bps() == doctest::Approx(real.intra.busbw_Bps()).epsilon(0.01));
    CHECK(c.links.inter.latency_s == doctest::Approx(real.inter.latency_s).epsilon(0.01));
    CHECK(c.links.inter.busbw_Bps() == doctest::Approx(real.inter.busbw_Bps()).epsilon(0.01));
    CHECK(c.links.reduce_Bps == 0);  // the sweep's reductions cost nothing extra, and the fit says so
    // Then the model predicts its own sweep exactly: predictions are collective_time itself.
    for (const auto& m : points) CHECK(std::abs(sim::relative_error(c.links, m)) < 0.01);
}

TEST_CASE("calibrate: a level without measurements keeps its values and says why") {
    const sim::LinkModel real = truth();
    const auto points = synthetic(real, {kNode});
    sim::LinkModel start = real;
    start.intra.bandwidth_Bps = 1e9;
    const sim::Calibration c = sim::calibrate_links(start, points);
    CHECK(c.levels[0].fitted);
    CHECK(c.links.intra.busbw_Bps() == doctest::Approx(real.intra.busbw_Bps()).epsilon(0.01));
    CHECK_FALSE(c.levels[1].fitted);
    CHECK(c.levels[1].note == "no measurement on a group spanning nodes");
    CHECK(c.links.inter.busbw_Bps() == start.inter.busbw_Bps());
}

TEST_CASE("calibrate: latency and bandwidth stay >= 0 when times do not fit the model") {
    // Times that fall with size: the best non-negative fit has no bandwidth term.
    std::vector<sim::Measurement> points;
    for (std::int64_t size = 8; size <= 8192; size *= 2)
        points.push_back({CollectiveKind::all_gather, size, kNode, 1e-3 / static_cast<double>(size)});
    const sim::Calibration c = sim::calibrate_links(truth(), points);
    CHECK_FALSE(c.levels[0].fitted);
    CHECK(c.links.intra.latency_s >= 0);
    CHECK(c.links.intra.busbw_Bps() > 0);
}

TEST_CASE("edit_ini_text replaces, inserts and appends keys and keeps the rest of the text") {
    Problems problems;
    const auto f = config::parse_ini_text("t.ini", "# head\n[a]\nx = 1  # why\ny = 2\n\n[b]\nz = 3\n", problems);
    REQUIRE(problems.empty());
    const std::string out = config::edit_ini_text(
        f, {{"a", "x", "10", "fitted"}, {"b", "w", "4", ""}, {"c", "v", "5", ""}}, "# pre\n");
    CHECK(out == "# pre\n# head\n[a]\nx = 10  # fitted\ny = 2\n\n[b]\nz = 3\nw = 4\n\n[c]\nv = 5\n");
}

TEST_CASE("bench sizes and groups") {
    CHECK(bench::bench_sizes(8, 64, 2) == std::vector<std::int64_t>{8, 16, 32, 64});
    CHECK(bench::bench_sizes(8, 100, 4) == std::vector<std::int64_t>{8, 32});
    CHECK(bench::bench_sizes(1LL << 30, 1LL << 30, 2) == std::vector<std::int64_t>{1LL << 30});
    const auto one = bench::bench_groups(6, 6);
    REQUIRE(one.size() == 1);
    CHECK(one[0].name == "world");
    const auto two = bench::bench_groups(4, 2);  // 2 nodes x 2: world, node, replicate
    REQUIRE(two.size() == 3);
    CHECK(two[0].span.nodes == 2);
    CHECK(two[0].span.per_node == 2);
    CHECK(two[1].name == "node");
    CHECK(two[1].instances == 2);
    CHECK(two[2].name == "replicate");
    CHECK(two[2].span.per_node == 1);
    CHECK(bench::bench_groups(2, 1).size() == 1);  // one rank per node: the world is the replicate group
}

namespace {
// A bench file whose times are the model's own, as `shardsim bench` would write it.
bench::BenchRun synthetic_run(const sim::LinkModel& l) {
    bench::BenchRun run;
    run.backend = "mpi";
    run.raw_library = "MPI";
    run.world_size = 32;
    run.nodes = 4;
    run.ranks_per_node = 8;
    run.iters = 1;
    run.hosts.assign(32, "host");
    run.groups = bench::bench_groups(32, 8);
    for (std::size_t g = 0; g < run.groups.size(); ++g)
        for (auto k : kOps)
            for (std::int64_t size = 64; size <= (256LL << 20); size *= 4)
                for (bool in_place : {false, true}) {
                    bench::BenchRow r;
                    r.group = static_cast<int>(g);
                    r.kind = k;
                    r.size_bytes = size;
                    r.count = size / 4 / (k == CollectiveKind::all_reduce ? 1 : run.groups[g].span.ranks);
                    r.in_place = in_place;
                    r.time_s = sim::predicted_time(l, {k, size, run.groups[g].span, 0});
                    r.raw_time_s = r.time_s * 1.01;
                    run.rows.push_back(r);
                }
    const std::size_t n = run.rows.size() * 32;
    run.rank_time_s.assign(n, 0);
    run.rank_raw_time_s.assign(n, 0);
    run.rank_wrong.assign(n, 0);
    for (std::size_t i = 0; i < n; ++i) run.rank_time_s[i] = run.rows[i % run.rows.size()].time_s;
    return run;
}

const char* kTopology = R"(# A test cluster: 4 nodes x 8.
[cluster]
name = test-4x8
nodes = 4
gpus_per_node = 8
[gpu]
name = test
memory_gib = 80
bf16_tflops = 900
fp16_tflops = 900
fp32_tflops = 60
hbm_gbps = 3000
[intra_node]
kind = nvlink
bandwidth_gbps = 400   # datasheet
[inter_node]
kind = infiniband
bandwidth_gbps = 50
nics = 4
latency_us = 2
[host]
memory_gib = 1024
)";
}  // namespace

TEST_CASE("bench file round trip, and the stored busbw is nccl-tests' arithmetic on the stored time") {
    test::TempDir dir;
    const bench::BenchRun run = synthetic_run(truth());
    const std::string path = dir.path("bench.h5");
    io::write_bench_file(path, run);
    const bench::BenchRun back = io::read_bench_file(path);
    REQUIRE(back.rows.size() == run.rows.size());
    CHECK(back.groups.size() == 3);
    CHECK(back.rank_time_s == run.rank_time_s);
    const auto busbw = io::read_bench_column(path, "busbw_GBps");
    for (std::size_t i = 0; i < back.rows.size(); ++i) {
        const auto& r = back.rows[i];
        const double n = static_cast<double>(back.groups[static_cast<std::size_t>(r.group)].span.ranks);
        const double factor = r.kind == CollectiveKind::all_reduce ? 2 * (n - 1) / n : (n - 1) / n;
        CHECK(busbw[i] == doctest::Approx(static_cast<double>(r.size_bytes) / r.time_s / 1e9 * factor));
    }
    CHECK_THROWS_AS(io::read_bench_file(dir.file("not.h5", "text")), InputError);
}

TEST_CASE("shardsim calibrate recovers the model's values end to end and writes a loadable topology") {
    test::TempDir dir;
    const sim::LinkModel real = truth();
    io::write_bench_file(dir.path("bench.h5"), synthetic_run(real));
    const std::string topo = dir.file("test-4x8.ini", kTopology);
    const std::string out = dir.path("calibrated.ini");
    const auto r = test::run_command(test::shardsim_binary() + " calibrate " + dir.path("bench.h5") + " --topology " + topo +
                                     " --out " + out);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(r.output.find("intra_node") != std::string::npos);
    const auto t = config::load_topology(out, "", "test", {});
    CHECK(t.intra.latency_us == doctest::Approx(3).epsilon(0.01));
    CHECK(t.intra.bandwidth_gbps == 400);  // the datasheet stays; the efficiency carries the fit
    CHECK(t.intra.bandwidth_gbps * t.intra.efficiency == doctest::Approx(150).epsilon(0.01));
    CHECK(t.inter.latency_us == doctest::Approx(8).epsilon(0.01));
    CHECK(t.inter.bandwidth_gbps * t.inter.efficiency == doctest::Approx(20).epsilon(0.01));
    CHECK(t.gpu.reduce_gbps == 0);
    CHECK(r.output.find(">= 64 KiB") != std::string::npos);  // the error per size band
    CHECK(t.gpu.hbm_gbps == 3000);  // everything else as it was
    CHECK(t.source.text.find("# A test cluster") != std::string::npos);

    const auto bad = test::run_command(test::shardsim_binary() + " calibrate " + topo + " --topology " + topo + " --out " + out);
    CHECK(bad.exit_code == 2);
    CHECK(test::lines(bad.output).size() == 1);
}

// calibrate --compute on this machine's CPU device: what it writes loads, says where it came from,
// keeps every share of a peak in (0, 1], and a GEMM priced with it takes as long as the measured
// rate says (the figures themselves depend on the machine and its load: not checked).
TEST_CASE("shardsim calibrate --compute writes measured [compute] figures that load and price GEMMs at the measured rate") {
    test::TempDir dir;
    const std::string out = dir.path("cpu-compute.ini");
    const auto r = test::run_command(test::shardsim_binary() + " calibrate --compute --topology cpu-host --device cpu --json --out " + out);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const io::Json j = io::Json::parse(r.output);
    const double gemm = j.at("gemm_flops_per_s").as_number();
    CHECK(gemm > 0);
    CHECK(j.at("memory_Bps").as_number() > 0);
    const auto t = config::load_topology(out, "", "test", {});
    CHECK(t.compute.source.find("calibrate --compute") != std::string::npos);
    for (double share : {t.compute.gemm_efficiency, t.compute.attention_efficiency, t.compute.memory_efficiency, t.compute.elementwise_efficiency}) {
        CHECK(share > 0);
        CHECK(share <= 1);
    }
    // Achieved GEMM rate = peak x gemm_efficiency, as the compute model reads it (4 significant digits written).
    CHECK(t.gpu.fp32_tflops * 1e12 * t.compute.gemm_efficiency == doctest::Approx(gemm).epsilon(1e-3));
    // The CPU computes 16-bit GEMMs in fp32 between staging passes: every dtype gets the fp32
    // peak, the staging rate and the optimizer rate are measured and written as measured.
    CHECK(t.gpu.bf16_tflops == t.gpu.fp32_tflops);
    CHECK(t.gpu.fp16_tflops == t.gpu.fp32_tflops);
    const double stage = j.at("stage_elements_per_s").as_number(), optimizer = j.at("optimizer_elements_per_s").as_number();
    CHECK(optimizer > 0);
    CHECK(t.host.cpu_optimizer_gelems * 1e9 == doctest::Approx(optimizer).epsilon(1e-3));
    CHECK(t.compute.accumulate_gelems * 1e9 == doctest::Approx(j.at("accumulate_elements_per_s").as_number()).epsilon(1e-3));
    CHECK(t.compute.accumulate_fp32_gelems * 1e9 == doctest::Approx(j.at("accumulate_fp32_elements_per_s").as_number()).epsilon(1e-3));
    // Streaming stays the memory share; the elementwise kernels' share is fitted on their own ([Note:
    // a CPU's elementwise kernels]): a scalar loop on a core moves less than axpby does.
    CHECK(t.compute.memory_efficiency * t.gpu.hbm_gbps * 1e9 == doctest::Approx(j.at("memory_Bps").as_number()).epsilon(1e-3));
    CHECK(t.compute.elementwise_efficiency < t.compute.memory_efficiency);
    CHECK(t.compute.elementwise_efficiency == doctest::Approx(j.at("elementwise_efficiency").as_number()).epsilon(1e-3));
    // The spread of the ops' times, for the wait at each collective ([Note: waiting for the last rank]).
    CHECK(t.compute.time_cv >= 0);
    CHECK(t.compute.time_cv < 1);
    CHECK(t.compute.time_cv == doctest::Approx(j.at("time_cv").as_number()).epsilon(1e-3));
    if (stage > 0) CHECK(t.compute.stage_gelems * 1e9 == doctest::Approx(stage).epsilon(1e-3));
    // A bf16 GEMM priced with the file: the fp32 GEMM plus its elements at the staging rate.
    const sim::ComputeModel c16 = sim::ComputeModel::from(t, DType::bf16), c32 = sim::ComputeModel::from(t, DType::fp32);
    const model::Gemm g{128, 688, 256, 1};
    CHECK(c16.gemm_time(g) - c32.gemm_time(g) ==
          doctest::Approx(stage > 0 ? (128.0 * 256 + 256.0 * 688 + 128.0 * 688) / stage : 0.0).epsilon(1e-3));
    const auto bad = test::run_command(test::shardsim_binary() + " calibrate --compute --topology cpu-host --device tpu --out " + out);
    CHECK(bad.exit_code == 2);
    CHECK(bad.output.find("--device: bad value 'tpu' (allowed: auto, cpu, cuda)") != std::string::npos);
    const auto bad_model = test::run_command(test::shardsim_binary() + " calibrate --compute --topology cpu-host --device cpu --model no-such-model --out " + out);
    CHECK(bad_model.exit_code == 2);
    CHECK(test::lines(bad_model.output).size() == 1);
    CHECK(bad_model.output.find("--model") != std::string::npos);
}

// [Note: a CPU host's cache] A sweep made on shm links with a cache term (2 ranks, 12 MiB of the
// 24 MiB the host reports kept, the bytes beyond moving 2.5x slower, reductions at 6 GB/s) and
// MPI's own-data copy at 20 GB/s, in both placements ([Note: MPI's out-of-place copy]): the fit
// finds the cache among its candidates, the slowdown and the copy rate, and predicts its sweep
// exactly. With one placement only the copy rate is held as it was.
TEST_CASE("calibrate on shm links recovers the cache, the slowdown beyond it and MPI's copy rate a sweep was made with") {
    sim::LinkModel real;
    real.intra = {config::LinkKind::shm, 12e9, 1, 1.5e-6};
    real.gpus_per_node = 2;
    real.reduce_Bps = 6e9;
    real.cache_bytes = 12.0 * 1024 * 1024;
    real.spill_extra = 1.5;
    real.copy_Bps = 20e9;
    const sim::GroupSpan pair{2, 1, 2};
    std::vector<sim::Measurement> points;
    for (auto k : kOps)
        for (std::int64_t size = 64 * 1024; size <= 64LL * 1024 * 1024; size *= 2)
            for (const bool in_place : {false, true}) {
                sim::Measurement m{k, size, pair, 0, in_place};
                m.time_s = sim::predicted_time(real, m);
                points.push_back(m);
            }
    // Beyond the cache the same bytes take longer: the sweep shows the cliff.
    const auto busbw = [&](std::int64_t size) {
        return static_cast<double>(size) / sim::collective_time(real, CollectiveKind::all_gather, size, pair, true);
    };
    CHECK(busbw(64LL * 1024 * 1024) < 0.5 * busbw(2 * 1024 * 1024));
    sim::LinkModel start = real;  // the host's whole cache, no slowdown, a datasheet guess
    start.cache_bytes = 24.0 * 1024 * 1024;
    start.spill_extra = 0;
    start.intra.bandwidth_Bps = 4e9;
    start.intra.latency_s = 5e-6;
    start.reduce_Bps = 0;
    const sim::Calibration c = sim::calibrate_links(start, points);
    const sim::LevelFit& f = c.levels.at(0);
    REQUIRE(f.fitted);
    CHECK(f.cache_fitted);
    CHECK(f.cache_bytes == doctest::Approx(real.cache_bytes).epsilon(1e-9));
    CHECK(f.spill_slowdown == doctest::Approx(2.5).epsilon(0.01));
    CHECK(c.links.intra.busbw_Bps() == doctest::Approx(12e9).epsilon(0.01));
    CHECK(c.links.reduce_Bps == doctest::Approx(6e9).epsilon(0.01));
    CHECK(f.copy_fitted);
    CHECK(c.links.copy_Bps == doctest::Approx(20e9).epsilon(0.01));
    for (const auto& m : points) CHECK(std::abs(sim::relative_error(c.links, m)) < 0.01);
    // In place only: the copy rate stays what it was.
    std::vector<sim::Measurement> in_place;
    for (const auto& m : points)
        if (m.in_place) in_place.push_back(m);
    const sim::Calibration one = sim::calibrate_links(start, in_place);
    CHECK_FALSE(one.levels.at(0).copy_fitted);
    CHECK(one.links.copy_Bps == start.copy_Bps);
    // Other link kinds have no cache term.
    sim::LinkModel nvlink = real;
    nvlink.intra.kind = config::LinkKind::nvlink;
    CHECK(sim::spill_factor(nvlink, CollectiveKind::all_gather, 1LL << 30, pair, false) == 1.0);
}

TEST_CASE("median: the middle value, the mean of the middle two, NaN for none") {
    CHECK(median({3, 1, 2}) == 2);
    CHECK(median({4, 1, 3, 2}) == 2.5);
    CHECK(std::isnan(median({})));
}
