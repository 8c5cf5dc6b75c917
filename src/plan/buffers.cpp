#include "shardsim/plan/buffers.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>

#include "shardsim/core/error.hpp"
#include "shardsim/plan/activations.hpp"
#include "shardsim/plan/engine.hpp"
#include "shardsim/plan/plan.hpp"

namespace shardsim::plan {

int BufferTable::add(BufferSpec spec) {
    spec.id = static_cast<int>(specs_.size());
    specs_.push_back(std::move(spec));
    return specs_.back().id;
}

int BufferTable::trained_values(int u) const {
    const UnitBuffers& b = unit(u);
    if (b.master >= 0) return b.master;
    if (b.staging >= 0) return b.staging;
    return b.params;
}

MemoryByCategory BufferTable::persistent_bytes() const {
    MemoryByCategory m;
    for (const auto& b : specs_)
        if (b.persistent && b.has_memory()) m[b.category] += b.bytes;
    return m;
}

const FlatLayout& layout_of(const ShardingPlan& plan, const BufferSpec& b) {
    if (b.layout == LayoutRef::table) return plan.buffers().layouts().at(static_cast<std::size_t>(b.layout_index));
    SHARDSIM_ASSERT(b.unit >= 0 && b.layout != LayoutRef::none, "buffer " + b.name + " has no layout");
    const UnitPlan& up = plan.unit_plan(b.unit);
    switch (b.layout) {
        case LayoutRef::params: return up.params;
        case LayoutRef::state: return up.state;
        case LayoutRef::full_params: return up.full_params;
        case LayoutRef::full_state: return up.full_state;
        case LayoutRef::secondary: return up.secondary;
        case LayoutRef::table: break;
        case LayoutRef::none: break;
    }
    throw Error("internal: buffer " + b.name + " has no layout");
}

namespace {

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
    void grad_arena() {
        std::int64_t total = 0;
        for (int u : p_.grad_order()) total += p_.grad_shard_bytes(u).count();
        if (total == 0) return;
        BufferSpec b;
        b.name = "gradients (replicated, every unit)";
        b.category = MemCategory::grads;
        b.dtype = gd_;
        b.bytes = total;
        b.persistent = true;
        b.init = Init::zeros;
        t_.grad_arena_ = t_.add(std::move(b));
    }

    void persistent_states(int u) {
        UnitBuffers& b = t_.units_[static_cast<std::size_t>(u)];
        const bool off = p_.offload_optimizer();
        const MemCategory params = p_.offload_params() ? MemCategory::offloaded : MemCategory::params;
        b.params = persistent(u, p_.param_shards() > 1 ? "param shard" : "params", params, pd_, LayoutRef::params,
                              p_.param_shard_bytes(u).count(), Init::weights);
        persistent_small_params(u);
        if (p_.shards_grads())
            b.grad_shard = persistent(u, "gradient shard", MemCategory::grads, gd_, LayoutRef::state, p_.grad_shard_bytes(u).count(), Init::zeros);
        else if (trainable(u))
            b.grads = arena_view(u);
        // ZeRO-3's offloaded fp32 master is a plain CPU clone, never pinned (ENGINES.md §2).
        const bool ds3 = deepspeed() && p_.engine_settings().zero_stage == 3;
        b.master = persistent(u, "fp32 master shard", off ? MemCategory::offloaded : MemCategory::master_params, DType::fp32,
                              LayoutRef::state, p_.master_bytes(u).count(), Init::weights, false,
                              ds3 ? std::optional<bool>(false) : ds_pin());
        const Precision& prec = p_.precision();
        const std::int64_t per_moment = prec.moment_count ? p_.optimizer_state_bytes(u).count() / prec.moment_count : 0;
        const char* moment_names[2] = {prec.moment_count == 2 ? "adam exp_avg shard" : "sgd momentum shard", "adam exp_avg_sq shard"};
        for (int m = 0; m < prec.moment_count; ++m)
            b.moments[m] = persistent(u, moment_names[m], off ? MemCategory::offloaded : MemCategory::optimizer_states, prec.moments,
                                      LayoutRef::state, per_moment, Init::zeros, true);
        if (!off) return;
        const DType hg = p_.host_grad_dtype();
        b.host_grads = persistent(u, std::string(hg == DType::fp32 ? "fp32 " : "") + "gradient shard (host)", MemCategory::offloaded,
                                  hg, LayoutRef::state, p_.host_grad_bytes(u).count(), Init::zeros, false, ds_pin());
        // The host copy the update lands in before it goes up: ZeRO-1/2's bit16 partition. ZeRO-3
        // sends its fp32 master up and converts it on the device (StepGroup::upload); without
        // master weights the staging copy is what the host optimizer updates.
        if (!p_.offload_params() && !(ds3 && b.master >= 0))
            b.staging = persistent(u, "updated 16-bit shard (host)", MemCategory::offloaded, pd_, LayoutRef::state,
                                   p_.state_update_bytes(u).count(), Init::weights, false, ds_pin());
        // ZeRO-1/2 with several backwards per step: a host buffer per in-partition parameter in the
        // model dtype, the micro-batches' sum (async_accumulate_grad_in_cpu_via_gpu). Held as
        // DeepSpeed holds it; the executor adds each micro-batch straight into the fp32 shard.
        if (deepspeed() && !ds3 && p_.scenario().job.grad_accum > 1)
            b.host_accum = persistent(u, "accumulated gradients (host)", MemCategory::offloaded, gd_, LayoutRef::state,
                                      bytes_of(p_.unit_plan(u).state.shard, gd_).count(), Init::zeros, false, ds_pin());
    }

    // DeepSpeed ZeRO-3 never partitions a parameter of at most stage3_param_persistence_threshold
    // elements (mark_persistent_parameters, ENGINES.md §2): every rank keeps it whole on the
    // device besides its partition. Held as DeepSpeed holds it; the unit's all-gather here still
    // carries those tensors (DeepSpeed's would skip them: at most the threshold each).
    void persistent_small_params(int u) {
        const EngineSettings& e = p_.engine_settings();
        if (!deepspeed() || e.zero_stage != 3 || p_.param_shards() <= 1) return;
        std::int64_t elements = 0;
        for (const auto& t : p_.units()[static_cast<std::size_t>(u)].tensors)
            if (t.numel().count() <= e.persistence_threshold) elements += t.numel().count();
        BufferSpec b;
        b.name = name(u, "small parameters kept whole (persistence threshold)");
        b.category = MemCategory::params;
        b.dtype = pd_;
        b.unit = u;
        b.bytes = elements * dtype_size(pd_);
        b.persistent = true;
        b.init = Init::none;
        t_.units_[static_cast<std::size_t>(u)].persistent_whole = put(std::move(b));
    }

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

    void gathering(int u) {
        if (!p_.gathers_params()) return;
        UnitBuffers& b = t_.units_[static_cast<std::size_t>(u)];
        const std::int64_t shard = p_.param_shard_bytes(u).count();
        if (p_.offload_params() && p_.param_shards() > 1)
            b.upload = add(u, "uploaded param shard", MemCategory::comm_buffers, pd_, LayoutRef::params, Arrangement::shard, shard);
        if (p_.param_shards() > 1)
            b.gather_output = add(u, "all-gather output", MemCategory::gathered_params, pd_, LayoutRef::params, Arrangement::gathered,
                                  p_.gather_output_bytes(u).count());
        b.unsharded = add(u, "gathered params", MemCategory::gathered_params, pd_, LayoutRef::full_params, Arrangement::unsharded,
                          p_.unsharded_param_bytes(u).count());
        if (p_.groups().secondary_size() <= 1) return;
        // ZeRO++ hpZ: after forward, a second copy of the parameters split over the secondary
        // group (usually one node) is kept, so that backward gathers inside it.
        const FlatLayout& sec = p_.unit_plan(u).secondary;
        BufferSpec second = spec(u, "secondary param shard (hpZ)", MemCategory::params, pd_, LayoutRef::secondary, Arrangement::shard,
                                bytes_of(sec.shard, pd_).count());
        second.group = kSecondaryGroup;
        second.init = Init::zeros;  // its padding goes out with the all-gather
        b.secondary = put(std::move(second));
        b.secondary_gather = add(u, "secondary all-gather output (hpZ)", MemCategory::gathered_params, pd_, LayoutRef::secondary,
                                 Arrangement::gathered, bytes_of(sec.gathered(), pd_).count());
    }

    void reduction(int u) {
        if (!trainable(u)) return;
        UnitBuffers& b = t_.units_[static_cast<std::size_t>(u)];
        const bool off = p_.offload_optimizer();
        const bool sharded_states = p_.state_shards() > 1;
        if (p_.transient_grads()) {
            // Backward accumulates into it: it starts from zeros.
            BufferSpec g = spec(u, "unsharded gradients", MemCategory::grads, gd_, LayoutRef::full_state, Arrangement::unsharded,
                                p_.unsharded_grad_bytes(u).count());
            g.init = Init::zeros;
            b.unit_grads = put(std::move(g));
        }
        if (p_.traits().engine == Engine::deepspeed) return zero_unit_buffers(u);
        const bool reduce_scatters = sharded_states && (p_.shards_grads() || p_.traits().reduction == GradReduction::reduce_scatter_per_unit);
        if (reduce_scatters) {
            b.rs_input = add(u, "reduce-scatter input", MemCategory::comm_buffers, rd_, LayoutRef::state, Arrangement::gathered,
                             p_.reduce_input_bytes(u).count());
            b.rs_output = add(u, "reduce-scatter output", MemCategory::comm_buffers, rd_, LayoutRef::state, Arrangement::shard,
                              p_.reduce_output_bytes(u).count());
        }
        // An all-reduce of gradients kept in another dtype than the reduce dtype goes through a
        // cast copy: unsharded gradients of one unit (fsdp-no-shard, hybrid with one rank per shard).
        const bool all_reduces_unsharded = !sharded_states && (p_.traits().reduction == GradReduction::all_reduce_per_unit ||
                                                               (p_.traits().hybrid && p_.groups().replicate_size() > 1));
        if (all_reduces_unsharded && rd_ != gd_)
            b.cast = add(u, "gradients in the reduce dtype", MemCategory::comm_buffers, rd_, LayoutRef::full_state,
                         Arrangement::unsharded, bytes_of(p_.unit_plan(u).state.real, rd_).count());
        if (off) {
            // The pinned copy of what leaves the device: the summed shard, the unit's gradients
            // (one shard), or the replicated gradients themselves (ZeRO-1 on one rank).
            const int source = b.rs_output >= 0 ? b.rs_output : (b.unit_grads >= 0 ? b.unit_grads : b.grads);
            const BufferSpec src = t_[source];
            BufferSpec bounce = spec(u, "gradient bounce buffer (pinned host)", MemCategory::offloaded, src.dtype, src.layout,
                                     src.arrangement, src.bytes);
            bounce.pinned = true;
            b.bounce = put(std::move(bounce));
        }
    }

    void after_step(int u) {
        if (!trainable(u) || !p_.traits().gather_after_step || p_.state_shards() <= 1) return;
        UnitBuffers& b = t_.units_[static_cast<std::size_t>(u)];
        const std::int64_t update = p_.state_update_bytes(u).count();
        if (p_.offload_optimizer())
            b.update = add(u, "uploaded updated shard", MemCategory::comm_buffers, pd_, LayoutRef::state, Arrangement::shard, update);
        else {
            // Zeroed when allocated: this rank's rows are copied in, its padding is sent as zeros.
            BufferSpec packed = spec(u, "updated shard packed for sending", MemCategory::comm_buffers, pd_, LayoutRef::state,
                                     Arrangement::shard, update);
            packed.init = Init::zeros;
            b.packed_update = put(std::move(packed));
        }
        b.post_gather = add(u, "post-step all-gather output", MemCategory::comm_buffers, pd_, LayoutRef::state, Arrangement::gathered,
                            bytes_of(p_.unit_plan(u).state.gathered(), pd_).count());
    }

    // DDP's buckets (ENGINES.md §6): the gradients in the order backward produces them (units in
    // grad_order, a unit's tensors in its layout's order), a bucket closing once it holds at
    // least its cap — the first bucket's cap is smaller — so a tensor larger than the cap is a
    // bucket of its own. Each bucket is a contiguous range of the gradient arena. Without
    // gradient_as_bucket_view the buckets have storage of their own, for the model's life.
    void buckets() {
        const EngineSettings& e = p_.engine_settings();
        std::vector<Bucket> out;
        Bucket cur;
        std::int64_t offset = 0, start = 0;
        auto close = [&] {
            if (offset == start) return;
            cur.bytes = offset - start;
            cur.offset = start;
            out.push_back(cur);
            cur = Bucket{};
            start = offset;
        };
        for (int u : p_.grad_order()) {
            if (!trainable(u)) continue;
            for (const auto& c : p_.unit_plan(u).full_state.chunks) {
                if (cur.units.empty() || cur.units.back() != u) cur.units.push_back(u);
                offset += c.rows * c.row_elements * dtype_size(gd_);
                if (offset - start >= (out.empty() ? e.first_bucket_bytes : e.bucket_bytes)) close();
            }
        }
        close();
        const int storage = e.gradient_as_bucket_view ? -1 : bucket_storage(offset);
        for (std::size_t k = 0; k < out.size(); ++k) bucket_views(out[k], static_cast<int>(k), storage);
        t_.buckets_ = std::move(out);
    }

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
    void bucket_views(Bucket& k, int index, int storage) {
        const std::string name = "grad bucket " + std::to_string(index) + " [" + p_.units()[static_cast<std::size_t>(k.units.front())].name +
                                 (k.units.size() > 1 ? ".." + p_.units()[static_cast<std::size_t>(k.units.back())].name : std::string()) + "]";
        BufferSpec v;
        v.name = name;
        v.category = MemCategory::grads;
        v.dtype = gd_;
        v.bytes = k.bytes;
        v.parent = t_.grad_arena_;
        v.offset = k.offset;
        k.grads = t_.add(v);
        if (storage < 0 && rd_ == gd_) return;
        BufferSpec c;
        c.name = name + (storage >= 0 ? " storage" : " in the reduce dtype");
        c.category = MemCategory::comm_buffers;
        c.dtype = rd_;
        c.bytes = k.bytes / dtype_size(gd_) * dtype_size(rd_);
        if (storage >= 0) {
            c.parent = storage;
            c.offset = k.offset / dtype_size(gd_) * dtype_size(rd_);
        }
        k.cast = t_.add(c);
    }

    // --- DeepSpeed ZeRO's gradient buckets (ENGINES.md §1-2) -------------------------------------
    // Per unit: its gradients as backward leaves them (zero2/3), and zero2's later micro-batches'
    // gradient partitions, which the end of each backward adds into the first.
    void zero_unit_buffers(int u) {
        UnitBuffers& b = t_.units_[static_cast<std::size_t>(u)];
        if (p_.shards_grads()) {
            BufferSpec g = spec(u, "unsharded gradients", MemCategory::grads, gd_, LayoutRef::full_state, Arrangement::unsharded,
                                p_.unsharded_grad_bytes(u).count());
            g.init = Init::zeros;
            b.unit_grads = put(std::move(g));
        }
        if (p_.engine_settings().zero_stage == 2 && !p_.offload_optimizer() && p_.scenario().job.grad_accum > 1) {
            BufferSpec g = spec(u, "gradient partition (a later micro-batch)", MemCategory::grads, gd_, LayoutRef::state,
                                Arrangement::shard, bytes_of(p_.unit_plan(u).state.shard, gd_).count());
            g.init = Init::zeros;
            b.partition = put(std::move(g));
        }
    }

    std::vector<std::vector<TensorRef>> zero_bucket_tensors() const {
        const std::int64_t cap = p_.engine_settings().reduce_bucket_elements;
        std::vector<std::vector<TensorRef>> out(1);
        std::int64_t filled = 0;
        for (int u : p_.grad_order()) {
            if (!trainable(u)) continue;
            for (const auto& c : p_.unit_plan(u).full_state.chunks) {
                const std::int64_t n = c.rows * c.row_elements;
                if (!out.back().empty() && (filled + n > cap || n > cap)) out.emplace_back(), filled = 0;
                out.back().push_back({u, c.tensor});
                filled += n;
            }
        }
        if (out.back().empty()) out.pop_back();
        return out;
    }

    // The IPG buffers: stage 3 keeps one for the run; stages 1 and 2 allocate one (two with
    // overlap_comm) at the first gradient of each backward and drop them at its end.
    void ipg_buffers() {
        const EngineSettings& e = p_.engine_settings();
        const int slots = e.zero_stage == 3 || !e.overlap_comm ? 1 : 2;
        for (int k = 0; k < slots; ++k) {
            BufferSpec b;
            b.name = "IPG bucket buffer" + (slots > 1 ? " " + std::to_string(k) : std::string());
            b.category = MemCategory::comm_buffers;
            b.dtype = e.zero_stage == 3 ? rd_ : gd_;
            b.bytes = e.reduce_bucket_elements * dtype_size(b.dtype);
            b.persistent = e.zero_stage == 3;
            t_.ipg_[k] = t_.add(std::move(b));
        }
    }

    int table_buffer(const std::string& name, MemCategory c, DType dt, int layout, Arrangement a, std::int64_t bytes) {
        BufferSpec b;
        b.name = name;
        b.category = c;
        b.dtype = dt;
        b.layout = LayoutRef::table;
        b.layout_index = layout;
        b.arrangement = a;
        b.bytes = bytes;
        b.side = c == MemCategory::offloaded ? Side::host : Side::device;
        b.pinned = b.side == Side::host && ds_pin().value_or(true);
        return t_.add(std::move(b));
    }

    void zero_buckets() {
        const EngineSettings& e = p_.engine_settings();
        ipg_buffers();
        std::vector<bool> seen(p_.units().size());
        const auto groups = zero_bucket_tensors();
        for (std::size_t k = 0; k < groups.size(); ++k) {
            ZeroBucket z;
            z.tensors = groups[k];
            for (const auto& t : z.tensors)
                if (z.units.empty() || z.units.back() != t.unit) z.units.push_back(t.unit);
            for (std::size_t i = 0; i < z.tensors.size(); ++i)
                if (i + 1 == z.tensors.size() || z.tensors[i + 1].unit != z.tensors[i].unit) {
                    // The unit's last tensor is here when no later bucket holds one of its tensors.
                    const bool later = k + 1 < groups.size() && groups[k + 1].front().unit == z.tensors[i].unit;
                    if (!later) z.last_of.push_back(z.tensors[i].unit);
                }
            zero_bucket_buffers(z, static_cast<int>(k), e);
            t_.zero_buckets_.push_back(std::move(z));
        }
    }

    void zero_bucket_buffers(ZeroBucket& z, int k, const EngineSettings& e) {
        const std::string name = "zero bucket " + std::to_string(k) + " [" + p_.units()[static_cast<std::size_t>(z.units.front())].name +
                                 (z.units.size() > 1 ? ".." + p_.units()[static_cast<std::size_t>(z.units.back())].name : std::string()) + "]";
        t_.layouts_.push_back(make_layout(p_.units(), z.tensors, 1));
        z.layout = static_cast<int>(t_.layouts_.size()) - 1;
        z.elements = t_.layouts_.back().shard.count();
        z.direct = z.tensors.size() == 1 && z.elements > e.reduce_bucket_elements;
        if (!z.direct) {
            BufferSpec v = t_[t_.ipg_[k % (t_.ipg_[1] >= 0 ? 2 : 1)]];
            v.id = -1;
            v.name = name + " in the IPG buffer";
            v.parent = t_.ipg_[k % (t_.ipg_[1] >= 0 ? 2 : 1)];
            v.offset = 0;
            v.bytes = z.elements * dtype_size(v.dtype);
            v.persistent = false;
            v.layout = LayoutRef::table;
            v.layout_index = z.layout;
            v.arrangement = Arrangement::unsharded;
            z.ipg = t_.add(std::move(v));
        }
        const MemCategory off = p_.offload_optimizer() ? MemCategory::offloaded : MemCategory::comm_buffers;
        if (e.zero_stage < 3) {
            // allreduce_bucket: the bucket flattened into a new tensor, all-reduced, this rank's
            // slices copied out.
            z.flat = table_buffer(name + " flattened", MemCategory::comm_buffers, rd_, z.layout, Arrangement::unsharded, z.elements * dtype_size(rd_));
            if (p_.offload_optimizer())
                z.bounce = table_buffer(name + " pinned host copy", off, rd_, z.layout, Arrangement::unsharded, z.elements * dtype_size(rd_));
            return;
        }
        // reduce_scatter_coalesced: an interleaved, padded, rank-major copy, one reduce-scatter.
        t_.layouts_.push_back(make_layout(p_.units(), z.tensors, p_.state_shards()));
        const int sharded = static_cast<int>(t_.layouts_.size()) - 1;
        const FlatLayout& sl = t_.layouts_.back();
        z.flat = table_buffer(name + " rank-major", MemCategory::comm_buffers, rd_, sharded, Arrangement::gathered, sl.gathered().count() * dtype_size(rd_));
        z.rs_output = table_buffer(name + " reduce-scatter output", MemCategory::comm_buffers, rd_, sharded, Arrangement::shard,
                                   sl.shard.count() * dtype_size(rd_));
        if (p_.offload_optimizer())
            z.bounce = table_buffer(name + " pinned host copy", off, rd_, sharded, Arrangement::shard, sl.shard.count() * dtype_size(rd_));
    }

    // A unit's view of a step group's buffer: its shard, at its place in the group.
    int group_view(int parent, int u, std::int64_t offset, const std::string& what) {
        BufferSpec v = t_[parent];
        v.id = -1;
        v.name = name(u, what);
        v.unit = u;
        v.parent = parent;
        v.offset = offset;
        v.bytes = p_.unit_plan(u).state.shard.count() * dtype_size(v.dtype);
        v.layout = LayoutRef::state;
        v.arrangement = Arrangement::shard;
        v.persistent = false;
        return t_.add(std::move(v));
    }

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
    void step_groups() {
        const EngineSettings& e = p_.engine_settings();
        const bool off = p_.offload_optimizer();
        std::vector<StepGroup> groups(1);
        for (int u : p_.grad_order()) {
            if (!trainable(u)) continue;
            if (e.zero_stage == 3 && groups.back().elements >= e.sub_group_elements) groups.emplace_back();
            groups.back().units.push_back(u);
            groups.back().elements += p_.unit_plan(u).state.shard.count();
        }
        if (groups.back().units.empty()) groups.pop_back();
        const bool upload = e.zero_stage == 3 && off && !p_.offload_params() && p_.precision().master;
        for (std::size_t k = 0; k < groups.size(); ++k) {
            StepGroup& g = groups[k];
            const std::string gname = (e.zero_stage == 3 ? "optimizer sub-group " + std::to_string(k) : std::string("optimizer group"));
            if (!off) {
                // Flatten (gradient dtype), then .to(fp32): a second buffer only when the dtypes differ.
                g.flat = group_buffer(gname + " flattened gradients", MemCategory::grads, gd_, g.elements);
                if (gd_ != DType::fp32) g.fp32 = group_buffer(gname + " fp32 gradients", MemCategory::grads, DType::fp32, g.elements);
            }
            if (upload) g.upload = group_buffer(gname + " fp32 upload", MemCategory::comm_buffers, DType::fp32, g.elements);
            std::int64_t offset = 0;
            for (int u : g.units) {
                UnitBuffers& b = t_.units_[static_cast<std::size_t>(u)];
                const std::int64_t n = p_.unit_plan(u).state.shard.count();
                if (g.flat >= 0) {
                    b.step_flat = group_view(g.flat, u, offset * dtype_size(gd_), "flattened gradients (step)");
                    b.step_fp32 = g.fp32 >= 0 ? group_view(g.fp32, u, offset * 4, "fp32 gradients (step)") : b.step_flat;
                }
                if (g.upload >= 0) b.upload_fp32 = group_view(g.upload, u, offset * 4, "fp32 update on its way up");
                offset += n;
            }
        }
        t_.step_groups_ = std::move(groups);
    }

    // What DeepSpeed's offload holds besides the states (ENGINES.md §1 ZeRO-Offload, §2 Offload).
    // ZeRO-1/2: a pinned host buffer and a device buffer of the largest parameter in the model
    // dtype (the temp gradient buffers for CPU and GPU offload); ZeRO-3: the fp32 gradient buffer
    // of the largest sub-group on the host. Memory as DeepSpeed keeps it; no op moves data through
    // them here (the executor converts the gradients on the way to the optimizer).
    void offload_extras() {
        if (!p_.offload_optimizer()) return;
        const EngineSettings& e = p_.engine_settings();
        auto held = [&](const std::string& what, MemCategory c, DType dt, std::int64_t elements) {
            BufferSpec b;
            b.name = what;
            b.category = c;
            b.dtype = dt;
            b.bytes = elements * dtype_size(dt);
            b.side = c == MemCategory::offloaded ? Side::host : Side::device;
            b.pinned = b.side == Side::host && e.pin_memory;
            b.persistent = true;
            b.init = Init::zeros;
            put(std::move(b));
        };
        if (e.zero_stage == 3) {
            std::int64_t largest = 0;
            for (const auto& g : t_.step_groups_) largest = std::max(largest, g.elements);
            held("fp32 sub-group gradient buffer (host)", MemCategory::offloaded, DType::fp32, largest);
            return;
        }
        std::int64_t largest = 0;
        for (int u : p_.grad_order())
            for (const auto& c : p_.unit_plan(u).full_state.chunks) largest = std::max(largest, c.rows * c.row_elements);
        held("largest-parameter gradient buffer (pinned host)", MemCategory::offloaded, gd_, largest);
        held("largest-parameter gradient buffer (device)", MemCategory::comm_buffers, gd_, largest);
    }

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

    void call(int c) {
        const CallActivations a = call_activations(p_, c);
        const int K = static_cast<int>(p_.program().size());
        const int u = p_.program()[static_cast<std::size_t>(c)].unit;
        const std::string who = "call " + std::to_string(c) + " (" + p_.units()[static_cast<std::size_t>(u)].name + ") ";
        CallBuffers cb;
        cb.saved = model_buffer(who + "saved activations", MemCategory::activations, a.forward_bytes() - a.input_bytes(), u);
        if (a.checkpointed) cb.recomputed = model_buffer(who + "recomputed activations", MemCategory::activations, a.recompute_bytes(), u);
        if (c + 1 < K) cb.output = model_buffer(who + "output", MemCategory::activations, call_activations(p_, c + 1).input_bytes(), u);
        cb.input_grad = model_buffer(who + "input gradient", MemCategory::temporaries, a.input_bytes(), u);
        cb.forward_workspace = model_buffer(who + "forward workspace", MemCategory::temporaries, a.forward_workspace, u);
        cb.backward_workspace = model_buffer(who + "backward workspace", MemCategory::temporaries, a.backward_workspace, u);
        t_.calls_.push_back(cb);
    }

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

}  // namespace

BufferTable build_buffer_table(const ShardingPlan& plan) { return TableBuilder(plan).build(); }

namespace {
std::int64_t power_of_two_ceil(std::int64_t n) {
    std::int64_t p = 1;
    while (p < n && p <= std::numeric_limits<std::int64_t>::max() / 2) p *= 2;
    return std::max(p, n);
}
}  // namespace

std::int64_t pinned_rounding_bytes(const ShardingPlan& plan) {
    // DeepSpeed pins one flat buffer per kind of state (per parameter group): the table's buffers
    // of one kind across units are one allocation. FSDP pins each unit's shard on its own.
    const bool flat = plan.traits().engine == Engine::deepspeed;
    std::map<std::string, std::int64_t> kinds;
    std::int64_t slack = 0;
    for (const auto& b : plan.buffers().all()) {
        if (!b.persistent || !b.has_memory() || b.side != Side::host || !b.pinned) continue;
        if (!flat || b.unit < 0) {
            slack += power_of_two_ceil(b.bytes) - b.bytes;
            continue;
        }
        const std::string& unit = plan.units()[static_cast<std::size_t>(b.unit)].name;
        kinds[b.name.substr(std::min(b.name.size(), unit.size() + 1))] += b.bytes;
    }
    for (const auto& [kind, bytes] : kinds) slack += power_of_two_ceil(bytes) - bytes;
    return slack;
}

}  // namespace shardsim::plan
