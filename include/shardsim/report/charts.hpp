#pragma once
// Inline SVG charts of one rank, drawn in C++ so that the HTML page needs no script library and
// no network: memory over the step stacked by category with the device's capacity, and a Gantt of
// the ops on each stream. A second timeline (the --compare file) is overlaid on the same axes:
// its total memory as a dashed line, its ops as dashed outlines in the same lanes; when the two
// steps differ in length by more than kOwnAxisRatio, each gets its own time axis (the other's
// labels along the top), so that both read at their own scale. The memory chart outlines the
// device total too, so that a peak inside an op (two samples at one time: a spike of no width,
// which an area cannot show) is drawn, with the peak's dot on it.
//
// Big timelines are thinned before drawing, and the page says by how much:
//   memory  at most `max_samples` samples: the step is cut into max_samples / 2 slices of time
//           and each keeps its first sample and its fullest one, so no peak is lost
//   ops     per lane, ops narrower than a pixel that follow each other within a pixel become one
//           block ("37 ops: 30 forward, 7 all_gather"); the pixel grows until a lane holds at
//           most `max_ops` blocks
#include <cstddef>
#include <string>
#include <vector>

#include "shardsim/timeline/timeline.hpp"

namespace shardsim::report {

// What one chart shows: a timeline and, optionally, the one it is compared with.
struct ChartInput {
    const timeline::RunTimeline* run = nullptr;
    const timeline::RankTimeline* tl = nullptr;
    const timeline::RunTimeline* other_run = nullptr;  // dashed overlay, may be null
    const timeline::RankTimeline* other = nullptr;
    std::string label = "measured";                    // legend words for each
    std::string other_label = "simulated";
};

// Axes shared by every rank's charts, so that ranks line up.
struct ChartScales {
    double t_max = 0;              // seconds
    // > 0: the compared timeline is drawn on its own time axis (labelled along the top), from 0 to
    // this: the two files' steps differ so much in length that one axis would squeeze the shorter
    // into a corner. 0: both share t_max.
    double other_t_max = 0;
    double bytes_max = 0;          // memory axis top
    double capacity_bytes = 0;     // the device's capacity (0: unknown)
    bool capacity_on_scale = true; // a line at the capacity, or a note that it is above the axis
    std::vector<plan::OpStream> lanes;
    std::size_t max_samples = 1500;
    std::size_t max_ops = 1500;    // blocks per lane and timeline
};

// How much of a timeline a chart drew.
struct DrawCount {
    std::size_t items = 0;
    std::size_t drawn = 0;
};

// A run of ops drawn as one rectangle.
struct OpBlock {
    double t0 = 0, t1 = 0;
    std::vector<const timeline::OpRecord*> ops;  // in time order; one for an op drawn alone
};

std::vector<timeline::MemorySample> thin_samples(const std::vector<timeline::MemorySample>& samples, double t_max,
                                                 std::size_t max_samples);
// `lane_ops` in start order; `pixel_s` the seconds one pixel spans.
std::vector<OpBlock> merge_ops(const std::vector<const timeline::OpRecord*>& lane_ops, double pixel_s, std::size_t max_ops);

// The last time a timeline records (an op's end or a sample).
double timeline_end(const timeline::RankTimeline& tl);

// Width of the charts in SVG user units (they scale to the page).
inline constexpr double kChartWidth = 1200;
// Steps whose lengths differ by more than this factor get a time axis each.
inline constexpr double kOwnAxisRatio = 2.0;

std::string memory_chart(const ChartInput& in, const ChartScales& s, DrawCount& samples);
std::string gantt_chart(const ChartInput& in, const ChartScales& s, DrawCount& ops);

// The colours the charts use, for the page's legend.
std::string category_colour(MemCategory c);
std::string op_colour(plan::OpKind k);

std::string html_escape(const std::string& s);

}  // namespace shardsim::report
