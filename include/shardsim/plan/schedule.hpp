#pragma once
// The schedule of one optimizer step (all micro-batches) on one rank: ops in the order a rank
// issues them, each on a stream, with the ops it waits for, the buffers it reads, writes,
// allocates and frees ([Note: buffer table]), the traffic it moves and the FLOPs it performs. The
// ledger (bytes per memory category an op allocates and frees) is derived from its buffer list,
// never written by hand. The simulator prices these ops and replays their ledgers; the executor
// performs them on the buffers they name, adding none of its own.
//
// Every rank of a plan has the same schedule (shards are padded to one size), so it is built once.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shardsim/core/memory.hpp"
#include "shardsim/model/flops.hpp"
#include "shardsim/plan/collective.hpp"
#include "shardsim/plan/plan.hpp"

namespace shardsim::plan {

enum class OpKind {
    all_gather,      // parameter shards -> unsharded unit (comm); also ZeRO-1/2's post-step gather
    upload_params,   // offloaded parameter shard host -> device (copy)
    reshard,         // free a unit's unsharded parameters (compute, no time)
    forward,         // one call of the forward program (compute)
    recompute,       // forward again inside backward, for a checkpointed block (compute)
    backward,        // gradients of one call (compute)
    reduce_scatter,  // unit gradients -> this rank's shard (comm)
    all_reduce,      // gradient bucket, unit, or shard across replicas (comm)
    offload_grads,   // gradient shard device -> host (copy)
    optimizer_step,  // update of one unit's shard (compute, or host when offloaded)
    upload_update,   // updated 16-bit shard host -> device (copy)
    backward_end,    // the end of a micro-batch's backward: waits for its reductions (compute)
};
inline constexpr int kOpKindCount = 12;
std::string op_kind_name(OpKind k);
std::optional<OpKind> parse_op_kind(const std::string& s);

enum class OpStream { compute, comm, copy, host };
inline constexpr int kOpStreamCount = 4;
std::string op_stream_name(OpStream s);

enum class Phase { start, end };
// One change of one category: + allocates, - frees. Within a phase, allocations happen before
// frees (so the sample after them is the op's peak).
struct LedgerEntry {
    MemCategory category = MemCategory::temporaries;
    std::int64_t bytes = 0;
    Phase phase = Phase::start;
};

// What an op does with one buffer. The role says what the op's function uses it as:
//   input    the data the op consumes (a collective's send buffer, a copy's source)
//   output   where the op's collective or copy puts its result
//   result   where the result finally lands: accumulated into a shard, written over this rank's
//            rows of unsharded gradients, or copied out of an all-gather into unsharded tensors
//   stage    a buffer in between: a packed send buffer, a reduce-dtype cast, a pinned bounce
//   params   parameters a compute op reads (one use per unit the call reads, in its order)
//   grads    gradients a backward op accumulates into (one per unit the call reads; -1 buffer
//            for frozen units)
//   master, moment0, moment1   the optimizer step's fp32 master weights and states
//   cleared  gradients the optimizer step zeroes once it has used them (for the next step)
//   memory   a model-owned buffer whose only effect here is its allocation or release
enum class Role { input, output, result, stage, params, grads, master, moment0, moment1, cleared, memory };
std::string role_name(Role r);

struct BufferUse {
    int buffer = -1;   // in ShardingPlan::buffers()
    int instance = 0;  // the micro-batch, for buffers that exist once per micro-batch in flight
    Role role = Role::memory;
    bool read = false, write = false;
    bool alloc = false, free = false;
    Phase alloc_phase = Phase::start;
    Phase free_phase = Phase::end;
};

struct CollectiveOp {
    CollectiveKind kind = CollectiveKind::all_gather;
    int group = kWorldGroup;  // in ShardingPlan::groups() ([Note: rank groups])
    std::int64_t ranks = 1;
    std::int64_t size_bytes = 0;  // nccl-tests "size" (see collective.hpp)
    DType dtype = DType::fp32;
};

struct Op {
    int id = 0;
    OpKind kind = OpKind::forward;
    OpStream stream = OpStream::compute;
    int unit = -1;         // the unit it acts on (-1: a bucket of several)
    int call = -1;         // forward-program call for compute ops
    int micro_batch = -1;  // -1 for once-per-step ops (optimizer, post-step gathers)
    std::vector<int> units;  // units covered (a bucket lists several; otherwise {unit})
    std::vector<int> deps;   // ops that must finish before this one starts (beyond stream order)
    std::vector<BufferUse> buffers;
    std::vector<LedgerEntry> ledger;  // derived from `buffers` (derive_ledger), never written by hand
    std::optional<CollectiveOp> collective;
    double flops = 0;
    std::int64_t copy_bytes = 0;          // host<->device copies
    std::int64_t optimizer_elements = 0;  // elements the optimizer updates
    std::int64_t optimizer_bytes = 0;     // bytes it reads and writes doing so (the plan's
                                          // optimizer_traffic_bytes)
    std::int64_t activation_bytes = 0;    // activations this compute op writes (for the memory-bound term):
                                          // forward, what it saves and hands on; recompute, what it rebuilds;
                                          // backward, what forward saved
    model::ComputeWork work;              // compute ops: their GEMMs by shape, fused attention, kernels
                                          // (model::call_flops; work.flops() == flops)

    // What the HDF5 `bytes` column holds: collective size, copy bytes, or 0.
    std::int64_t bytes() const;
    // Net change of one category over the op.
    std::int64_t net(MemCategory c) const;
    // The use of the buffer in `role` (the first, for roles that repeat); nullptr when none.
    const BufferUse* use(Role role) const;
};

// The ledger of `op`: + bytes of every buffer it allocates, - of every buffer it frees, by
// category and phase (views have no memory of their own).
std::vector<LedgerEntry> derive_ledger(const Op& op, const BufferTable& buffers);

struct Schedule {
    std::vector<Op> ops;
    MemoryByCategory initial;  // persistent state before the first op (the plan's)
    int micro_batches = 1;

    // Bytes moved by collectives of each kind: nccl-tests size summed, and wire bytes per rank.
    std::int64_t collective_size_bytes(CollectiveKind k) const;
    double collective_wire_bytes(CollectiveKind k) const;
    double total_flops() const;
};

Schedule build_schedule(const ShardingPlan& plan);

// "all_gather block.3", "forward embed mb1", "all_reduce bucket[block.31..block.28]"
std::string op_label(const ShardingPlan& plan, const Op& op);

}  // namespace shardsim::plan
