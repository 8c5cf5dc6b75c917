// DeepSpeed's own buffers in the table (buffer_builder.hpp): ZeRO's gradient buckets and IPG
// buffers, the optimizer's step groups, and what its offload holds besides the states.
#include <algorithm>
#include <map>

#include "buffer_builder.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/plan/activations.hpp"

namespace shardsim::plan {

void TableBuilder::zero_unit_buffers(int u) {
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

std::vector<std::vector<TensorRef>> TableBuilder::zero_bucket_tensors() const {
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

void TableBuilder::ipg_buffers() {
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

int TableBuilder::table_buffer(const std::string& name, MemCategory c, DType dt, int layout, Arrangement a, std::int64_t bytes) {
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

void TableBuilder::zero_buckets() {
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

void TableBuilder::zero_bucket_buffers(ZeroBucket& z, int k, const EngineSettings& e) {
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

int TableBuilder::group_view(int parent, int u, std::int64_t offset, const std::string& what) {
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

void TableBuilder::step_groups() {
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

void TableBuilder::offload_extras() {
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

}  // namespace shardsim::plan
