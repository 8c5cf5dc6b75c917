#pragma once
// `shardsim report`: one timeline file, predicted or measured, optionally beside another, as text
// and JSON. The figures are summary.hpp's (the keys `simulate` and `run` print); a report adds
// where in the step the peak happens, comm per rank group and compute utilisation, and looks at
// one optimizer step of a file that recorded several. The HTML page (html.hpp) and the Chrome
// trace (chrome_trace.hpp) start from the same LoadedRun.
#include <string>
#include <vector>

#include "shardsim/io/json.hpp"
#include "shardsim/timeline/timeline.hpp"

namespace shardsim::report {

// A file as a report sees it: narrowed to the step it shows.
struct LoadedRun {
    std::string path;
    timeline::RunTimeline run;   // the shown step only, its times from that step's start
    timeline::RunTimeline full;  // every step, as read
    int step = 0;                // the step shown
    std::vector<int> steps;      // steps the file recorded
};

// Distinct OpRecord::step values of a run, sorted ({0} for a run without ops).
std::vector<int> recorded_steps(const timeline::RunTimeline& run);

// The ops and memory samples of one step (-1: the last recorded), shifted so that the step starts
// at t = 0. A step that is not recorded is an InputError naming the recorded ones.
timeline::RunTimeline select_step(const timeline::RunTimeline& run, int step);

// Where each step starts on a common clock: files whose every step starts at 0 get their steps
// laid end to end; files with one running clock keep it (offset 0). Indexed like recorded_steps.
std::vector<double> step_offsets(const timeline::RankTimeline& tl, const std::vector<int>& steps);

// A file whose run did not finish (complete = 0: stopped by a signal, or left by a run that died)
// is an InputError naming it, why and the steps it holds, unless `allow_incomplete`.
void require_complete(const timeline::RunTimeline& run, const std::string& path, bool allow_incomplete);

// io::read_run_file, refusing an incomplete file as require_complete does; when `path` is missing
// but the .partial file a run that died leaves is there, the error says so.
timeline::RunTimeline read_timeline_file(const std::string& path, bool allow_incomplete);

// Reads `path` and selects `step` (-1: the last; a step the file lacks falls back to its last
// when `fallback_to_last`, which is how the --compare file is read). An incomplete file is
// refused unless `allow_incomplete` (see require_complete).
LoadedRun load_run(const std::string& path, int step, bool fallback_to_last = false, bool allow_incomplete = false);

// "measured" for mode run, "simulated" for mode simulate.
std::string source_label(const timeline::RunTimeline& run);

// The device's dense peak for the job's compute dtype (precision.params), from the topology and
// job texts stored in the file (the effective ones when present).
struct ComputePeak {
    bool known = false;
    std::string dtype;
    std::string device;
    double flops_per_s = 0;
    std::string why_unknown;
};
ComputePeak compute_peak(const timeline::RunTimeline& run);

// "312 TFLOP/s", "96.0 GFLOP/s": a CPU rank computes at GFLOP/s, a GPU at TFLOP/s.
std::string format_si(double value, const std::string& unit);

// The sample where a rank's device memory peaks (the first at the maximum), nullptr without samples.
const timeline::MemorySample* peak_sample(const timeline::RankTimeline& tl);

// summary_json of the shown step, plus: file, step, steps_in_file, source, compute_peak, and in
// every `ranks` entry peak_unit, peak_kind, peak_t_s, peak_at_fraction, achieved_tflops,
// compute_utilisation (achieved over peak while computing), model_flops_utilisation (over the
// whole step), step/compute/comm/exposed times and per-kind comm (size, wire, algbw, busbw).
// With `compare`, the other file's report goes under "compare".
io::Json report_json(const LoadedRun& run, const LoadedRun* compare = nullptr);

// The text: summary_text, then a table per rank group of what report_json adds, then (with
// `compare`) the two files' headline figures side by side.
std::string report_text(const LoadedRun& run, const LoadedRun* compare = nullptr);

}  // namespace shardsim::report
