#include "shardsim/sim/links.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace shardsim::sim {

using config::LinkKind;
using plan::CollectiveKind;

std::string protocol_name(Protocol p) {
    switch (p) {
        case Protocol::ll: return "LL";
        case Protocol::ll128: return "LL128";
        case Protocol::simple: return "Simple";
    }
    return "?";
}

std::string algorithm_name(Algorithm a) { return a == Algorithm::ring ? "ring" : "tree"; }

LinkModel LinkModel::from(const config::TopologyConfig& t) {
    LinkModel l;
    l.intra = {t.intra.kind, t.intra.bandwidth_gbps * 1e9, t.intra.efficiency, t.intra.latency_us * 1e-6};
    l.inter = {t.inter.kind, t.inter.bandwidth_gbps * 1e9, t.inter.efficiency, t.inter.latency_us * 1e-6};
    l.nics = t.inter.nics;
    l.gpus_per_node = t.gpus_per_node;
    l.reduce_Bps = t.gpu.reduce_gbps * 1e9;
    l.host_bus_Bps = t.intra.host_bus_gbps * 1e9;
    l.cache_bytes = t.intra.cache_mib * static_cast<double>(kMiB);
    l.spill_extra = t.intra.spill_slowdown - 1;
    l.copy_Bps = t.intra.copy_gbps * 1e9;
    return l;
}

namespace {

// NCCL's tuning model (src/graph/tuning.cc), in microseconds, [algorithm][protocol] with
// algorithms {tree, ring} and protocols {LL, LL128, Simple}: the latency of a call, and of one hop
// on an NVLink, PCI or network path. Only the ratios within a path's row are used (the level's
// latency_us is its ring Simple hop); see the header for the caveat on provenance.
using Row = std::array<std::array<double, 3>, 2>;
constexpr Row kBaseLatency_us = {{{6.8, 14.0, 0.0}, {6.6, 14.0, 8.4}}};
constexpr Row kHopNvlink_us = {{{0.6, 1.25, 4.0}, {0.6, 1.9, 3.4}}};
constexpr Row kHopPci_us = {{{1.0, 1.9, 6.0}, {1.0, 2.5, 5.7}}};
constexpr Row kHopNet_us = {{{5.0, 8.5, 14.0}, {2.7, 4.0, 14.0}}};

const Row& hop_row(LinkKind k) {
    switch (k) {
        case LinkKind::nvlink:
        case LinkKind::nvswitch: return kHopNvlink_us;
        case LinkKind::infiniband:
        case LinkKind::ethernet: return kHopNet_us;
        default: return kHopPci_us;
    }
}

std::size_t ai(Algorithm a) { return a == Algorithm::tree ? 0 : 1; }
std::size_t pi(Protocol p) { return static_cast<std::size_t>(p); }

// One hop of `level` with this algorithm and protocol. Staging through host memory takes two
// PCIe crossings one after the other.
double hop_s(const LevelLinks& level, Algorithm a, Protocol p) {
    const Row& r = hop_row(level.kind);
    const double scale = level.latency_s / r[1][2];
    const double staged = level.kind == LinkKind::pcie_no_p2p ? 2.0 : 1.0;
    return staged * scale * r[ai(a)][pi(p)];
}

// The call's fixed latency, scaled like the slowest level it crosses.
double base_s(const LevelLinks& slowest, Algorithm a, Protocol p) {
    return slowest.latency_s / hop_row(slowest.kind)[1][2] * kBaseLatency_us[ai(a)][pi(p)];
}

// The share of the bus bandwidth a protocol delivers: LL carries 4 bytes of data per 8-byte
// store and NCCL's tuner counts a quarter (all-reduce, or across nodes) or a third of the
// bandwidth; LL128 carries 120 bytes per 128-byte line.
double protocol_share(Protocol p, CollectiveKind k, bool multi_node) {
    switch (p) {
        case Protocol::ll: return k == CollectiveKind::all_reduce || multi_node ? 1.0 / 4.0 : 1.0 / 3.0;
        case Protocol::ll128: return 120.0 / 128.0;
        case Protocol::simple: return 1.0;
    }
    return 1.0;
}

// LL128 needs NVLink between the GPUs of a node (NCCL enables it only there by default).
bool protocol_available(const LinkModel& l, Protocol p) {
    if (p != Protocol::ll128) return true;
    return l.intra.kind == LinkKind::nvlink || l.intra.kind == LinkKind::nvswitch;
}

// Bus bandwidth of a ring over `g`, bytes/s per rank.
double ring_busbw(const LinkModel& l, const GroupSpan& g) {
    double intra = l.intra.busbw_Bps();
    if (l.staged()) {
        // Two crossings per byte, and the node's GPUs share its path to host memory.
        intra = std::min(intra / 2, l.host_bus_Bps * l.intra.efficiency / static_cast<double>(std::max<std::int64_t>(1, g.per_node)));
    }
    if (g.nodes <= 1) return intra;
    const double node = l.inter.busbw_Bps() * static_cast<double>(l.nics);
    // One rank per node: the node's other ranks run the same collective on their own rails.
    return g.per_node == 1 ? node / static_cast<double>(std::max<std::int64_t>(1, l.gpus_per_node)) : std::min(intra, node);
}

struct Hops {
    double intra = 0, inter = 0;
};

Hops hops(Algorithm a, CollectiveKind k, const GroupSpan& g) {
    const double passes = k == CollectiveKind::all_reduce ? 2.0 : 1.0;
    if (a == Algorithm::tree)  // a chain inside each node, a binary tree across nodes; up and down
        return {2.0 * static_cast<double>(g.per_node - 1), 2.0 * std::ceil(std::log2(static_cast<double>(g.nodes)))};
    const double inter = g.nodes > 1 ? passes * static_cast<double>(g.nodes - 1) : 0.0;
    return {passes * static_cast<double>(g.ranks - 1) - inter, inter};
}

double candidate_time(const LinkModel& l, CollectiveKind k, std::int64_t size, const GroupSpan& g, Algorithm a, Protocol p,
                      double spill) {
    const bool multi = g.nodes > 1;
    const LevelLinks& slowest = multi ? l.inter : l.intra;
    const Hops h = hops(a, k, g);
    double bw = ring_busbw(l, g) * protocol_share(p, k, multi);
    if (a == Algorithm::tree) bw *= 0.92;  // NCCL's tuner: the tree's bandwidth is below the ring's
    if (!(bw > 0)) return std::numeric_limits<double>::infinity();
    const double latency = base_s(slowest, a, p) + h.intra * hop_s(l.intra, a, p) + (multi ? h.inter * hop_s(l.inter, a, p) : 0.0);
    return latency + spill * static_cast<double>(size) * plan::bus_factor(k, g.ranks) / bw;
}

// Bytes each rank adds: a reduce-scatter's, or an all-reduce's reduce-scatter half, (n-1)/n of
// the buffer.
double reduced_bytes(CollectiveKind k, std::int64_t size, std::int64_t n) {
    if (k != CollectiveKind::reduce_scatter && k != CollectiveKind::all_reduce) return 0;
    return static_cast<double>(size) * static_cast<double>(n - 1) / static_cast<double>(n);
}

}  // namespace

CollectiveEstimate estimate_collective(const LinkModel& l, CollectiveKind kind, std::int64_t size, const GroupSpan& g, bool in_place) {
    CollectiveEstimate best;
    if (g.ranks <= 1 || size <= 0) return best;
    best.time_s = std::numeric_limits<double>::infinity();
    const double spill = spill_factor(l, kind, size, g, in_place);
    for (Algorithm a : {Algorithm::ring, Algorithm::tree}) {
        if (a == Algorithm::tree && kind != CollectiveKind::all_reduce) continue;
        for (Protocol p : {Protocol::ll, Protocol::ll128, Protocol::simple}) {
            if (!protocol_available(l, p)) continue;
            const double t = candidate_time(l, kind, size, g, a, p, spill);
            if (t < best.time_s) best = {t, a, p};
        }
    }
    if (l.reduce_Bps > 0) best.time_s += spill * reduced_bytes(kind, size, g.ranks) / l.reduce_Bps;
    if (l.intra.kind == LinkKind::shm && l.copy_Bps > 0) best.time_s += spill * own_copy_bytes(kind, size, g.ranks, in_place) / l.copy_Bps;
    return best;
}

double collective_time(const LinkModel& l, CollectiveKind kind, std::int64_t size, const GroupSpan& g, bool in_place) {
    return estimate_collective(l, kind, size, g, in_place).time_s;
}

// [Note: MPI's out-of-place copy] Open MPI's collectives (ompi/mca/coll/base, 4.1) copy a
// rank's own data between its buffers, at memory-copy speed, besides what they send and add:
//   - an out-of-place all-gather first copies the rank's block into the receive buffer (size / n),
//     an out-of-place all-reduce its whole send buffer (size); in place, nothing;
//   - reduce-scatter by recursive halving (the algorithm shardsim asks for: [Note: Open MPI's
//     reduce-scatter]) copies the whole input into a temporary buffer (size) and the rank's
//     result out of it (size / n) in either placement; in place MPI leaves the result at the
//     buffer's start, and shardsim's MPI wrapper moves it to the rank's block (NCCL's convention,
//     comm/mpi.cpp): size / n more, on every rank but the first.
// `calibrate` fits the copy rate when the sweep has both placements (bench measures both). On
// this project's VM, 2 ranks, bf16: an out-of-place all-reduce runs 15-25% slower than in place
// from 256 KiB, and the fitted rate is 40-70 GB/s. The executor runs all-reduce in place and the
// others out of place (plan::executor_in_place).
double own_copy_bytes(CollectiveKind k, std::int64_t size, std::int64_t n, bool in_place) {
    const double s = static_cast<double>(size), ranks = static_cast<double>(std::max<std::int64_t>(1, n));
    switch (k) {
        case CollectiveKind::all_gather: return in_place ? 0.0 : s / ranks;
        case CollectiveKind::all_reduce: return in_place ? 0.0 : s;
        case CollectiveKind::reduce_scatter: return s + s / ranks + (in_place ? s / ranks : 0.0);  // into and out of the temporary
        case CollectiveKind::broadcast: return 0.0;
    }
    return 0.0;
}

bool uses_host_path(const LinkModel& l, const GroupSpan& g) { return l.staged() && g.ranks > 1 && g.per_node > 1; }

// [Note: a CPU host's cache] MPI's shared-memory transport moves every byte with the CPU: the
// sender's buffer to the receiver's (one copy through the kernel, or two through a shared
// segment), and a reduction reads both operands and writes the sum. While the buffers of the
// node's ranks fit the last-level cache those copies run at cache speed; beyond it, the share of
// them that does not fit comes from memory. Measured on this project's 2-core VM (32 MiB of L3,
// shared with whatever else runs on the host): a 2-rank all-gather's bus bandwidth 10-11 GB/s from
// 1 to 4 MiB, 9.9 at 8 MiB, 5.6 at 16 MiB; reduce-scatter 4.1 -> 2.0, all-reduce 6.6 -> 3.8 GB/s
// alike. So the transfer and reduction time of a collective within a node of shm links is
// multiplied by 1 + m x (spill_slowdown - 1), m = the share of the node's buffers beyond
// cache_mib: max(0, 1 - cache / W), W = ranks on the node x the buffers one call touches (n the
// group's ranks, size nccl-tests' size; [Note: MPI's out-of-place copy] for the algorithms):
//   all-gather      the receive buffer (size), and the send buffer out of place (size / n);
//   all-reduce      the buffer (size) in place; send and receive buffers (2 x size) out of place;
//   reduce-scatter  the input (size) and recursive halving's temporary copy of it (size), and the
//                   receive buffer out of place (size / n).
// How much of the cache a collective keeps, and how much slower memory is, depend on the host and
// on what else runs there: `calibrate` fits both to the sweep (cache_mib at most the cache the
// host reports). NCCL's links are not CPU copies: no such term there.
double spill_factor(const LinkModel& l, CollectiveKind k, std::int64_t size, const GroupSpan& g, bool in_place) {
    if (l.intra.kind != LinkKind::shm || g.nodes > 1 || !(l.cache_bytes > 0) || !(l.spill_extra > 0) || g.ranks <= 1) return 1.0;
    const double s = static_cast<double>(size), n = static_cast<double>(g.ranks);
    double per_rank = 0;
    switch (k) {
        case CollectiveKind::all_gather: per_rank = in_place ? s : s + s / n; break;
        case CollectiveKind::all_reduce: per_rank = in_place ? s : 2 * s; break;
        case CollectiveKind::reduce_scatter: per_rank = 2 * s + (in_place ? 0 : s / n); break;
        case CollectiveKind::broadcast: per_rank = s; break;
    }
    const double w = static_cast<double>(g.per_node) * per_rank;
    const double beyond = std::max(0.0, 1.0 - l.cache_bytes / w);
    return 1.0 + beyond * l.spill_extra;
}

}  // namespace shardsim::sim
