// `shardsim report`: step selection, the text and JSON report (peak op and unit, compute
// utilisation against the stored topology), the Chrome trace's processes, threads and counters,
// the HTML page's structure and thinning. Measured files are built here as a stand-in for
// `shardsim run --out`: a simulated timeline per rank, several steps each starting at 0.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "shardsim/core/format.hpp"
#include "shardsim/io/hdf5.hpp"
#include "shardsim/model/scenario.hpp"
#include "shardsim/report/charts.hpp"
#include "shardsim/report/chrome_trace.hpp"
#include "shardsim/report/html.hpp"
#include "shardsim/report/report.hpp"
#include "shardsim/report/validate.hpp"
#include "shardsim/sim/simulator.hpp"
#include "test_util.hpp"

using namespace shardsim;
using report::LoadedRun;
using timeline::RunTimeline;

namespace {

RunTimeline simulated(const std::string& job = "tiny-gpt2-cpu", const std::vector<std::string>& sets = {}) {
    const auto p = plan::ShardingPlan::build(model::load_scenario(job, sets));
    return sim::simulate(*p, plan::build_schedule(*p));
}

// What `run` writes: one timeline per rank, `steps` steps whose times each start at 0; rank r is
// slower by `r` x 10% so that ranks differ in time (not in memory).
RunTimeline measured(int steps = 3, const std::vector<std::string>& sets = {}) {
    RunTimeline run = simulated("tiny-gpt2-cpu", sets);
    run.mode = "run";
    run.backend = "mpi";
    run.steps = steps;
    const timeline::RankTimeline base = run.timelines.front();
    run.timelines.clear();
    for (std::int64_t r = 0; r < run.world_size; ++r) {
        timeline::RankTimeline tl;
        tl.rank = static_cast<int>(r);
        tl.device = "cpu";
        tl.host = "node0";
        for (int s = 0; s < steps; ++s) {
            const double scale = 1.0 + 0.1 * static_cast<double>(r) + (s == 0 ? 0.5 : 0.0);  // step 0 warms up
            for (auto op : base.ops) {
                op.step = s;
                op.t_start *= scale;
                op.t_end *= scale;
                tl.ops.push_back(op);
            }
            for (auto m : base.memory) {
                m.step = s;
                m.t *= scale;
                tl.memory.push_back(m);
            }
        }
        run.timelines.push_back(tl);
    }
    for (std::size_t r = 0; r < run.class_of_rank.size(); ++r) run.class_of_rank[r] = static_cast<int>(r);
    return run;
}

LoadedRun loaded(const RunTimeline& run, const std::string& path, int step = -1) {
    LoadedRun lr;
    lr.path = path;
    lr.full = run;
    lr.steps = report::recorded_steps(run);
    lr.step = step < 0 ? lr.steps.back() : step;
    lr.run = report::select_step(run, lr.step);
    return lr;
}

std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
    return n;
}

}  // namespace

TEST_CASE("report: a measured file is read one step at a time, from that step's start") {
    const RunTimeline run = measured(3);
    CHECK(report::recorded_steps(run) == std::vector<int>{0, 1, 2});
    const RunTimeline last = report::select_step(run, -1);
    const RunTimeline first = report::select_step(run, 0);
    for (const auto& op : last.rank(1).ops) CHECK(op.step == 2);
    CHECK(last.rank(0).summarize().step_time < first.rank(0).summarize().step_time);  // no warm-up
    CHECK(last.rank(0).summarize().comm_size_bytes == simulated().rank(0).summarize().comm_size_bytes);
    CHECK_THROWS_WITH_AS(report::select_step(run, 7), doctest::Contains("recorded step(s) 0-2"), InputError);
    // Steps that each start at 0 are laid end to end in the trace.
    const auto offsets = report::step_offsets(run.rank(0), {0, 1, 2});
    CHECK(offsets[0] == 0);
    CHECK(offsets[1] == doctest::Approx(first.rank(0).summarize().step_time));
    CHECK(offsets[2] > offsets[1]);
}

TEST_CASE("report JSON: peak op, unit and time, comm per kind, utilisation against the stored topology") {
    const RunTimeline sim = simulated();
    const LoadedRun lr = loaded(sim, "sim.h5");
    const io::Json j = report::report_json(lr);
    CHECK(j.at("source").as_string() == "simulated");
    const auto& cp = j.at("compute_peak");
    REQUIRE(cp.at("known").as_bool());
    CHECK(cp.at("dtype").as_string() == "fp32");
    CHECK(cp.at("peak_tflops").as_number() == doctest::Approx(0.096));  // topologies/cpu-host.ini
    REQUIRE(j.at("ranks").size() == 1);  // two ranks, one shared timeline
    const io::Json& g = j.at("ranks")[0];
    const timeline::RankSummary s = sim.rank(0).summarize();
    CHECK(g.at("ranks").size() == 2);
    const auto* peak = report::peak_sample(sim.rank(0));
    REQUIRE(peak != nullptr);
    CHECK(peak->bytes.device_total() == s.peak_bytes);
    CHECK(g.at("peak_t_s").as_number() == doctest::Approx(peak->t));
    CHECK(!g.at("peak_unit").as_string().empty());
    CHECK(g.at("peak_op").as_string().find(g.at("peak_unit").as_string()) != std::string::npos);
    CHECK(g.at("compute_utilisation").as_number() == doctest::Approx(s.flops / s.compute_time / 0.096e12));
    CHECK(g.at("hfu").as_number() == doctest::Approx(s.flops / s.step_time / 0.096e12));
    CHECK(g.at("mfu").as_number() > 0);
    // The simulator prices GEMMs at compute_efficiency (0.3) of the peak plus a memory-bound term.
    CHECK(g.at("compute_utilisation").as_number() <= 0.3 + 1e-9);
    CHECK(g.at("compute_utilisation").as_number() > 0.01);
    for (const char* kind : {"all_gather", "reduce_scatter"}) {
        const auto& c = g.at("comm_bytes_per_rank").at(kind);
        CHECK(c.at("size_bytes").as_int() == s.comm_size_bytes.at(static_cast<int>(*plan::parse_collective(kind))));
        CHECK(c.at("busbw_GBps").as_number() == doctest::Approx(c.at("algbw_GBps").as_number() * 0.5));  // (n-1)/n, n = 2
    }
}

TEST_CASE("report JSON: a topology that cannot be read makes utilisation unknown, not an error") {
    RunTimeline sim = simulated();
    sim.attributes.clear();
    sim.topology_text = "[gpu]\nname = x\n";
    const io::Json j = report::report_json(loaded(sim, "sim.h5"));
    CHECK_FALSE(j.at("compute_peak").at("known").as_bool());
    CHECK(!j.at("compute_peak").at("why_unknown").as_string().empty());
    CHECK_FALSE(j.at("ranks")[0].contains("compute_utilisation"));
    CHECK(report::report_text(loaded(sim, "sim.h5")).find("compute peak: unknown") != std::string::npos);
}

TEST_CASE("report text: folded rank groups, peak placement, utilisation, side by side with --compare") {
    const LoadedRun meas = loaded(measured(3), "run.h5");
    const LoadedRun sim = loaded(simulated(), "sim.h5");
    const std::string t = report::report_text(meas, &sim);
    CHECK(t.find("run.h5: measured (mode run, backend mpi)") != std::string::npos);
    CHECK(t.find("showing step 2 of steps 0-2 (the last") != std::string::npos);
    CHECK(t.find("ranks 0-1") != std::string::npos);  // same memory figures: one column
    for (const char* row : {"per rank group", "  at op", "  in unit", "  at time", "compute utilisation",
                            "all_gather size", "  algbw / busbw", "exposed comm", "side by side", "measured", "simulated"})
        CHECK_MESSAGE(t.find(row) != std::string::npos, row);
    // Rank 1 is 10% slower than rank 0, and the step measured is not the warm-up: 1.1 x predicted.
    const io::Json j = report::report_json(meas, &sim);
    CHECK(j.at("step_time_s").as_number() == doctest::Approx(1.1 * j.at("compare").at("step_time_s").as_number()));
    CHECK(j.at("compare").at("source").as_string() == "simulated");
}

TEST_CASE("validate folds ranks of one prediction as simulate does, showing the furthest rank per row") {
    const std::vector<std::string> six = {"topology.cluster.gpus_per_node=6"};
    const RunTimeline pred = simulated("tiny-gpt2-cpu", six);
    RunTimeline meas = measured(2, six);  // rank r is 10% x r slower: the times differ, nothing else
    report::Thresholds th;
    th.time_pct = 0;
    const auto v = report::validate_runs(pred, meas, th);
    REQUIRE(v.ranks.size() == 1);
    CHECK(v.ranks[0].ranks == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
    for (const auto& t : v.ranks[0].times)
        if (t.what == "step time") {
            CHECK(t.rank == 5);  // the slowest: 1.5x the prediction
            CHECK(t.measured == doctest::Approx(1.5 * t.predicted));
        }
    const std::string text = report::validation_text(v, th);
    CHECK(count("\n" + text, "\nranks ") == 1);
    CHECK(text.find("ranks 0-5: PASS (6 ranks with one prediction; each row shows the rank furthest from it)") != std::string::npos);
    CHECK(text.find("step time") != std::string::npos);
    CHECK(report::validation_json(v, th).at("ranks")[0].at("time").at("step time").at("rank").as_int() == 5);

    // A rank whose op changes memory otherwise than planned is its own result.
    auto& ops3 = meas.timelines[3].ops;
    timeline::OpRecord& op = ops3[ops3.size() / 2 + 7];  // in the last step, the one compared
    REQUIRE(op.step == 1);
    op.net[MemCategory::activations] += 4096;
    const auto split = report::validate_runs(pred, meas, th);
    REQUIRE(split.ranks.size() == 2);
    CHECK(split.ranks[0].ranks == std::vector<std::int64_t>{0, 1, 2, 4, 5});
    CHECK(split.ranks[1].ranks == std::vector<std::int64_t>{3});
    CHECK(!split.ranks[1].divergence.empty());
}

namespace {

// Every rank's steps take `scales[s]` x the prediction's times (memory unchanged).
RunTimeline steps_scaled(const RunTimeline& pred, const std::vector<double>& scales) {
    RunTimeline run = pred;
    run.mode = "run";
    run.steps = static_cast<int>(scales.size());
    const timeline::RankTimeline base = pred.timelines.front();
    run.timelines.clear();
    for (std::int64_t r = 0; r < run.world_size; ++r) {
        timeline::RankTimeline tl;
        tl.rank = static_cast<int>(r);
        for (std::size_t s = 0; s < scales.size(); ++s) {
            for (auto op : base.ops) {
                op.step = static_cast<int>(s);
                op.t_start *= scales[s];
                op.t_end *= scales[s];
                tl.ops.push_back(op);
            }
            for (auto m : base.memory) {
                m.step = static_cast<int>(s);
                m.t *= scales[s];
                tl.memory.push_back(m);
            }
        }
        run.timelines.push_back(tl);
    }
    run.class_of_rank.assign(static_cast<std::size_t>(run.world_size), 0);
    return run;
}

const report::TimeCheck& step_check(const report::Validation& v) {
    for (const auto& t : v.ranks.at(0).times)
        if (t.what == "step time") return t;
    throw std::runtime_error("no step time check");
}

}  // namespace

TEST_CASE("validate judges time by the measured median over the steps, its bound widened by half their spread") {
    const RunTimeline pred = simulated();
    report::Thresholds th;
    th.time_pct = 5;
    // Step 0 warms up (not counted); steps 1-3 at 1.0, 1.3 and 1.1 x the prediction: median 1.1.
    const auto noisy = report::validate_runs(pred, steps_scaled(pred, {3.0, 1.0, 1.3, 1.1}), th);
    const report::TimeCheck& t = step_check(noisy);
    CHECK(t.steps == 3);
    CHECK(t.measured == doctest::Approx(1.1 * t.predicted));
    CHECK(t.measured_min == doctest::Approx(1.0 * t.predicted));
    CHECK(t.measured_max == doctest::Approx(1.3 * t.predicted));
    CHECK(t.error_pct == doctest::Approx(10));
    CHECK_FALSE(t.failed);  // 10% off, within 5% + half the 30% spread
    CHECK(report::validation_text(noisy, th).find("min - max, 3 step(s)") != std::string::npos);
    // The same median without spread: 10% is beyond 5%.
    const auto steady = report::validate_runs(pred, steps_scaled(pred, {3.0, 1.1, 1.1, 1.1}), th);
    CHECK(step_check(steady).failed);
    CHECK_FALSE(steady.passed);
    // One measured step: it is the median, with no spread.
    const auto one = report::validate_runs(pred, steps_scaled(pred, {1.02}), th);
    CHECK(step_check(one).steps == 1);
    CHECK(step_check(one).measured == doctest::Approx(1.02 * step_check(one).predicted));
    CHECK_FALSE(step_check(one).failed);
}

TEST_CASE("validate judges communication by its own tolerance when one is given") {
    const RunTimeline pred = simulated();
    // Every op 20% slower than predicted, steadily: step and communication both 20% off.
    const RunTimeline slow = steps_scaled(pred, {3.0, 1.2, 1.2, 1.2});
    auto check = [](const report::Validation& v, const std::string& what) {
        for (const auto& t : v.ranks.at(0).times)
            if (t.what == what) return t;
        throw std::runtime_error("no " + what + " check");
    };
    report::Thresholds th;
    th.time_pct = 25;
    REQUIRE(check(report::validate_runs(pred, slow, th), "comm time").predicted > 0);
    CHECK_FALSE(check(report::validate_runs(pred, slow, th), "comm time").failed);  // comm follows time: 20% < 25%
    th.comm_pct = 10;
    const auto v = report::validate_runs(pred, slow, th);
    CHECK(check(v, "comm time").failed);        // 20% > 10%
    CHECK_FALSE(check(v, "step time").failed);  // still 25%
    CHECK(report::validation_text(v, th).find("time 25%, communication 10% of the prediction") != std::string::npos);
    CHECK(report::validation_json(v, th).at("thresholds").at("comm_pct").as_number() == 10);
}

TEST_CASE("differences read as a percentage within a factor of two, as a ratio beyond") {
    CHECK(format_change(112.3, 100) == "+12.3%");
    CHECK(format_change(60, 100) == "-40.0%");
    CHECK(format_change(100, 100) == "+0.0%");
    CHECK(format_change(341, 100) == "x3.41");
    CHECK(format_change(33138.6, 100) == "x331");
    CHECK(format_change(1, 0) == "-");
    CHECK(format_change(0, 0) == "+0.0%");
}

TEST_CASE("chrome trace: processes per rank, threads per stream, memory counters, both files apart") {
    const LoadedRun meas = loaded(measured(2), "run.h5");
    const LoadedRun sim = loaded(simulated(), "sim.h5");
    std::ostringstream os;
    report::write_chrome_trace(os, meas, &sim);
    const io::Json trace = io::Json::parse(os.str());
    std::map<std::int64_t, std::string> processes;
    std::set<std::pair<std::int64_t, std::string>> threads;
    std::set<std::string> counters;
    std::map<std::int64_t, std::size_t> x_events;
    bool busbw = false;
    for (const auto& e : trace.at("traceEvents").as_array()) {
        const std::string ph = e.at("ph").as_string();
        const std::int64_t pid = e.at("pid").as_int();
        if (ph == "M" && e.at("name").as_string() == "process_name") processes[pid] = e.at("args").at("name").as_string();
        if (ph == "M" && e.at("name").as_string() == "thread_name") threads.insert({pid, e.at("args").at("name").as_string()});
        if (ph == "C")
            for (const auto& [k, v] : e.at("args").as_object()) counters.insert(e.at("name").as_string() + " " + k);
        if (ph == "X") {
            ++x_events[pid];
            CHECK(e.at("dur").as_number() >= 0);
            busbw = busbw || e.at("args").contains("busbw_GBps");
        }
    }
    CHECK(processes.size() == 3);
    CHECK(processes.at(0) == "rank 0 (measured)");
    CHECK(processes.at(1) == "rank 1 (measured)");
    CHECK(processes.at(report::kTracePidSimulated) == "ranks 0-1 (simulated, one shared timeline)");
    const std::size_t ops = sim.run.rank(0).ops.size();
    CHECK(x_events.at(0) == 2 * ops);  // both measured steps
    CHECK(x_events.at(report::kTracePidSimulated) == ops);
    CHECK(threads.count({0, "compute"}) == 1);
    CHECK(threads.count({0, "comm"}) == 1);
    CHECK(threads.count({report::kTracePidSimulated, "comm"}) == 1);
    CHECK(counters.count("memory MiB params") == 1);
    CHECK(counters.count("memory MiB activations") == 1);
    CHECK(busbw);

    // Two files of the same kind: the second moves up and names its file.
    std::ostringstream two;
    report::write_chrome_trace(two, sim, &sim);
    const io::Json t2 = io::Json::parse(two.str());
    bool second = false;
    for (const auto& e : t2.at("traceEvents").as_array())
        if (e.at("ph").as_string() == "M" && e.at("name").as_string() == "process_name" &&
            e.at("pid").as_int() == report::kTracePidSimulated + report::kTracePidSecondFile)
            second = e.at("args").at("name").as_string().find("sim.h5") != std::string::npos;
    CHECK(second);
}

TEST_CASE("HTML: self-contained, charts per rank panel, overlay, configuration, folding") {
    const LoadedRun meas = loaded(measured(3), "run.h5");
    const LoadedRun sim = loaded(simulated(), "sim.h5");
    const std::string html = report::render_html(meas, &sim);
    CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
    CHECK(count(html, "<section class=\"panel\"") == 2);  // two measured ranks, each its own timeline
    CHECK(count(html, "data-chart=\"memory\"") == 2);
    CHECK(count(html, "<rect class=\"op\"") > 10);
    CHECK(count(html, "<rect class=\"op cmp\"") > 10);
    CHECK(count(html, "class=\"cmp cmp-line\"") == 2);
    CHECK(count(html, "<path class=\"mem\"") >= 4);
    // 650 KiB of an 8 GiB "device": the axis ends at the peak and names the capacity instead.
    CHECK(count(html, "class=\"capacity\"") == 0);
    CHECK(count(html, "class=\"capacity-off\"") == 2);
    CHECK(html.find("step 2 of the recorded steps 0-2 is drawn (the last") != std::string::npos);
    CHECK(html.find("[effective: every key") == std::string::npos);
    CHECK(html.find("job (effective: every key, defaults included)") != std::string::npos);
    CHECK(html.find("fp32_tflops = 0.096") != std::string::npos);
    CHECK(html.find("data-report-ready") != std::string::npos);
    // Nothing to fetch: no external script, stylesheet, image or font.
    CHECK(!std::regex_search(html, std::regex(R"((src|href)\s*=\s*["']?(https?:)?//)")));
    CHECK(html.find("@import") == std::string::npos);
    CHECK(html.find("<script src") == std::string::npos);

    // A simulation's ranks share one timeline: one panel names them all.
    const std::string one = report::render_html(sim);
    CHECK(count(one, "<section class=\"panel\"") == 1);
    CHECK(one.find("ranks 0-1") != std::string::npos);
    CHECK(one.find("<rect class=\"op cmp\"") == std::string::npos);

    // The seed scenario fills half its GPUs: the capacity line is drawn, on the same axis.
    const std::string seed = report::render_html(loaded(simulated(model::kDefaultJob), "seed.h5"));
    CHECK(count(seed, "<section class=\"panel\"") == 1);
    CHECK(seed.find("ranks 0-5") != std::string::npos);
    CHECK(count(seed, "class=\"capacity\"") == 1);
    CHECK(seed.find("capacity 40.00 GiB") != std::string::npos);
}

TEST_CASE("HTML: the peak dot sits on the total's outline; steps of very different lengths get an axis each") {
    const LoadedRun sim = loaded(simulated(), "sim.h5");
    const std::string one = report::render_html(sim);
    std::smatch dot, total;
    REQUIRE(std::regex_search(one, dot, std::regex("<circle class=\"peak\" cx=\"([0-9.]+)\" cy=\"([0-9.]+)\"")));
    REQUIRE(std::regex_search(one, total, std::regex("<path class=\"mem-total\" d=\"([^\"]+)\"")));
    // The outline passes through the dot, and the dot is drawn after everything else of its chart.
    CHECK(total[1].str().find("L" + dot[1].str() + " " + dot[2].str()) != std::string::npos);
    CHECK(one.find("</circle></svg>") != std::string::npos);
    CHECK(one.find("data-axis=\"compare\"") == std::string::npos);

    // The same file 1.1x slower (measured, last step): one shared axis.
    const LoadedRun near = loaded(measured(3), "run.h5");
    CHECK(report::render_html(near, &sim).find("data-axis=\"compare\"") == std::string::npos);
    // 14x slower: the compared file gets its own axis, and the page says why.
    RunTimeline slow = simulated("tiny-gpt2-cpu", {"topology.gpu.compute_efficiency=0.02"});
    const LoadedRun far = loaded(slow, "slow.h5");
    const std::string two = report::render_html(far, &sim);
    CHECK(count(two, "data-axis=\"compare\"") == 2);  // memory and ops chart
    CHECK(two.find("on its own time axis (labels along the top of each chart)") != std::string::npos);
    // Both span the chart: the compared ops reach past 90% of its width.
    double cmp_end = 0;
    const std::regex cmp_op("<rect class=\"op cmp\" x=\"([0-9.]+)\" y=\"[0-9.]+\" width=\"([0-9.]+)\"");
    for (std::sregex_iterator it(two.begin(), two.end(), cmp_op), end; it != end; ++it)
        cmp_end = std::max(cmp_end, std::stod((*it)[1]) + std::stod((*it)[2]));
    CHECK((cmp_end - 96) / (report::kChartWidth - 96 - 24) > 0.9);
}

TEST_CASE("HTML: many distinct ranks are folded, then capped, and the page says so") {
    RunTimeline run = measured(1);
    // 40 ranks with their own timelines, two memory figures among them.
    const auto base = run.timelines.front();
    run.world_size = 40;
    run.timelines.clear();
    run.class_of_rank.clear();
    for (int r = 0; r < 40; ++r) {
        auto tl = base;
        tl.rank = r;
        for (auto& op : tl.ops) op.t_end += 1e-6 * r;
        if (r % 2)
            for (auto& m : tl.memory) m.bytes[MemCategory::temporaries] += 4096;
        run.timelines.push_back(tl);
        run.class_of_rank.push_back(r);
    }
    const std::string html = report::render_html(loaded(run, "run.h5"));
    CHECK(count(html, "<section class=\"panel\"") == 2);
    CHECK(html.find("40 distinct timelines") != std::string::npos);
    report::HtmlOptions opt;
    opt.max_panels = 1;
    const std::string capped = report::render_html(loaded(run, "run.h5"), nullptr, opt);
    CHECK(count(capped, "<section class=\"panel\"") == 1);
    CHECK(capped.find("the first 1 of 2 groups are drawn") != std::string::npos);
}

TEST_CASE("thinning keeps peaks and caps what is drawn") {
    std::vector<timeline::MemorySample> samples;
    for (int i = 0; i < 10000; ++i) {
        timeline::MemorySample m;
        m.t = i * 1e-4;
        m.bytes[MemCategory::activations] = (i == 4321) ? 1 << 30 : i % 97;
        samples.push_back(m);
    }
    const auto kept = report::thin_samples(samples, 1.0, 500);
    CHECK(kept.size() <= 500);
    CHECK(kept.size() > 200);
    bool peak = false;
    for (const auto& m : kept) peak = peak || m.bytes[MemCategory::activations] == (1 << 30);
    CHECK(peak);
    CHECK(kept.back().t == samples.back().t);

    std::vector<timeline::OpRecord> ops(5000);
    std::vector<const timeline::OpRecord*> ptrs;
    for (int i = 0; i < 5000; ++i) {
        ops[static_cast<std::size_t>(i)].t_start = i * 1e-5;
        ops[static_cast<std::size_t>(i)].t_end = i * 1e-5 + (i == 2500 ? 0.2 : 5e-6);  // one long op
        ptrs.push_back(&ops[static_cast<std::size_t>(i)]);
    }
    const auto blocks = report::merge_ops(ptrs, 1e-3, 100);
    CHECK(blocks.size() <= 100);
    std::size_t covered = 0;
    bool long_alone = false;
    for (const auto& b : blocks) {
        covered += b.ops.size();
        long_alone = long_alone || (b.ops.size() == 1 && b.ops.front()->duration() > 0.1);
    }
    CHECK(covered == ops.size());
    CHECK(long_alone);
    CHECK(report::merge_ops(ptrs, 1e-7, 100000).size() == ops.size());  // nothing narrower than a pixel
}

TEST_CASE("shardsim report on files: text, --json, --step, --html and --chrome-trace written") {
    test::TempDir dir;
    const std::string run_h5 = dir.path("run.h5"), sim_h5 = dir.path("sim.h5");
    io::write_run_file(run_h5, measured(2));
    io::write_run_file(sim_h5, simulated());
    const std::string bin = test::shardsim_binary() + " report ";

    const auto text = test::run_command(bin + run_h5 + " --compare " + sim_h5 + " --html " + dir.path("r.html") +
                                        " --chrome-trace " + dir.path("t.json"));
    CHECK_MESSAGE(text.exit_code == 0, text.output);
    CHECK(text.output.find("showing step 1 of steps 0-1") != std::string::npos);
    CHECK(text.output.find("HTML report written to " + dir.path("r.html")) != std::string::npos);
    CHECK(text.output.find("Chrome trace written to " + dir.path("t.json")) != std::string::npos);
    CHECK(std::filesystem::file_size(dir.path("r.html")) > 1000);
    std::ifstream trace(dir.path("t.json"));
    const std::string trace_text((std::istreambuf_iterator<char>(trace)), std::istreambuf_iterator<char>());
    CHECK_NOTHROW(io::Json::parse(trace_text));

    const auto json = test::run_command(bin + run_h5 + " --step 0 --json");
    REQUIRE_MESSAGE(json.exit_code == 0, json.output);
    const io::Json j = io::Json::parse(json.output);
    CHECK(j.at("step").as_int() == 0);
    CHECK(j.at("steps_in_file").size() == 2);
    CHECK(j.at("ranks").size() == 1);

    const auto bad = test::run_command(bin + run_h5 + " --step 5");
    CHECK(bad.exit_code == kExitBadInput);
    CHECK(bad.output.find("step 5 is not in the file: it recorded step(s) 0-1") != std::string::npos);
    const auto none = test::run_command(bin);
    CHECK(none.exit_code == kExitBadInput);
    CHECK(none.output.find("no timeline file given") != std::string::npos);
}
