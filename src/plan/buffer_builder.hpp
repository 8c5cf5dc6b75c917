#pragma once
// The buffer table's builder (plan/buffers.hpp build_buffer_table), private to src/plan: the
// buffers every strategy uses (buffers.cpp) and DeepSpeed's own (buffers_deepspeed.cpp).
#include <optional>
#include <string>
#include <vector>

#include "shardsim/plan/activations.hpp"
#include "shardsim/plan/buffers.hpp"
#include "shardsim/plan/engine.hpp"
#include "shardsim/plan/plan.hpp"

namespace shardsim::plan {

// The buffers of one strategy, built unit by unit, then call by call. Which buffers exist is the
// plan's decision (strategy traits, offload, precision); their sizes come from the plan's layouts.
class TableBuilder {
public:
    explicit TableBuilder(const ShardingPlan& p) : p_(p), pd_(p.precision().params), gd_(p.precision().grads), rd_(p.precision().reduce) {}

    BufferTable build() {
        t_.units_.resize(p_.units().size());
        if (!p_.shards_grads()) grad_arena();
        for (const auto& u : p_.units()) {
            persistent_states(u.index);
            gathering(u.index);
            reduction(u.index);
            after_step(u.index);
        }
        if (p_.traits().reduction == GradReduction::all_reduce_buckets && p_.groups().world() > 1) buckets();
        if (p_.traits().engine == Engine::deepspeed) {
            zero_buckets();
            step_groups();
            offload_extras();
        }
        for (int c = 0; c < static_cast<int>(p_.program().size()); ++c) call(c);
        cross_calls();
        return std::move(t_);
    }

private:
    std::string name(int u, const std::string& what) const { return p_.units()[static_cast<std::size_t>(u)].name + " " + what; }
    bool trainable(int u) const { return p_.unit_plan(u).state.real.count() > 0; }

    BufferSpec spec(int u, const std::string& what, MemCategory c, DType dt, LayoutRef l, Arrangement a, std::int64_t bytes) const {
        BufferSpec b;
        b.name = name(u, what);
        b.category = c;
        b.dtype = dt;
        b.unit = u;
        b.layout = l;
        b.arrangement = a;
        b.bytes = bytes;
        b.side = c == MemCategory::offloaded ? Side::host : Side::device;
        return b;
    }
    int put(BufferSpec b) { return b.bytes > 0 ? t_.add(std::move(b)) : -1; }
    int add(int u, const std::string& what, MemCategory c, DType dt, LayoutRef l, Arrangement a, std::int64_t bytes) {
        return put(spec(u, what, c, dt, l, a, bytes));
    }
    // Host buffers are pinned as the engine pins them: optimizer moments never (CPU Adam's states
    // are plain host memory); DeepSpeed the rest when pin_memory (`pin` says which of its rules
    // applies); FSDP its offloaded shards, always.
    int persistent(int u, const std::string& what, MemCategory c, DType dt, LayoutRef l, std::int64_t bytes, Init init,
                   bool moments = false, std::optional<bool> pin = std::nullopt) {
        BufferSpec b = spec(u, what, c, dt, l, Arrangement::shard, bytes);
        b.persistent = true;
        b.init = init;
        b.pinned = b.side == Side::host && !moments && pin.value_or(true);
        return put(std::move(b));
    }
    bool deepspeed() const { return p_.traits().engine == Engine::deepspeed; }
    // DeepSpeed's pin_memory rule for a buffer that follows it.
    std::optional<bool> ds_pin() const {
        return deepspeed() ? std::optional<bool>(p_.engine_settings().pin_memory) : std::nullopt;
    }

    // Replicated gradients live in one arena in grad_order, so that buckets are contiguous.
    void grad_arena();

    void persistent_states(int u);

    // DeepSpeed ZeRO-3 never partitions a parameter of at most stage3_param_persistence_threshold
    // elements (mark_persistent_parameters, ENGINES.md §2): every rank keeps it whole on the
    // device besides its partition. Held as DeepSpeed holds it; the unit's all-gather here still
    // carries those tensors (DeepSpeed's would skip them: at most the threshold each).
    void persistent_small_params(int u);

    int arena_view(int u) {
        std::int64_t offset = 0;
        for (int v : p_.grad_order()) {
            if (v == u) break;
            offset += p_.grad_shard_bytes(v).count();
        }
        BufferSpec b = spec(u, "gradients", MemCategory::grads, gd_, LayoutRef::full_state, Arrangement::unsharded,
                            p_.grad_shard_bytes(u).count());
        b.parent = t_.grad_arena_;
        b.offset = offset;
        return put(std::move(b));
    }

    void gathering(int u);

    void reduction(int u);

    void after_step(int u);

    // DDP's buckets (ENGINES.md §6): the gradients in the order backward produces them (units in
    // grad_order, a unit's tensors in its layout's order), a bucket closing once it holds at
    // least its cap — the first bucket's cap is smaller — so a tensor larger than the cap is a
    // bucket of its own. Each bucket is a contiguous range of the gradient arena. Without
    // gradient_as_bucket_view the buckets have storage of their own, for the model's life.
    void buckets();

    int bucket_storage(std::int64_t grad_bytes) {
        BufferSpec b;
        b.name = "DDP bucket storage (every bucket)";
        b.category = MemCategory::comm_buffers;
        b.dtype = rd_;
        b.bytes = grad_bytes / dtype_size(gd_) * dtype_size(rd_);
        b.persistent = true;
        b.init = Init::zeros;
        return t_.add(std::move(b));
    }

    // The bucket's range of the gradient arena, and what it is all-reduced in: its range of the
    // bucket storage, or a reduce-dtype copy for the all-reduce alone.
    void bucket_views(Bucket& k, int index, int storage);

    // --- DeepSpeed ZeRO's gradient buckets (ENGINES.md §1-2) -------------------------------------
    // Per unit: its gradients as backward leaves them (zero2/3), and zero2's later micro-batches'
    // gradient partitions, which the end of each backward adds into the first.
    void zero_unit_buffers(int u);

    std::vector<std::vector<TensorRef>> zero_bucket_tensors() const;

    // The IPG buffers: stage 3 keeps one for the run; stages 1 and 2 allocate one (two with
    // overlap_comm) at the first gradient of each backward and drop them at its end.
    void ipg_buffers();

    int table_buffer(const std::string& name, MemCategory c, DType dt, int layout, Arrangement a, std::int64_t bytes);

    void zero_buckets();

    void zero_bucket_buffers(ZeroBucket& z, int k, const EngineSettings& e);

    // A unit's view of a step group's buffer: its shard, at its place in the group.
    int group_view(int parent, int u, std::int64_t offset, const std::string& what);

    int group_buffer(const std::string& what, MemCategory c, DType dt, std::int64_t elements) {
        BufferSpec b;
        b.name = what;
        b.category = c;
        b.dtype = dt;
        b.bytes = elements * dtype_size(dt);
        b.init = Init::none;
        return t_.add(std::move(b));
    }

    // DeepSpeed's optimizer groups (StepGroup). ZeRO-3 closes a sub-group once it holds at least
    // sub_group_size elements (DeepSpeed closes it after the parameter that reaches the size; here
    // after the unit, since the step runs unit by unit).
    void step_groups();

    // What DeepSpeed's offload holds besides the states (ENGINES.md §1 ZeRO-Offload, §2 Offload).
    // ZeRO-1/2: a pinned host buffer and a device buffer of the largest parameter in the model
    // dtype (the temp gradient buffers for CPU and GPU offload); ZeRO-3: the fp32 gradient buffer
    // of the largest sub-group on the host. Memory as DeepSpeed keeps it; no op moves data through
    // them here (the executor converts the gradients on the way to the optimizer).
    void offload_extras();

    int model_buffer(const std::string& what, MemCategory c, std::int64_t bytes, int unit) {
        if (bytes <= 0) return -1;
        BufferSpec b;
        b.name = what;
        b.category = c;
        b.dtype = pd_;
        b.unit = unit;
        b.bytes = bytes;
        b.owner = Owner::model;
        return t_.add(std::move(b));
    }

    void call(int c);

    void cross_calls() {
        for (const auto& x : cross_call_buffers(p_)) {
            const int id = model_buffer(x.name, x.category, x.bytes, -1);
            if (id >= 0) t_.cross_.push_back({id, x.alloc_call, x.alloc_in_backward, x.free_call, x.free_in_backward});
        }
    }

    const ShardingPlan& p_;
    const DType pd_, gd_, rd_;
    BufferTable t_;
};

}  // namespace shardsim::plan
