// The plan search's fast stages: shared tables, the step estimate and a memory guess
// (study/estimate.hpp).
#include "shardsim/study/estimate.hpp"

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "shardsim/core/format.hpp"
#include "shardsim/model/flops.hpp"
#include "shardsim/plan/groups.hpp"
#include "shardsim/sim/cost.hpp"

namespace shardsim::study {

namespace {

std::vector<std::int64_t> divisors(std::int64_t n) {
    std::vector<std::int64_t> d;
    for (std::int64_t k = 1; k <= n; ++k)
        if (n % k == 0) d.push_back(k);
    return d;
}

MicroBatchWork compute_work(const plan::BoundModel& m, model::Scenario s, const WorkKey& k) {
    s.job.micro_batch = k.micro_batch;
    s.job.activation_checkpointing = k.checkpointing;
    s.job.attention = k.attention;
    s.job.loss = k.loss;
    const plan::ActivationInputs in = m.activation_inputs(s, k.dtype);
    MicroBatchWork w;
    w.activations = plan::activation_sums(in);
    for (int c = 0; c < static_cast<int>(m.program().size()); ++c) {
        const plan::CallActivations a = plan::call_activations(in, c);
        const model::CallFlops f = model::call_flops(m.spec(), m.units(), m.program()[static_cast<std::size_t>(c)], in.shape);
        w.forward_flops += f.forward;
        w.backward_flops += f.backward;
        const std::int64_t next = c + 1 < static_cast<int>(m.program().size()) ? plan::call_activations(in, c + 1).input_bytes() : 0;
        w.forward_bytes += static_cast<double>(a.forward_written(next));
        w.backward_bytes += 2.0 * static_cast<double>(a.saved_bytes());  // read what forward wrote, write gradients
        if (a.checkpointed) {
            w.recompute_flops += plan::recompute_work(in, c, a).flops();
            w.recompute_bytes += static_cast<double>(a.recompute_bytes());
        }
    }
    w.model_flops = w.forward_flops + w.backward_flops;
    return w;
}

}  // namespace

SearchTables::SearchTables(const Space& space, int threads) {
    model::LoraSpec base{space.base_job.lora_rank, space.base_job.lora_targets};
    models_[0] = std::make_unique<plan::BoundModel>(space.model, base);
    if (space.loras.size() > 1)
        models_[1] = std::make_unique<plan::BoundModel>(space.model, model::LoraSpec{space.lora_rank, space.lora_target_list});
    std::set<std::int64_t> shards, micro;
    for (const auto& n : space.node_types)
        for (auto g : n.counts) {
            for (auto d : divisors(g)) shards.insert(d);
            if (space.global_batch % g == 0)
                for (auto mb : divisors(space.global_batch / g)) micro.insert(mb);
        }
    if (space.fixed_micro_batch) micro = {*space.fixed_micro_batch};
    for (auto& m : models_)
        if (m)
            for (auto d : shards) m->prepare(d);
    std::vector<WorkKey> keys;
    for (auto mb : micro)
        for (const auto ck : space.checkpointing)
            for (auto att : space.attentions)
                for (auto loss : space.losses)
                    for (const auto& p : space.precisions)
                        for (bool lora : space.loras) keys.push_back({static_cast<std::int32_t>(mb), ck, att, loss, p.params, lora});
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end(), [](const WorkKey& a, const WorkKey& b) { return !(a < b) && !(b < a); }),
               keys.end());
    std::vector<MicroBatchWork> out(keys.size());
    const model::Scenario s = base_scenario(space, 0);
    std::atomic<std::size_t> next{0};
    auto worker = [&] {
        for (std::size_t i = next++; i < keys.size(); i = next++) out[i] = compute_work(model(keys[i].lora), s, keys[i]);
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < std::max(1, threads); ++t) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
    for (std::size_t i = 0; i < keys.size(); ++i) work_[keys[i]] = out[i];
}

namespace {

using plan::CollectiveKind;

double collective(const sim::LinkModel& l, CollectiveKind k, Bytes size, const plan::GroupSpan& g) {
    return sim::collective_time(l, k, size.count(), g, plan::executor_in_place(k));
}

// Reductions of gradients as the strategy makes them: reduce-scatters into shards, all-reduces of
// unsharded gradients per unit (FSDP no-shard) or in DDP's buckets, and HSDP's replica all-reduce.
void reductions(const plan::BoundModel& m, const model::Scenario& s, const plan::ShardingRules& r, const plan::Groups& g,
                StepComm& out) {
    const sim::LinkModel l = sim::LinkModel::from(s.topology);
    const auto& t = *r.traits;
    std::int64_t ddp_bytes = 0;
    for (const auto& u : m.units()) {
        const plan::UnitSizes z = m.sizes(u.index, r.param_shards(), r.state_shards());
        if (z.state_real.count() == 0) continue;
        if (r.state_shards() > 1 && (r.shards_grads() || t.reduction == plan::GradReduction::reduce_scatter_per_unit))
            out.reduce += collective(l, CollectiveKind::reduce_scatter, r.reduce_input_bytes(z), g.span(plan::kShardGroup));
        else if (t.reduction == plan::GradReduction::all_reduce_per_unit)
            out.reduce += collective(l, CollectiveKind::all_reduce, r.reduce_input_bytes(z), g.span(plan::kWorldGroup));
        else if (t.reduction == plan::GradReduction::all_reduce_buckets)
            ddp_bytes += bytes_of(z.state_real, r.precision.reduce).count();
        if (t.hybrid && g.replicate_size() > 1)
            out.replicate += collective(l, CollectiveKind::all_reduce, r.reduce_output_bytes(z), g.span(plan::kReplicateGroup));
        if (t.gather_after_step && r.state_shards() > 1)
            out.post_gather += collective(l, CollectiveKind::all_gather, bytes_of(z.state_gathered, r.precision.params),
                                          g.span(plan::kShardGroup));
    }
    if (ddp_bytes > 0 && g.world() > 1) {
        const std::int64_t cap = s.job.bucket_mib > 0 ? static_cast<std::int64_t>(s.job.bucket_mib * kMiB) : 25 * kMiB;
        const std::int64_t n = std::max<std::int64_t>(1, ceil_div(ddp_bytes, cap));
        out.reduce += static_cast<double>(n) * sim::collective_time(l, CollectiveKind::all_reduce, ddp_bytes / n, g.span(plan::kWorldGroup),
                                                                  plan::executor_in_place(CollectiveKind::all_reduce));
    }
}

// Gathers, copies and the optimizer.
void gathers_and_host(const plan::BoundModel& m, const model::Scenario& s, const plan::ShardingRules& r, const plan::Groups& g,
                      StepComm& out) {
    const sim::LinkModel l = sim::LinkModel::from(s.topology);
    const sim::ComputeModel c = sim::ComputeModel::from(s.topology, r.precision.params);
    const bool gathers = r.gathers_params() && r.param_shards() > 1;
    const bool hpz = g.secondary_size() > 1;
    for (const auto& u : m.units()) {
        const plan::UnitSizes z = m.sizes(u.index, r.param_shards(), r.state_shards());
        if (gathers) {
            const double ag = collective(l, CollectiveKind::all_gather, r.gather_output_bytes(z), g.span(plan::kShardGroup));
            out.gather_forward += ag;
            if (r.traits->reshard_after_forward) {
                const plan::UnitSizes sec = hpz ? m.sizes(u.index, g.secondary_size(), r.state_shards()) : z;
                out.gather_backward += hpz ? collective(l, CollectiveKind::all_gather, bytes_of(sec.param_gathered, r.precision.params),
                                                        g.span(plan::kSecondaryGroup))
                                           : ag;
            }
        }
        if (r.offload_params) out.upload += sim::copy_seconds(s.topology, r.param_shard_bytes(z).count());
        if (r.offload_optimizer && z.state_real.count() > 0)
            out.offload += sim::copy_seconds(s.topology, r.reduce_output_bytes(z).count() + r.state_update_bytes(z).count());
        out.optimizer += sim::optimizer_seconds(s.topology, c, r.offload_optimizer, z.state_shard.count(), r.optimizer_traffic_bytes(z).count());
    }
}

}  // namespace

StepComm step_comm(const plan::BoundModel& m, const model::Scenario& s, const plan::ShardingRules& r) {
    StepComm out;
    out.units = static_cast<int>(m.units().size());
    const plan::Groups g(r.dims);
    reductions(m, s, r, g, out);
    gathers_and_host(m, s, r, g, out);
    return out;
}

StepEstimate estimate_step(const model::Scenario& s, const plan::ShardingRules& r, const StepComm& c, const MicroBatchWork& w) {
    const auto& j = s.job;
    const auto& t = *r.traits;
    const double M = static_cast<double>(j.grad_accum);
    const sim::ComputeModel cm = sim::ComputeModel::from(s.topology, r.precision.params);
    const double cf = sim::compute_seconds(cm, w.forward_flops, w.forward_bytes);
    const double cb = sim::compute_seconds(cm, w.backward_flops + w.recompute_flops, w.backward_bytes + w.recompute_bytes);
    const bool fsdp = t.engine == plan::Engine::fsdp;
    // Comm overlaps compute when the engine issues the next unit's gather ahead of its use.
    const bool ahead_fwd = fsdp || j.stage3_prefetch_bucket_size != 0;
    const bool ahead_bwd = fsdp ? j.fsdp.backward_prefetch != config::BackwardPrefetch::none : j.stage3_prefetch_bucket_size != 0;
    const bool every = t.reduce_every_micro_batch && !(fsdp && j.fsdp.no_sync);
    const double fwd_comm = c.gather_forward + c.upload;
    const double bwd_comm = c.gather_backward + (t.reshard_after_forward ? c.upload : 0) + (every ? c.reduce + c.replicate : 0);
    auto phase = [](double compute, double comm, bool overlap) { return overlap ? std::max(compute, comm) : compute + comm; };
    const double first = c.units > 0 ? (c.gather_forward + c.upload) / c.units : 0;  // nothing to hide the first gather behind
    double step = M * (phase(cf, fwd_comm, ahead_fwd) + phase(cb, bwd_comm, ahead_bwd) + first);
    // After the last backward: its last unit's reduction, or (reducing on the last micro-batch
    // only) what of the whole reduction backward's compute did not hide.
    const double reduction = c.reduce + c.replicate, tail = reduction / std::max(1, c.units);
    step += every ? tail : std::max(tail, reduction - cb);
    step += c.offload + c.optimizer + c.post_gather;
    StepEstimate e;
    e.step_s = step;
    e.compute_s = M * (cf + cb);
    e.comm_s = M * (c.gather_forward + c.gather_backward + (every ? c.reduce + c.replicate : 0)) + (every ? 0 : c.reduce + c.replicate) +
               c.post_gather;
    e.exposed_s = std::max(0.0, step - e.compute_s - c.optimizer);
    return e;
}

std::int64_t guess_extra(const plan::BoundModel& m, const plan::ShardingRules& r) {
    std::int64_t gathered = 0, reduce = 0;
    for (const auto& u : m.units()) {
        const plan::UnitSizes z = m.sizes(u.index, r.param_shards(), r.state_shards());
        if (r.gathers_params()) gathered = std::max(gathered, r.gather_output_bytes(z).count() + r.unsharded_param_bytes(z).count());
        if (z.state_real.count() > 0)
            reduce = std::max(reduce, r.reduce_input_bytes(z).count() + r.reduce_output_bytes(z).count() + r.unsharded_grad_bytes(z).count());
    }
    return gathered + reduce;
}

}  // namespace shardsim::study
