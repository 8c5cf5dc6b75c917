#pragma once
// What `run` (and `validate`) keep of a measured run while it goes, and how it ends early.
//
// Nothing measured is lost: rank 0 gathers every rank's timeline of each step as it finishes and,
// when there is an output file, appends it to FILE.partial and flushes it (io::RunFileAppender);
// the file is renamed to FILE when the run ends. A run that dies (kill -9 of a rank, a node lost)
// leaves FILE.partial, readable, complete = 0, with every step finished before. SIGTERM or SIGINT
// on any rank asks every rank to stop after the step it is in: the file is closed with what
// stopped it (complete = 0) and renamed to FILE, and the run exits with 128 + the signal's number
// (143 for SIGTERM, 130 for SIGINT), the code a shell gives a process that signal ended.
#include <cstdint>
#include <memory>
#include <string>

#include <mpi.h>

#include "shardsim/cli/run_setup.hpp"
#include "shardsim/io/hdf5.hpp"
#include "shardsim/timeline/timeline.hpp"

namespace shardsim::cli {

// SIGTERM and SIGINT ask the run to stop after its current step; a second one ends the process
// at once (the default action). Install before the work they should interrupt.
void install_stop_handlers();
// Collective over `comm`: the signal any rank received so far (the highest number if several), 0
// when none; every rank gets the same answer.
int agreed_stop_signal(MPI_Comm comm);
inline int stop_exit_code(int signal) { return 128 + signal; }
std::string signal_name(int signal);  // "SIGTERM"

// The measured run as it grows. Every member function is collective over MPI_COMM_WORLD.
class MeasuredRecord {
public:
    // `out`: the timeline file ("" for none); rank 0 creates out + ".partial" here.
    MeasuredRecord(const RunContext& ctx, std::int64_t steps, const std::string& out, int world_rank);
    ~MeasuredRecord();

    // Step `step` has finished on every rank: its timelines go to rank 0, which appends them to
    // the file and flushes it.
    void add_step(int step);
    // The run has ended (complete, or stopped: `completion` says how): rank 0 closes the file and
    // renames it to `out`, and gets the whole measured run (rank r -> timeline r); other ranks get
    // its attributes without timelines.
    timeline::RunTimeline finish(bool complete, const std::string& completion);

    std::int64_t steps_recorded() const { return recorded_; }

private:
    const RunContext& ctx_;
    timeline::RunTimeline run_;
    std::unique_ptr<io::RunFileAppender> file_;  // rank 0, with an output file
    std::int64_t recorded_ = 0;
    int world_rank_ = 0;
};

}  // namespace shardsim::cli
