#pragma once
// `simulate --sweep key=v1,v2,... [--sweep key2=...]`: the same job simulated once per point of
// the grid the keys make, one row each — how memory, communication and throughput change with
// world size, micro-batch, prefetching or strategy. Rows come from report::summary_json, so they
// mean what `simulate` says. A point the plan refuses is a row with the reason, not an abort:
// every row is checked on its own, so keys the base job cannot validate alone (hybrid sharding
// swept over topology.cluster.nodes from a one-node topology) sweep freely.
#include <string>
#include <vector>

#include "shardsim/io/json.hpp"

namespace shardsim::study {

struct Sweep {
    std::string key;                  // a job key (section.key) or topology.section.key
    std::vector<std::string> values;
};

// "key=v1,v2,..." (InputError naming the argument when malformed).
Sweep parse_sweep(const std::string& arg);

struct SweepOptions {
    std::string out_dir;  // one HDF5 timeline file per valid row (row-<n>.h5); "" for none
};

struct SweepReport {
    io::Json json;     // {"job", "key", "keys", "rows": [{value, values, error | world_size, peak_bytes, fits, ...}]}
    std::string text;  // the same rows as a table
    std::string csv;   // the same rows flattened, one line each, with a header
    int valid = 0;     // rows the plan accepted
};

// Simulates `job` with `sets` plus one key=value per sweep, for every point of the grid (the first
// sweep varies slowest). A point that is bad input is a row with its one-line reason, said as
// --sweep; when every point is, the first reason is thrown (InputError).
SweepReport run_sweep(const std::string& job, const std::vector<std::string>& sets, const std::vector<Sweep>& sweeps,
                      const SweepOptions& options = {});

}  // namespace shardsim::study
