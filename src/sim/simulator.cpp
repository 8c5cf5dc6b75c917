#include "shardsim/sim/simulator.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <cstdio>

#include "shardsim/model/flops.hpp"
#include "shardsim/plan/buffers.hpp"
#include "shardsim/sim/allocator.hpp"
#include "shardsim/sim/cost.hpp"

namespace shardsim::sim {

namespace {
constexpr const char* kWhat = "the simulated memory of one category";
}  // namespace

std::vector<timeline::MemorySample> replay_memory(const plan::Schedule& schedule, const std::vector<timeline::OpRecord>& ops,
                                                  const MemoryByCategory& initial) {
    struct Event {
        double t;
        // At one instant: ends of ops that took time (memory freed is reusable at once), then
        // starts in schedule order, an instantaneous op ending right after its own start (so
        // what a synchronisation point frees is free for the op that waited on it).
        int order;
        int op;
        plan::Phase phase;
    };
    std::vector<Event> events;
    events.reserve(ops.size() * 2);
    for (const auto& r : ops) {
        events.push_back({r.t_start, 1, r.op_id, plan::Phase::start});
        events.push_back({r.t_end, r.t_end > r.t_start ? 0 : 1, r.op_id, plan::Phase::end});
    }
    std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
        if (a.t != b.t) return a.t < b.t;
        if (a.order != b.order) return a.order < b.order;
        if (a.op != b.op) return a.op < b.op;
        return a.phase == plan::Phase::start && b.phase == plan::Phase::end;
    });
    std::vector<timeline::MemorySample> samples;
    MemoryByCategory cur = initial;
    samples.push_back({ops.empty() ? 0.0 : ops.front().t_start, -1, 0, cur});
    for (const auto& e : events) {
        const auto& op = schedule.ops[static_cast<std::size_t>(e.op)];
        bool any_alloc = false, any_free = false;
        for (const auto& l : op.ledger)
            if (l.phase == e.phase && l.bytes > 0) cur[l.category] = checked_add(cur[l.category], l.bytes, kWhat), any_alloc = true;
        if (any_alloc) samples.push_back({e.t, e.op, 0, cur});
        for (const auto& l : op.ledger)
            if (l.phase == e.phase && l.bytes < 0) cur[l.category] = checked_add(cur[l.category], l.bytes, kWhat), any_free = true;
        if (any_free) samples.push_back({e.t, e.op, 0, cur});
    }
    return samples;
}

// [Note: waiting for the last rank] A rank's compute ops take a little more or less time from one
// run to the next (compute.time_cv: the OS, other tenants of the host, clocks), so the ranks of a
// group reach a collective at different moments and the collective ends after the last one
// arrives: each rank's collective lasts its transfer plus the time it waited. Ops' spreads are
// independent, so a rank's arrival spreads by time_cv x sqrt(sum of T^2) over the compute since
// its previous collective (which synchronised it with its peers), and the expected wait of a rank,
// E[max of n arrivals] - E[its own], is that spread times the expected maximum of n standard
// normal variables (0.56 for 2 ranks, 1.27 for 6, 2.5 for 64). The simulator adds it to each
// collective; identical ranks (time_cv = 0, the default) never wait.
double expected_max_of_normals(std::int64_t n) {
    if (n <= 1) return 0;
    // E[max] = integral of x n phi(x) Phi(x)^(n-1) dx, by the trapezoid rule over [-10, 10].
    constexpr int kSteps = 4000;
    const double lo = -10, hi = 10, h = (hi - lo) / kSteps;
    double sum = 0;
    for (int i = 0; i <= kSteps; ++i) {
        const double x = lo + h * i;
        const double phi = std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
        const double cdf = 0.5 * std::erfc(-x / std::sqrt(2.0));
        const double f = x * static_cast<double>(n) * phi * std::pow(cdf, static_cast<double>(n - 1));
        sum += (i == 0 || i == kSteps) ? f / 2 : f;
    }
    return sum * h;
}

namespace {

// The stream an op waits its turn on. A CPU rank runs compute and host work on one thread, and
// collectives and copies beside it only when it has a core for them ([Note: a CPU host's cores],
// config/topology.hpp).
plan::OpStream lane_of(const config::TopologyConfig& topo, plan::OpStream s) {
    if (!topo.gpu.is_cpu) return s;
    if (s == plan::OpStream::host) return plan::OpStream::compute;
    if (!topo.cpu_host().comm_thread && (s == plan::OpStream::comm || s == plan::OpStream::copy)) return plan::OpStream::compute;
    return s;
}

// The spread of this rank's arrival at its next collective, and the wait it adds there.
class LastRankWait {
public:
    explicit LastRankWait(double cv) : cv_(cv) {}
    // The op's length with the wait for the last rank, when it is a collective.
    double after(const plan::Op& op, double length) {
        if (cv_ <= 0) return length;
        const bool compute = op.kind == plan::OpKind::forward || op.kind == plan::OpKind::backward ||
                             op.kind == plan::OpKind::recompute || op.kind == plan::OpKind::optimizer_step;
        if (compute) spread_sq_ += (cv_ * length) * (cv_ * length);
        if (!op.collective) return length;
        auto it = max_of_normals_.find(op.collective->ranks);
        if (it == max_of_normals_.end())
            it = max_of_normals_.emplace(op.collective->ranks, expected_max_of_normals(op.collective->ranks)).first;
        const double waited = it->second * std::sqrt(spread_sq_);
        spread_sq_ = 0;  // the collective synchronised the ranks
        return length + waited;
    }

private:
    double cv_;
    double spread_sq_ = 0;
    std::map<std::int64_t, double> max_of_normals_;
};

}  // namespace

timeline::RankTimeline simulate_rank(const plan::ShardingPlan& plan, const plan::Schedule& schedule) {
    const CostModel cost(plan);
    timeline::RankTimeline tl;
    tl.device = plan.scenario().topology.gpu.name + " (simulated)";
    std::array<double, plan::kOpStreamCount> ready{};
    std::vector<double> end(schedule.ops.size(), 0.0);
    // The node's path to host memory: offload copies and pcie-no-p2p collectives take turns on it
    // (a work-conserving stand-in for sharing its bandwidth: together they take as long as their
    // sum, whichever order they go in).
    double host_path_free = 0;
    const auto& topo = plan.scenario().topology;
    LastRankWait wait(topo.compute.time_cv);
    tl.ops.reserve(schedule.ops.size());
    for (const auto& op : schedule.ops) {
        const auto stream = static_cast<std::size_t>(lane_of(topo, op.stream));
        double start = ready[stream];
        for (int d : op.deps) start = std::max(start, end[static_cast<std::size_t>(d)]);
        const bool host_path = cost.uses_host_path(op);
        if (host_path) start = std::max(start, host_path_free);
        const double length = wait.after(op, cost.op_time(op));
        const double t = start + length;
        if (host_path) host_path_free = t;
        end[static_cast<std::size_t>(op.id)] = t;
        ready[stream] = t;
        const timeline::OpRecord r = timeline::planned_record(op, start, t);
        tl.ops.push_back(r);
    }
    tl.memory = replay_memory(schedule, tl.ops, schedule.initial);
    // The caching allocator (sim/allocator.hpp): what it reserves beyond the bytes in use at the
    // peak stays reserved, so the samples carry it as runtime overhead from the start.
    const auto& gpu = plan.scenario().topology.gpu;
    const std::int64_t runtime = schedule.initial[MemCategory::runtime_overhead];
    std::int64_t in_use = 0, transient = 0;
    const std::int64_t base = schedule.initial.device_total();
    for (const auto& m : tl.memory) {
        in_use = std::max(in_use, m.bytes.device_total() - m.bytes[MemCategory::runtime_overhead]);
        transient = std::max(transient, m.bytes.device_total() - base);
    }
    std::int64_t slack = 0;
    if (!gpu.is_cpu) {
        const AllocatorPeaks a = replay_allocator(plan, schedule, tl.ops, gpu.memory_bytes - runtime);
        tl.allocated_peak_bytes = a.allocated;
        tl.reserved_peak_bytes = a.reserved;
        slack = std::max<std::int64_t>(0, a.reserved - in_use);
    }
    // An extra factor beyond the allocator's rules, when a topology asks for one.
    slack += static_cast<std::int64_t>(gpu.allocator_fragmentation * static_cast<double>(transient));
    if (slack > 0)
        for (auto& m : tl.memory) m.bytes[MemCategory::runtime_overhead] += slack;
    return tl;
}

namespace {

std::string exact(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

}  // namespace

// What MFU, HFU and tokens/s need beside a step time (report/summary.hpp reads them): the model
// FLOPs of one step per rank by the 6N + attention rule, the tokens of one step over every rank,
// and one GPU's dense peak in the compute dtype. A measured run keeps the prediction's.
void throughput_attributes(const plan::ShardingPlan& plan, timeline::RunTimeline& run) {
    const auto& s = plan.scenario();
    const model::BatchShape shape = plan.batch_shape();
    const double accum = static_cast<double>(s.job.grad_accum);
    const double sequences = static_cast<double>(shape.batch) * accum * static_cast<double>(plan.groups().world());
    run.attributes["model_flops_per_step"] = exact(model::model_flops(s.model, plan.units(), shape) * accum);
    run.attributes["tokens_per_step"] = exact(sequences * static_cast<double>(shape.enc_len + shape.dec_len));
    run.attributes["peak_flops_per_s"] = exact(s.topology.gpu.peak_tflops(plan.precision().params) * 1e12);
}

timeline::RunTimeline simulate(const plan::ShardingPlan& plan, const plan::Schedule& schedule) {
    const auto& s = plan.scenario();
    timeline::RunTimeline run;
    run.mode = "simulate";
    run.backend = "analytical";
    run.job_text = s.job.source.text;
    run.topology_text = s.topology.source.text;
    run.job_name = s.job.name;
    run.world_size = plan.groups().world();
    run.gpu_memory_bytes = s.topology.gpu.memory_bytes;
    run.host_memory_bytes = s.topology.host.memory_bytes;
    run.host_process_bytes = s.topology.host.process_bytes;
    run.host_pinned_slack_bytes = plan::pinned_rounding_bytes(plan);
    run.reported_host_bytes = static_cast<std::int64_t>(s.job.reported_host_gb * 1e9);
    run.host_is_device = s.topology.gpu.is_cpu ? 1 : 0;
    run.gpus_per_node = plan.groups().gpus_per_node();
    run.steps = 1;
    run.param_count = plan.param_count().count();
    run.trainable_param_count = plan.trainable_count().count();
    for (const auto& u : plan.units()) run.unit_names.push_back(u.name);
    run.attributes["effective_job"] = s.job.effective_ini();
    run.attributes["effective_topology"] = s.topology.effective_ini();
    throughput_attributes(plan, run);
    timeline::describe_buffers(plan, schedule, run.buffers, run.op_buffers);
    run.timelines.push_back(simulate_rank(plan, schedule));
    run.class_of_rank.assign(static_cast<std::size_t>(run.world_size), 0);
    return run;
}

}  // namespace shardsim::sim
