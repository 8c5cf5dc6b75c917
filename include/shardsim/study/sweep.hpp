#pragma once
// `simulate --sweep key=v1,v2,...`: the same job simulated once per value of one key, one row
// each — how memory and communication overhead change with world size, micro-batch, prefetch
// depth or strategy. Rows come from report::summary_json, so they mean what `simulate` says.
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

struct SweepReport {
    io::Json json;     // {"job", "key", "rows": [{value, world_size, peak_bytes, fits, ...}]}
    std::string text;  // the same rows as a table
};

// Simulates `job` with `sets` plus key=value for each value. A bad key or value is the usual
// InputError, naming --sweep.
SweepReport run_sweep(const std::string& job, const std::vector<std::string>& sets, const Sweep& sweep);

}  // namespace shardsim::study
