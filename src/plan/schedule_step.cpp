// The optimizer step and what follows it (schedule_builder.hpp).
#include "schedule_builder.hpp"

#include <algorithm>

namespace shardsim::plan {

int ScheduleBuilder::optimizer_step(int u, int sync) {
    const UnitBuffers& b = B(u);
    const bool offload = p_.offload_optimizer();
    Op opt = make(OpKind::optimizer_step, offload ? OpStream::host : OpStream::compute, u);
    opt.micro_batch = -1;
    // The update kernels read 16-bit gradients as they are (converting per element), so the step
    // needs no fp32 copy of the gradient shard. Gradients are zeroed after it.
    const int device_grads = b.grad_shard >= 0 ? b.grad_shard : b.grads;
    const StepGroup* g = step_group(u);
    if (b.step_fp32 >= 0) {
        // DeepSpeed without offload: the group's gradients flattened into a new partition and
        // converted to fp32 for the update, both freed after the group's last unit.
        if (g->units.front() == u)
            for (int buf : {g->flat, g->fp32}) use(opt, buf, Role::memory, kAlloc);
        use(opt, device_grads, Role::input, kRead);
        if (b.step_flat != b.step_fp32) use(opt, b.step_flat, Role::stage, kWrite);
        use(opt, b.step_fp32, Role::grads, kRead | kWrite);
        if (g->units.back() == u)
            for (int buf : {g->flat, g->fp32}) use(opt, buf, Role::memory, kFree);
    } else {
        use(opt, offload ? b.host_grads : device_grads, Role::grads, kRead);
    }
    use(opt, offload ? b.host_grads : -1, Role::cleared, kWrite);
    use(opt, device_grads, Role::cleared, kWrite);  // offloaded ZeRO-1 accumulated on the device too
    use(opt, offload && !p_.offload_params() ? b.staging : b.params, Role::params, kRead | kWrite);
    use(opt, b.master, Role::master, kRead | kWrite);
    use(opt, b.moments[0], Role::moment0, kRead | kWrite);
    use(opt, b.moments[1], Role::moment1, kRead | kWrite);
    opt.optimizer_elements = p_.unit_plan(u).state.shard.count();
    opt.optimizer_bytes = p_.optimizer_traffic_bytes(u).count();
    if (sync >= 0) opt.deps.push_back(sync);
    if (chain_[static_cast<std::size_t>(u)] >= 0) opt.deps.push_back(chain_[static_cast<std::size_t>(u)]);
    return add(std::move(opt));
}

// ZeRO-1/2 after the step: every rank's updated rows into the full parameters.
void ScheduleBuilder::post_step_gather(int u, int after) {
    const UnitBuffers& b = B(u);
    Op ag = make(OpKind::all_gather, OpStream::comm, u, {after});
    ag.micro_batch = -1;
    if (b.update >= 0) {
        use(ag, b.update, Role::input, kRead | kFree);
    } else {
        use(ag, b.params, Role::input, kRead);
        use(ag, b.packed_update, Role::stage, kWrite | kAlloc | kFree);  // this rank's rows, packed for sending
    }
    use(ag, b.post_gather, Role::output, kWrite | kAlloc | kFree);
    use(ag, b.params, Role::result, kWrite);
    ag.collective = CollectiveOp{CollectiveKind::all_gather, kShardGroup, p_.state_shards(), bytes(b.post_gather),
                                 p_.precision().params};
    add(std::move(ag));
}

const StepGroup* ScheduleBuilder::step_group(int u) const {
    for (const auto& g : t_.step_groups())
        if (std::find(g.units.begin(), g.units.end(), u) != g.units.end()) return &g;
    return nullptr;
}

void ScheduleBuilder::optimizer_phase() {
    mb_ = -1;
    // The step starts when backward has returned: after the last end of backward (every
    // reduction issued and waited for, as PyTorch's optimizer.step() runs after backward's final
    // hooks).
    const int sync = last_sync_;
    for (int u : p_.grad_order()) {
        if (!trainable(u)) continue;
        const UnitBuffers& b = B(u);
        int last = optimizer_step(u, sync);
        if (b.staging >= 0) {
            // The updated 16-bit shard goes back to the device: into the parameters, or into the
            // buffer the post-step all-gather sends.
            Op up = make(OpKind::upload_update, OpStream::copy, u, {last});
            up.micro_batch = -1;
            use(up, b.staging, Role::input, kRead);
            if (b.update >= 0)
                use(up, b.update, Role::output, kWrite | kAlloc);
            else
                use(up, b.params, Role::result, kWrite);
            up.copy_bytes = bytes(b.staging);
            last = add(std::move(up));
        } else if (b.upload_fp32 >= 0) {
            // DeepSpeed ZeRO-3, optimizer offloaded, parameters on the device: the fp32 master goes
            // up into the sub-group's fp32 buffer and is converted into the parameters there.
            const StepGroup* g = step_group(u);
            Op up = make(OpKind::upload_update, OpStream::copy, u, {last});
            up.micro_batch = -1;
            if (g->units.front() == u) use(up, g->upload, Role::memory, kAlloc);
            use(up, b.master, Role::input, kRead);
            use(up, b.upload_fp32, Role::stage, kWrite);
            use(up, b.params, Role::result, kWrite);
            if (g->units.back() == u) use(up, g->upload, Role::memory, kFree);
            up.copy_bytes = bytes(b.upload_fp32);
            last = add(std::move(up));
        }
        if (b.post_gather >= 0) post_step_gather(u, last);
    }
}

}  // namespace shardsim::plan
