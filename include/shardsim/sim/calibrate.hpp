#pragma once
// Fitting the collective model's link parameters (cost.hpp) to measured collective times — what
// `shardsim calibrate` does with a `shardsim bench` sweep.
//
// Each level is fitted on its own groups: intra_node on groups within one node, inter_node on
// groups spanning nodes (with intra_node already fitted: a group spanning nodes also crosses
// intra-node links). The parameters are the ones the collective model reads (links.hpp): the
// level's hop latency and achieved bus bandwidth, and inside a node the rate a rank adds what it
// receives (reduce_gbps; 0 when the reduction costs nothing extra, as on NCCL) and, on a CPU host's
// shared memory, the cache its buffers stay in and how much slower the bytes beyond it move
// (links.hpp's spill_factor; the cache searched, the slowdown fitted) and, when the sweep has both
// placements, the rate MPI copies a rank's own data in an out-of-place call. Within a piece of
// the model (one algorithm and protocol) time is linear in latency, 1/bandwidth and 1/rate. The
// fit minimises the squared log ratio of predicted to measured time over every op and size of
// the level — least squares on relative error that is symmetric (predicting twice the time costs
// as much as predicting half), so an 8-byte latency point and a 1 GiB bandwidth point count
// alike. It is solved by Gauss-Newton: each step linearises collective_time itself at the current
// estimate and solves a small least-squares problem with every parameter >= 0, halving the step
// until the error falls.
//
// Predictions are collective_time itself, so a calibrated topology predicts exactly what
// `simulate` will use.
#include <string>
#include <vector>

#include "shardsim/sim/links.hpp"

namespace shardsim::sim {

enum class LinkLevel { intra_node, inter_node };
// "intra_node" | "inter_node": the topology sections that hold the level's keys.
std::string link_level_name(LinkLevel l);
inline LinkLevel level_of(const GroupSpan& g) { return g.nodes > 1 ? LinkLevel::inter_node : LinkLevel::intra_node; }

struct Measurement {
    plan::CollectiveKind kind = plan::CollectiveKind::all_gather;
    std::int64_t size_bytes = 0;  // nccl-tests' size
    GroupSpan span;
    double time_s = 0;
    bool in_place = true;  // the placement it was measured in (bench measures both)
};

struct LevelFit {
    LinkLevel level = LinkLevel::intra_node;
    std::size_t points = 0;
    bool fitted = false;
    double latency_s = 0;       // ring Simple hop latency
    double busbw_Bps = 0;       // achieved bus bandwidth: intra_node per GPU, inter_node per NIC
    bool reduce_fitted = false;  // intra_node with reducing ops measured: the reduction rate too
    double reduce_Bps = 0;       // 0: reductions cost nothing beyond the transfer
    bool cache_fitted = false;   // intra_node on shm links: the cache term too ([Note: a CPU host's cache])
    double cache_bytes = 0;
    double spill_slowdown = 1;
    bool copy_fitted = false;    // intra_node on shm links, both placements measured: MPI's own-data copy rate
    double copy_Bps = 0;         // ([Note: MPI's out-of-place copy]); 0: free
    int iterations = 0;
    std::string note;  // why the level was not fitted
};

struct Calibration {
    LinkModel links;               // the starting model with every fitted level replaced
    std::vector<LevelFit> levels;  // intra_node, then inter_node
};

Calibration calibrate_links(const LinkModel& start, const std::vector<Measurement>& points);

// The model's time for a measurement's collective: collective_time itself.
double predicted_time(const LinkModel& links, const Measurement& m);
// (predicted - measured) / measured.
double relative_error(const LinkModel& links, const Measurement& m);

}  // namespace shardsim::sim
