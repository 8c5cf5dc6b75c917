#pragma once
// `shardsim report --html`: one self-contained page (inline SVG from charts.hpp, inline CSS and a
// few lines of script of our own; nothing is fetched) with, per rank: memory over the step stacked
// by category with the capacity line, and a Gantt of the ops on each stream; with --compare the
// other file overlaid dashed on the same axes; headline figures, the text report's tables and the
// effective configuration of each file.
//
// Ranks with identical timelines (in both files) are one panel. Beyond `max_panels` panels, ranks
// are folded by identical memory figures (group_ranks) and the slowest rank of a group is drawn;
// beyond that, the first `max_panels` groups are drawn and the page says how many are not.
// Charts are thinned as charts.hpp describes; the page says what was thinned.
#include <cstddef>
#include <string>

#include "shardsim/report/report.hpp"

namespace shardsim::report {

struct HtmlOptions {
    std::size_t max_panels = 16;
    std::size_t max_samples = 1500;     // memory samples per rank and file
    std::size_t max_ops = 1500;         // drawn op blocks per lane, rank and file
    std::size_t max_page_ops = 60000;   // drawn op blocks in the whole page (lowers max_ops)
};

std::string render_html(const LoadedRun& run, const LoadedRun* compare = nullptr, const HtmlOptions& options = {});

}  // namespace shardsim::report
