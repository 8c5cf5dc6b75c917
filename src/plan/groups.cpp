#include "shardsim/plan/groups.hpp"

#include <algorithm>
#include <map>

namespace shardsim::plan {

GroupSpan RankGroup::span(std::int64_t gpus_per_node) const {
    std::map<std::int64_t, std::int64_t> per_node;  // node -> ranks of the instance holding rank 0
    for (std::int64_t k = 0; k < size; ++k) ++per_node[k * stride / std::max<std::int64_t>(1, gpus_per_node)];
    GroupSpan s;
    s.ranks = size;
    s.nodes = static_cast<std::int64_t>(per_node.size());
    s.per_node = 0;
    for (const auto& [node, n] : per_node) s.per_node = std::max(s.per_node, n);
    return s;
}

std::string ParallelDims::factors() const {
    std::string s = "world " + std::to_string(world()) + " = replicate " + std::to_string(replicate) + " x shard " +
                    std::to_string(shard);
    if (secondary > 1) s += "; secondary " + std::to_string(secondary) + " inside shard";
    return s;
}

Groups::Groups(const ParallelDims& dims) : dims_(dims) {
    groups_.resize(kGroupCount);
    groups_[kWorldGroup] = {"world", dims.world(), 1};
    groups_[kShardGroup] = {"shard", dims.shard, 1};
    groups_[kReplicateGroup] = {"replicate", dims.replicate, dims.shard};
    groups_[kSecondaryGroup] = {"secondary", dims.secondary, 1};
}

}  // namespace shardsim::plan
