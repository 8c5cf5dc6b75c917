// Gathering and freeing parameters (schedule_builder.hpp).
//   FSDP (FSDP1 as Hugging Face wraps it; ENGINES.md §4): a unit is all-gathered before its call
//   and freed after its forward (FULL_SHARD, HYBRID_SHARD; never the root's: the embeddings and the
//   head stay gathered into backward) and after its backward. `limit_all_gathers`: before a new
//   all-gather, once two freeing reshards are queued, the CPU waits for the oldest — so an
//   all-gather waits for the reshard two before it. Forward: the next unit's all-gather is issued
//   as the CPU runs ahead (after the current call) or, with `forward_prefetch`, before it.
//   Backward: BACKWARD_PRE prefetches the next unit before the current unit's gradient is
//   computed; BACKWARD_POST after the current unit is freed, before its reduce-scatter; with no
//   prefetch the next all-gather is issued when its unit comes, behind the reduce-scatter.
//   DeepSpeed ZeRO-3: the coordinator (schedule_zero3.cpp).
#include "schedule_builder.hpp"

#include <algorithm>

namespace shardsim::plan {

namespace {
bool is_root(const model::Unit& u) { return u.kind == model::UnitKind::embedding || u.kind == model::UnitKind::head; }
}  // namespace

bool ScheduleBuilder::reshards_after_forward(int u) const {
    if (!p_.traits().reshard_after_forward || uses(u).size() != 1) return false;
    return !(engine() == Engine::fsdp && is_root(p_.units()[static_cast<std::size_t>(u)]));
}

// FSDP's no_sync keeps SHARD_GRAD_OP's parameters gathered from backward to the next forward
// (`_should_free_in_backward`: only when syncing or when the strategy frees after forward).
bool ScheduleBuilder::reshards_in_backward(int) const {
    if (engine() != Engine::fsdp || !job().fsdp.no_sync || syncs_this_micro_batch()) return true;
    return p_.traits().reshard_after_forward;
}

std::size_t ScheduleBuilder::forward_depth() const { return job().fsdp.forward_prefetch ? 1 : 0; }

bool ScheduleBuilder::runs_ahead_in_forward() const { return engine() == Engine::fsdp && !job().fsdp.forward_prefetch; }

bool ScheduleBuilder::prefetches_after_reshard() const {
    return engine() == Engine::fsdp && job().fsdp.backward_prefetch == config::BackwardPrefetch::backward_post;
}

std::size_t ScheduleBuilder::backward_depth() const {
    return job().fsdp.backward_prefetch == config::BackwardPrefetch::backward_pre ? 1 : 0;
}

// What a new all-gather waits for: FSDP's rate limiter, or the last reshard (the memory it frees).
std::vector<int> ScheduleBuilder::gather_deps() {
    std::vector<int> deps;
    if (engine() == Engine::fsdp) {
        if (job().fsdp.limit_all_gathers && free_events_.size() >= 2) {
            deps.push_back(free_events_.front());
            free_events_.pop_front();
        }
        return deps;
    }
    // DeepSpeed: the host issues a fetch or prefetch from a module's hook, so after the compute it
    // enqueued before that hook. The timeline runs on the GPU's clock, where a host far ahead would
    // hold every gathered parameter from its all-gather until the GPU's compute catches up with its
    // release; the caching allocator counts them in host order instead (the release frees at once,
    // the block waits for the stream). Placing the all-gather after the compute issued before it
    // (the host one call ahead of the GPU) keeps what is live at once as DeepSpeed holds it: the
    // current call's parameters, the prefetch and what the reuse distance retains.
    if (host_op_ >= 0) deps.push_back(host_op_);
    // With more than two all-gathers not yet waited for, the host waits for the oldest.
    if (fetch_events_.size() >= 2) {
        deps.push_back(fetch_events_.front());
        fetch_events_.pop_front();
    }
    return deps;
}

void ScheduleBuilder::gather(int u) {
    const UnitBuffers& b = B(u);
    std::vector<int> deps = gather_deps();
    if (in_backward_ && secondary_live_[static_cast<std::size_t>(u)]) return gather_secondary(u, deps);
    if (p_.offload_params()) {
        // The host shard goes up first; with one shard the upload is the gather.
        Op up = make(OpKind::upload_params, OpStream::copy, u, deps);
        use(up, b.params, Role::input, kRead);
        const int dst = b.upload >= 0 ? b.upload : b.unsharded;
        use(up, dst, Role::output, kWrite | kAlloc);
        up.copy_bytes = bytes(b.params);
        const int id = add(std::move(up));
        if (b.upload < 0) return made_available(u, id);
        deps = {id};
    }
    Op ag = make(OpKind::all_gather, OpStream::comm, u, deps);
    use(ag, b.upload >= 0 ? b.upload : b.params, Role::input, kRead | (b.upload >= 0 ? kFree : 0u));
    use(ag, b.gather_output, Role::output, kWrite | kAlloc | kFree);
    // Copy-out: the unsharded tensors are allocated after the collective, then its output is freed.
    use(ag, b.unsharded, Role::result, kWrite | kAlloc, 0, Phase::end);
    ag.collective = CollectiveOp{CollectiveKind::all_gather, kShardGroup, p_.param_shards(), bytes(b.gather_output),
                                 p_.precision().params};
    made_available(u, add(std::move(ag)));
}

// ZeRO++ hpZ in backward: from the secondary copy, inside the secondary group.
void ScheduleBuilder::gather_secondary(int u, std::vector<int> deps) {
    const UnitBuffers& b = B(u);
    Op ag = make(OpKind::all_gather, OpStream::comm, u, std::move(deps));
    use(ag, b.secondary, Role::input, kRead);
    use(ag, b.secondary_gather, Role::output, kWrite | kAlloc | kFree);
    use(ag, b.unsharded, Role::result, kWrite | kAlloc, 0, Phase::end);
    ag.collective = CollectiveOp{CollectiveKind::all_gather, kSecondaryGroup, p_.groups().secondary_size(), bytes(b.secondary_gather),
                                 p_.precision().params};
    made_available(u, add(std::move(ag)));
}

void ScheduleBuilder::made_available(int u, int op) {
    avail_[static_cast<std::size_t>(u)] = op;
    if (engine() == Engine::deepspeed) fetch_events_.push_back(op);
}

void ScheduleBuilder::reshard(int u, int after) {
    const UnitBuffers& b = B(u);
    Op r = make(OpKind::reshard, OpStream::compute, u, {after});
    // hpZ: the first reshard after forward keeps this rank's rows of the secondary copy ...
    const bool keep_secondary = b.secondary >= 0 && !in_backward_ && !secondary_live_[static_cast<std::size_t>(u)];
    use(r, b.unsharded, keep_secondary ? Role::input : Role::memory, keep_secondary ? kRead | kFree : kFree);
    if (keep_secondary) {
        use(r, b.secondary, Role::output, kWrite | kAlloc);
        secondary_live_[static_cast<std::size_t>(u)] = true;
    }
    // ... and the reshard after the unit's last backward use of the step frees it: the update
    // makes it stale, and the next step's forward makes a new one.
    if (in_backward_ && last_micro_batch_ && secondary_live_[static_cast<std::size_t>(u)]) {
        use(r, b.secondary, Role::memory, kFree);
        secondary_live_[static_cast<std::size_t>(u)] = false;
    }
    last_reshard_ = add(std::move(r));
    free_events_.push_back(last_reshard_);
    avail_[static_cast<std::size_t>(u)] = -1;
}

void ScheduleBuilder::ensure_window(const std::vector<int>& order, std::size_t pos, std::size_t depth) {
    const std::size_t last = std::min(order.size() - 1, pos + depth);
    for (std::size_t j = pos; j <= last; ++j)
        for (int u : prog_[static_cast<std::size_t>(order[j])].reads)
            if (avail_[static_cast<std::size_t>(u)] < 0) gather(u);
}

}  // namespace shardsim::plan
