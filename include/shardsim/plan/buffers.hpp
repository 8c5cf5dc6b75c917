#pragma once
// [Note: buffer table] Every buffer one optimizer step uses, on one rank, with everything needed
// to allocate it, fill it and move data in and out of it: its name in users' words, memory
// category, dtype, the flat layout and arrangement it holds ([Note: FSDP tensors]), bytes,
// device or host, pinned or not, and who allocates it. The plan builds the table (it is the only
// place a size is computed); the schedule's ops name the buffers they read, write, allocate and
// free (plan/schedule.hpp), the ledger is derived from those lists, the simulator replays them and
// the executor allocates exactly these buffers in an arena and hands them to its op functions.
//
// Arrangements:
//   shard      the shard of `layout` held by this rank: its member index in `group` picks it (a
//              1-shard layout is the whole unit);
//   gathered   every shard of `layout`, rank-major (what an all-gather produces, what a
//              reduce-scatter consumes), padding included;
//   unsharded  the real tensors of a 1-shard layout back to back (what compute reads and writes);
//   opaque     bytes with no layout shardsim moves (activations and workspaces, held by the model).
// Lifetimes: `persistent` buffers exist from before the first step to the end (the plan's
// persistent state, the first memory sample of every timeline); the others are allocated and
// freed by the ops that name them, once per micro-batch for those whose ops carry a micro-batch
// (an op's use names the instance).
#include <cstdint>
#include <string>
#include <vector>

#include "shardsim/core/dtype.hpp"
#include "shardsim/core/memory.hpp"
#include "shardsim/plan/groups.hpp"
#include "shardsim/plan/layout.hpp"

namespace shardsim::plan {

class ShardingPlan;

enum class LayoutRef { none, params, state, full_params, full_state, secondary, table };
enum class Arrangement { shard, gathered, unsharded, opaque };
enum class Side { device, host };
enum class Owner {
    executor,  // the executor's arena allocates it when an op says so
    model,     // the model code allocates it itself (activations, workspaces): the ledger counts
               // it, the executor's tracking allocator measures it
};
enum class Init { none, zeros, weights };  // weights: the job's initial values of its layout

struct BufferSpec {
    int id = -1;
    std::string name;  // "block.3 gathered params", "grad bucket 2", "block.3 adam exp_avg shard"
    MemCategory category = MemCategory::temporaries;
    DType dtype = DType::fp32;
    int unit = -1;  // -1: not one unit's (an arena, a bucket)
    LayoutRef layout = LayoutRef::none;
    int layout_index = -1;  // LayoutRef::table: which of BufferTable::layouts()
    Arrangement arrangement = Arrangement::opaque;
    int group = kShardGroup;  // a shard's group ([Note: rank groups])
    std::int64_t bytes = 0;
    Side side = Side::device;
    bool pinned = false;
    bool persistent = false;
    Owner owner = Owner::executor;
    Init init = Init::none;  // persistent: initial contents; transient: zeros when allocated, or none
    int parent = -1;         // a view of `parent` at `offset` bytes: no memory of its own
    std::int64_t offset = 0;

    std::int64_t elements() const { return bytes / dtype_size(dtype); }
    bool is_view() const { return parent >= 0; }
    // Counted in the ledger (allocated and freed by ops, or persistent): not a view.
    bool has_memory() const { return parent < 0 && bytes > 0; }
};

// The buffers of one unit (-1: the strategy has no such buffer). Persistent first.
struct UnitBuffers {
    int params = -1;         // resident parameter shard (or full parameters), device or host
    int grad_shard = -1;     // persistent gradient shard (sharded gradients on the device)
    int grads = -1;          // replicated gradients: this unit's view of the gradient arena
    int master = -1;         // fp32 master weights of the trainable shard
    int moments[2] = {-1, -1};
    int host_grads = -1;     // offload: the gradient shard on the host (fp32; DeepSpeed ZeRO-3: accumulation dtype)
    int persistent_whole = -1;  // DeepSpeed ZeRO-3: parameters under the persistence threshold, whole
    int host_accum = -1;     // DeepSpeed ZeRO-1/2 offload, grad_accum > 1: gradients accumulated on the host
    int staging = -1;        // offload, parameters on the device: the updated 16-bit shard on the host
    int upload = -1;         // offloaded parameter shard uploaded for its all-gather
    int gather_output = -1;  // all-gather output
    int unsharded = -1;      // the unit's unsharded parameters while it is live
    int unit_grads = -1;     // the unit's unsharded gradients until reduced (per micro-batch)
    int rs_input = -1;       // reduce-scatter input, rank-major, reduce dtype
    int rs_output = -1;      // reduce-scatter output: this rank's summed shard (per micro-batch)
    int cast = -1;           // unsharded gradients in the reduce dtype, for an all-reduce
    int bounce = -1;         // offload: pinned host copy of the reduced gradients
    int update = -1;         // offload: the updated shard uploaded for the post-step all-gather
    int packed_update = -1;  // the updated shard packed for the post-step all-gather
    int post_gather = -1;    // post-step all-gather output
    int partition = -1;      // DeepSpeed ZeRO-2: a later micro-batch's gradient partition, added into the first
    int secondary = -1;          // ZeRO++ hpZ: this rank's shard of the secondary copy (secondary group)
    int secondary_gather = -1;   // hpZ: the backward all-gather's output, over the secondary group
    // DeepSpeed's step (StepGroup): views of the group's buffers over this unit's shard.
    int step_flat = -1;    // the flattened gradient partition (gradient dtype)
    int step_fp32 = -1;    // the fp32 gradients the optimizer reads
    int upload_fp32 = -1;  // zero3 offload, parameters on the device: the fp32 shard on its way up
};

// DeepSpeed steps the optimizer a group at a time (ENGINES.md §1 "step() without offload", §2
// "Step"): ZeRO-1/2 one group of every trainable shard, ZeRO-3 sub-groups of sub_group_size
// elements. Without offload a group's gradients are flattened into a new partition (gradient
// dtype) and converted into a new fp32 one, freed after the group's update; ZeRO-3 with
// offload and parameters on the device sends the fp32 master up through a device fp32 buffer and
// converts it there. Units of a group are consecutive in grad_order.
struct StepGroup {
    std::vector<int> units;
    std::int64_t elements = 0;  // this rank's shard elements
    int flat = -1;              // transient, device, gradient dtype
    int fp32 = -1;              // transient, device, fp32
    int upload = -1;            // transient, device, fp32
};

// Model-owned buffers of one call of the forward program (per micro-batch): they hold the terms
// plan/activations.hpp lists.
struct CallBuffers {
    int saved = -1;       // what forward keeps (all terms, or the kept ones when checkpointed), less its input
    int recomputed = -1;  // checkpointed: what recompute rebuilds
    int output = -1;      // the hidden state handed to the next call (its input term)
    int input_grad = -1;  // the gradient of this call's input, handed to the previous call's backward
    int forward_workspace = -1;
    int backward_workspace = -1;
};

// A buffer one call makes and another frees (plan/activations.hpp, CrossCallBuffer).
struct CrossCallUse {
    int buffer = -1;
    int alloc_call = 0;
    bool alloc_in_backward = false;
    int free_call = 0;
    bool free_in_backward = false;
};

// Replicated gradients reduced together by one all-reduce (DDP): a contiguous range of the
// gradient arena, whole tensors in the order backward produces them (plan/buffers.cpp).
struct Bucket {
    std::vector<int> units;   // units with tensors in the bucket, in grad order; the last one completes it
    std::int64_t offset = 0;  // bytes into the gradient arena
    std::int64_t bytes = 0;
    int grads = -1;  // view of the gradient arena over the bucket
    int cast = -1;   // what the all-reduce runs on: the bucket's storage, or a reduce-dtype copy (-1: in place)
};

// DeepSpeed's gradient buckets (ZeRO-1/2/3, ENGINES.md §1-2): whole tensors in the order backward
// produces them; a bucket is reduced before a tensor that would overflow it, and a tensor larger
// than reduce_bucket_size is reduced alone, from where it is.
struct ZeroBucket {
    std::vector<TensorRef> tensors;
    std::vector<int> units;    // with tensors in the bucket, in order; the last one completes it
    std::vector<int> last_of;  // units whose last tensor is in this bucket: their gradients can go after it
    std::int64_t elements = 0;
    bool direct = false;     // a tensor larger than the bucket: no copy into the bucket buffer
    int layout = -1;         // in BufferTable::layouts(): the tensors back to back
    int ipg = -1;            // view of the IPG bucket buffer the gradients are copied into (-1: direct)
    int flat = -1;           // the flattened bucket: what the all-reduce sums, or the reduce-scatter's rank-major input
    int rs_output = -1;      // zero3: this rank's shard of the bucket
    int bounce = -1;         // offload: pinned host copy of what was reduced
};

class BufferTable {
public:
    const std::vector<BufferSpec>& all() const { return specs_; }
    const BufferSpec& operator[](int id) const { return specs_.at(static_cast<std::size_t>(id)); }
    const UnitBuffers& unit(int u) const { return units_.at(static_cast<std::size_t>(u)); }
    const CallBuffers& call(int c) const { return calls_.at(static_cast<std::size_t>(c)); }
    const std::vector<CrossCallUse>& cross_calls() const { return cross_; }
    const std::vector<Bucket>& buckets() const { return buckets_; }
    const std::vector<ZeroBucket>& zero_buckets() const { return zero_buckets_; }
    const std::vector<StepGroup>& step_groups() const { return step_groups_; }
    const std::vector<FlatLayout>& layouts() const { return layouts_; }
    // DeepSpeed's IPG bucket buffers (two with overlap_comm); -1: none.
    int ipg(int slot) const { return ipg_[slot]; }
    int grad_arena() const { return grad_arena_; }
    // Where the trained values of a unit's trainable tensors live after a step, at full precision
    // when there is a master copy: master, else the host staging copy, else the parameters.
    int trained_values(int u) const;

    // Persistent bytes by category (the plan's persistent state, before runtime overhead).
    MemoryByCategory persistent_bytes() const;

    // Building (plan/buffers.cpp).
    int add(BufferSpec spec);
    std::vector<UnitBuffers> units_;
    std::vector<CallBuffers> calls_;
    std::vector<CrossCallUse> cross_;
    std::vector<Bucket> buckets_;
    std::vector<ZeroBucket> zero_buckets_;
    std::vector<StepGroup> step_groups_;
    std::vector<FlatLayout> layouts_;
    int ipg_[2] = {-1, -1};
    int grad_arena_ = -1;

private:
    std::vector<BufferSpec> specs_;
};

BufferTable build_buffer_table(const ShardingPlan& plan);

// What pinning adds on the host, per rank: torch's pinned-memory cache rounds every allocation up
// to a power of two (ENGINES.md §8), for the persistent pinned buffers as the engine allocates
// them. Transient pinned copies are counted at their size.
std::int64_t pinned_rounding_bytes(const ShardingPlan& plan);

// The layout a buffer's arrangement refers to.
const FlatLayout& layout_of(const ShardingPlan& plan, const BufferSpec& b);

}  // namespace shardsim::plan
