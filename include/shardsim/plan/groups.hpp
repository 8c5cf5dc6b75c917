#pragma once
// [Note: rank groups] The ranks of a job as named parallel dimensions with sizes (after
// torchtitan's parallel dims). Ranks are numbered node-major: rank = node * gpus_per_node + local.
// The world is `replicate x shard`, outermost first:
//   shard      `shard` consecutive ranks that split one copy of the sharded states
//   replicate  the ranks at the same position of every shard group (stride `shard`): they hold
//              copies of the same shards and all-reduce what they reduce (HSDP's replicas)
//   secondary  ZeRO++ hpZ only: `secondary` consecutive ranks inside a shard group that split a
//              second copy of the parameter shards, so that backward gathers within them
// and the `world` group holds every rank. A group is a size and the stride between its members;
// an instance of it is one set of ranks that communicate. Everything that needs "which ranks, on
// how many nodes" asks a group here: the schedule for its collectives' groups, the cost model for
// their span, the executor for the communicator it splits.
#include <cstdint>
#include <string>
#include <vector>

namespace shardsim::plan {

// Where a group's ranks sit: how many, on how many nodes, most on one node.
struct GroupSpan {
    std::int64_t ranks = 1;
    std::int64_t nodes = 1;
    std::int64_t per_node = 1;
};

struct RankGroup {
    std::string name;         // world | shard | replicate | secondary
    std::int64_t size = 1;    // ranks in one instance
    std::int64_t stride = 1;  // rank distance between consecutive members

    // The instance `rank` belongs to (a split colour), and its rank inside it (the split key).
    std::int64_t instance(std::int64_t rank) const { return rank / (size * stride) * stride + rank % stride; }
    std::int64_t member(std::int64_t rank) const { return rank / stride % size; }
    // The nodes and ranks per node of the instance holding rank 0 (every instance looks alike
    // when nodes hold equal rank counts).
    GroupSpan span(std::int64_t gpus_per_node) const;
};

// The parallel dimensions of a plan (sizes, outermost first) and the groups they make.
struct ParallelDims {
    std::int64_t replicate = 1;
    std::int64_t shard = 1;
    std::int64_t secondary = 1;  // 1: no secondary partition
    std::int64_t gpus_per_node = 1;

    std::int64_t world() const { return replicate * shard; }
    // "world 6 = replicate 2 x shard 3" (and "; secondary 3 inside shard" with hpZ)
    std::string factors() const;
};

// Index of each group in Groups::all(), the value ops and communicator tables use.
enum GroupId : int { kWorldGroup = 0, kShardGroup = 1, kReplicateGroup = 2, kSecondaryGroup = 3 };
inline constexpr int kGroupCount = 4;

class Groups {
public:
    Groups() : Groups(ParallelDims{}) {}
    explicit Groups(const ParallelDims& dims);

    const ParallelDims& dims() const { return dims_; }
    const std::vector<RankGroup>& all() const { return groups_; }
    const RankGroup& operator[](int id) const { return groups_.at(static_cast<std::size_t>(id)); }
    GroupSpan span(int id) const { return (*this)[id].span(dims_.gpus_per_node); }

    std::int64_t world() const { return dims_.world(); }
    std::int64_t shard_size() const { return dims_.shard; }
    std::int64_t replicate_size() const { return dims_.replicate; }
    std::int64_t secondary_size() const { return dims_.secondary; }
    std::int64_t gpus_per_node() const { return dims_.gpus_per_node; }

private:
    ParallelDims dims_;
    std::vector<RankGroup> groups_;
};

}  // namespace shardsim::plan
