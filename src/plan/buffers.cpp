#include "shardsim/plan/buffers.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>

#include "shardsim/core/error.hpp"
#include "shardsim/plan/activations.hpp"
#include "shardsim/plan/engine.hpp"
#include "shardsim/plan/plan.hpp"
#include "buffer_builder.hpp"

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

void TableBuilder::grad_arena() {
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

void TableBuilder::persistent_states(int u) {
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

void TableBuilder::persistent_small_params(int u) {
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

void TableBuilder::gathering(int u) {
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

void TableBuilder::reduction(int u) {
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

void TableBuilder::after_step(int u) {
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

void TableBuilder::buckets() {
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

void TableBuilder::bucket_views(Bucket& k, int index, int storage) {
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

void TableBuilder::call(int c) {
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
