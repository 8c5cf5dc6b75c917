// The plan search's last stage ([Note: plan search]): the best setups simulated in full through
// sim::predict and read through report::summary_json, as `shardsim simulate` reads them.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <thread>
#include <tuple>

#include "search_internal.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/plan/bound.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/sim/predict.hpp"
#include "shardsim/study/estimate.hpp"

namespace shardsim::study {

namespace {

std::int64_t json_int(const io::Json& j, const char* key) { return j.contains(key) ? j.at(key).as_int() : 0; }
double json_number(const io::Json& j, const char* key) { return j.contains(key) ? j.at(key).as_number() : 0.0; }

std::string oom_reason(const Confirmed& c) {
    const std::int64_t device = c.peak_bytes - c.gpu_memory_bytes;
    const std::int64_t host = c.host_memory_bytes > 0 ? c.host_peak_bytes_per_node - c.host_memory_bytes : 0;
    if (device > 0) return "OOM on device by " + format_gib(static_cast<double>(device), 2) + " GiB";
    if (host > 0) return "OOM on host by " + format_gib(static_cast<double>(host), 2) + " GiB per node";
    return "";
}

}  // namespace

Confirmed simulate_sets(const Space& space, const Setup& x, const std::vector<std::string>& sets, std::int64_t tokens) {
    Confirmed c;
    c.setup = x;
    sim::Prediction p;
    try {
        p = sim::predict(model::load_scenario_text(space.base_path, space.base_text, space.base_dir, sets));
    } catch (const InputError& e) {
        c.reason = "invalid: " + e.problems().front();
        return c;
    }
    const io::Json s = report::summary_json(p.run);
    c.fits = s.at("fits").as_bool();
    c.peak_bytes = p.device_peak_bytes();
    c.host_peak_bytes_per_node = json_int(s, "host_peak_bytes_per_node");
    c.gpu_memory_bytes = json_int(s, "gpu_memory_bytes");
    c.host_memory_bytes = json_int(s, "host_memory_bytes");
    c.step_time_s = json_number(s, "step_time_s");
    c.compute_time_s = json_number(s, "compute_time_s");
    c.comm_time_s = json_number(s, "comm_time_s");
    c.exposed_comm_s = json_number(s, "exposed_comm_s");
    c.tokens_per_s = c.step_time_s > 0 ? static_cast<double>(tokens) / c.step_time_s : 0;
    c.mfu = json_number(s, "mfu");  // as the summary computes it (report/summary.cpp)
    const double price = space.node_types[static_cast<std::size_t>(x.node_type)].usd_per_gpu_hour;
    if (price > 0 && c.tokens_per_s > 0) c.cost_per_mtok = price * x.gpus / 3600.0 / c.tokens_per_s * 1e6;
    if (!c.fits) c.reason = oom_reason(c);
    const io::Json& ranks = s.at("ranks");
    for (std::size_t i = 0; i < ranks.size(); ++i)
        if (ranks[i].at("peak_bytes").as_int() == c.peak_bytes) {
            c.peak_by_category = ranks[i].at("peak_by_category");
            break;
        }
    if (s.contains("comm_bytes_per_rank")) c.comm_bytes = s.at("comm_bytes_per_rank");
    return c;
}

namespace {

// Long accumulations simulate in time proportional to their micro-batches, and every micro-batch
// after the first few repeats the one before: such a setup is simulated at kExactAccum / 2 and
// kExactAccum micro-batches and its times extended linearly to its own count (memory from the
// longer of the two). The ranking says so; the winner is simulated exactly (run_search).
constexpr std::int32_t kExactAccum = 16;

Confirmed extrapolated(const Space& space, const Setup& x, std::int64_t tokens) {
    Setup a = x, b = x;
    a.grad_accum = kExactAccum / 2;
    b.grad_accum = kExactAccum;
    const Confirmed ca = simulate_sets(space, a, setup_sets(space, a), tokens);
    Confirmed c = simulate_sets(space, b, setup_sets(space, b), tokens);
    c.setup = x;
    if (!ca.reason.empty() && ca.reason.rfind("invalid", 0) == 0) return c;
    const double k = static_cast<double>(x.grad_accum - b.grad_accum) / static_cast<double>(b.grad_accum - a.grad_accum);
    auto extend = [&](double vb, double va) { return vb + k * (vb - va); };
    const double step_b = c.step_time_s;
    c.step_time_s = extend(c.step_time_s, ca.step_time_s);
    c.compute_time_s = extend(c.compute_time_s, ca.compute_time_s);
    c.comm_time_s = extend(c.comm_time_s, ca.comm_time_s);
    c.exposed_comm_s = extend(c.exposed_comm_s, ca.exposed_comm_s);
    c.peak_bytes = std::max(c.peak_bytes, ca.peak_bytes);
    c.host_peak_bytes_per_node = std::max(c.host_peak_bytes_per_node, ca.host_peak_bytes_per_node);
    // Model FLOPs grow with the micro-batches, MFU by their ratio to the step.
    c.mfu = c.step_time_s > 0 ? c.mfu * step_b / static_cast<double>(b.grad_accum) * static_cast<double>(x.grad_accum) / c.step_time_s : 0;
    c.tokens_per_s = c.step_time_s > 0 ? static_cast<double>(tokens) / c.step_time_s : 0;
    const double price = space.node_types[static_cast<std::size_t>(x.node_type)].usd_per_gpu_hour;
    c.cost_per_mtok = price > 0 && c.tokens_per_s > 0 ? price * x.gpus / 3600.0 / c.tokens_per_s * 1e6 : 0;
    c.extrapolated = true;
    return c;
}

Confirmed simulate_one(const Space& space, const Setup& x, std::int64_t tokens) {
    if (x.grad_accum > kExactAccum) return extrapolated(space, x, tokens);
    return simulate_sets(space, x, setup_sets(space, x), tokens);
}

}  // namespace

std::vector<Confirmed> confirm(const Space& space, const std::vector<Setup>& setups, int threads, const Progress& progress) {
    std::vector<Confirmed> out(setups.size());
    const std::int64_t tokens = tokens_per_step(space);
    const auto total = static_cast<std::int64_t>(setups.size());
    std::atomic<std::size_t> next{0};
    std::atomic<std::int64_t> done{0};
    auto worker = [&](bool reports) {
        for (std::size_t i = next++; i < setups.size(); i = next++) {
            out[i] = simulate_one(space, setups[i], tokens);
            ++done;
            if (reports && progress) progress("simulate", done.load(), total);
        }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < std::min<int>(thread_count(threads), static_cast<int>(setups.size())); ++t) pool.emplace_back(worker, false);
    worker(true);
    for (auto& t : pool) t.join();
    if (progress) progress("simulate", total, total);
    return out;
}

bool better(const Space& space, const Confirmed& a, const Confirmed& b) {
    const double sa = score_of(space, a.setup, a.tokens_per_s), sb = score_of(space, b.setup, b.tokens_per_s);
    if (sa != sb) return sa < sb;
    // Ties (equal simulations): the setup closer to the defaults first, then the leaner.
    if (a.setup.knobs != b.setup.knobs) return a.setup.knobs < b.setup.knobs;
    if (a.peak_bytes != b.peak_bytes) return a.peak_bytes < b.peak_bytes;
    // Then a fixed order, so that threads finishing in another order give the same answer.
    const Setup &x = a.setup, &y = b.setup;
    return std::tie(x.node_type, x.gpus, x.strategy, x.shard_size, x.secondary, x.micro_batch, x.checkpointing, x.offload, x.attention,
                    x.loss, x.precision, x.lora) < std::tie(y.node_type, y.gpus, y.strategy, y.shard_size, y.secondary, y.micro_batch,
                                                            y.checkpointing, y.offload, y.attention, y.loss, y.precision, y.lora);
}

}  // namespace shardsim::study
