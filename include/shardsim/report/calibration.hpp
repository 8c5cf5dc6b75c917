#pragma once
// What `shardsim calibrate` prints and writes: the fitted values per link level, how well the
// fitted model predicts the sweep (median and max relative error, per op), and the comment
// block of the calibrated topology file (the error of every size). Text and JSON from one call.
#include <string>
#include <vector>

#include "shardsim/bench/collectives.hpp"
#include "shardsim/io/json.hpp"
#include "shardsim/sim/calibrate.hpp"

namespace shardsim::report {

struct CalibrationInput {
    std::string bench_path;
    std::string topology_name;
    const bench::BenchRun* bench = nullptr;
    std::vector<sim::Measurement> points;  // parallel to bench->rows
    std::int64_t min_bytes = 0;            // the sizes the fit used (errors are stated over them)
    std::int64_t max_bytes = 0;
    sim::LinkModel before;                 // the input topology's links
    sim::Calibration fit;
    sim::LinkModel after;                  // read back from the written topology text
};

struct CalibrationReport {
    io::Json json;
    std::string text;      // the summary printed to the terminal
    std::string preamble;  // comment lines for the head of the calibrated topology file
};

CalibrationReport calibration_report(const CalibrationInput& in);

}  // namespace shardsim::report
