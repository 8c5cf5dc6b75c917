#pragma once
// The collective model: the time of one all-gather, reduce-scatter or all-reduce on a group, as
// NCCL runs it (and, with calibrated numbers, as MPI runs it on a CPU host). docs/topologies.md
// explains every term; in short:
//
//   algorithms  ring for every collective; for all-reduce also NCCL's tree (a chain inside each
//               node, a binary tree across nodes), whichever is faster, as NCCL's tuner picks
//   protocols   LL (8-byte stores with a flag: lowest latency, a quarter to a third of the
//               bandwidth), LL128 (128-byte lines with 120 bytes of data, NVLink only) and Simple
//               (full bandwidth, highest latency): the fastest wins, so small sizes are
//               latency-bound and large ones bandwidth-bound
//   time        base latency + hops x hop latency + bus bytes / (bus bandwidth x protocol share)
//               + reduced bytes / reduction rate (a CPU host's MPI adds at memory speed; NCCL's
//               reduction rides along the copy and costs nothing extra)
//   links       a level's bus bandwidth is bandwidth x efficiency (published nccl-tests figures,
//               cited per topology); groups spanning nodes cross the network `nodes - 1` times per
//               ring pass and use the node's NICs; pcie-no-p2p stages every hop through host memory
//               (two PCIe crossings in turn: twice the hop latency, half the bandwidth, and the
//               node's host path shared by its GPUs), the path offload copies use too
//   cache       shm (a CPU host's MPI): the share of the node's buffers beyond cache_bytes moves
//               and is added spill_slowdown times slower ([Note: a CPU host's cache])
//   placement   shm: MPI copies a rank's own data between send and receive buffers, at copy_Bps
//               ([Note: MPI's out-of-place copy]); NCCL's placement costs nothing here
//
// The latency constants are NCCL's tuning model (src/graph/tuning.cc, NCCL 2.18-2.21: baseLat,
// hwLat per NVLink / PCI / network path, the LL / LL128 bandwidth shares), as remembered; a
// level's latency_us is its ring Simple hop latency and scales the rest of its row.
#include <cstdint>
#include <string>

#include "shardsim/config/topology.hpp"
#include "shardsim/plan/collective.hpp"
#include "shardsim/plan/groups.hpp"

namespace shardsim::sim {

using plan::GroupSpan;

enum class Protocol { ll, ll128, simple };
enum class Algorithm { ring, tree };
std::string protocol_name(Protocol p);   // "LL", "LL128", "Simple"
std::string algorithm_name(Algorithm a);  // "ring", "tree"

// One level of links: between the GPUs of a node, or between nodes.
struct LevelLinks {
    config::LinkKind kind = config::LinkKind::none;
    double bandwidth_Bps = 0;  // datasheet, one direction: per GPU (intra), per NIC (inter)
    double efficiency = 1;     // achieved bus bandwidth / bandwidth at large sizes
    double latency_s = 0;      // per ring hop, Simple protocol
    double busbw_Bps() const { return bandwidth_Bps * efficiency; }
};

// Link parameters the collective model uses; from the topology, or fitted by `calibrate`.
struct LinkModel {
    LevelLinks intra, inter;
    std::int64_t nics = 1;
    std::int64_t gpus_per_node = 1;
    double reduce_Bps = 0;    // rate a rank adds received bytes; 0: free (rides along the copy)
    double host_bus_Bps = 0;  // pcie-no-p2p: the node's path to host memory, one direction
    double cache_bytes = 0;   // shm: the cache a collective's buffers stay in (0: no cache term)
    double spill_extra = 0;   // shm: spill_slowdown - 1, the extra time of the bytes beyond it
    double copy_Bps = 0;      // shm: the rate MPI copies a rank's own data in an out-of-place call (0: free)

    static LinkModel from(const config::TopologyConfig& t);
    bool staged() const { return intra.kind == config::LinkKind::pcie_no_p2p; }
};

struct CollectiveEstimate {
    double time_s = 0;
    Algorithm algorithm = Algorithm::ring;
    Protocol protocol = Protocol::simple;
};

// The fastest (algorithm, protocol) for one collective of nccl-tests size `size_bytes` on `span`,
// called in place (send and receive one buffer, NCCL's convention) or not.
CollectiveEstimate estimate_collective(const LinkModel& links, plan::CollectiveKind kind, std::int64_t size_bytes,
                                       const GroupSpan& span, bool in_place);
double collective_time(const LinkModel& links, plan::CollectiveKind kind, std::int64_t size_bytes, const GroupSpan& span,
                       bool in_place);
// The bytes a rank copies between its own send and receive buffers on MPI ([Note: MPI's
// out-of-place copy]).
double own_copy_bytes(plan::CollectiveKind kind, std::int64_t size_bytes, std::int64_t ranks, bool in_place);

// True when this collective's traffic crosses the node's host path (pcie-no-p2p inside a node):
// the simulator queues it on the host lane with the offload copies.
bool uses_host_path(const LinkModel& links, const GroupSpan& span);

// shm within a node: 1 + the share of the node's collective buffers beyond the cache x
// spill_extra, the factor on the collective's transfer, reduction and copy time; 1 otherwise.
double spill_factor(const LinkModel& links, plan::CollectiveKind kind, std::int64_t size_bytes, const GroupSpan& span, bool in_place);

}  // namespace shardsim::sim
