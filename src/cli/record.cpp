#include "shardsim/cli/record.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include "shardsim/comm/mpi.hpp"
#include "shardsim/exec/gather.hpp"

namespace shardsim::cli {

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int signal) {
    if (g_stop_signal != 0) {
        // The second one: the user means it. Default action, now.
        std::signal(signal, SIG_DFL);
        std::raise(signal);
        return;
    }
    g_stop_signal = signal;
    // Whoever reads our output may be going too: mpirun, signalled, stops reading its ranks'
    // output and kills them a second later. A write to that output must neither end the process
    // (SIGPIPE) nor block it (a full pipe) before its file is closed: from now on output is best
    // effort. A write blocked right now is restarted after this handler and finds the pipe
    // non-blocking. (sigaction and fcntl are async-signal-safe.)
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ignore, nullptr);
    for (int fd : {STDOUT_FILENO, STDERR_FILENO}) {
        const int flags = fcntl(fd, F_GETFL);
        if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    }
}

}  // namespace

void install_stop_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;  // the step goes on: interrupted system calls resume
    for (int s : {SIGTERM, SIGINT}) sigaction(s, &sa, nullptr);
}

int agreed_stop_signal(MPI_Comm comm) {
    const int mine = g_stop_signal;
    int any = 0;
    SHARDSIM_MPI_CHECK(MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, comm));
    return any;
}

std::string signal_name(int signal) {
    switch (signal) {
        case SIGTERM: return "SIGTERM";
        case SIGINT: return "SIGINT";
        default: return "signal " + std::to_string(signal);
    }
}

MeasuredRecord::MeasuredRecord(const RunContext& ctx, std::int64_t steps, const std::string& out, int world_rank)
    : ctx_(ctx), run_(ctx.run_attributes), world_rank_(world_rank) {
    run_.steps = steps;
    run_.timelines.clear();
    run_.class_of_rank.clear();
    if (world_rank_ == 0 && !out.empty()) file_ = std::make_unique<io::RunFileAppender>(out, run_);
}

MeasuredRecord::~MeasuredRecord() = default;

void MeasuredRecord::add_step(int step) {
    timeline::RankTimeline mine = ctx_.executor->timeline().only_step(step);
    mine.host = comm::host_name();
    std::vector<timeline::RankTimeline> all = exec::gather_timelines(mine, MPI_COMM_WORLD);
    ++recorded_;
    if (world_rank_ != 0) return;
    if (file_)
        file_->append(all, "running: step " + std::to_string(recorded_) + " of " + std::to_string(run_.steps) +
                               " written; a run that is not running any more ended here without finishing");
    if (run_.timelines.empty()) {
        run_.timelines = std::move(all);
        for (std::size_t r = 0; r < run_.timelines.size(); ++r) run_.class_of_rank.push_back(static_cast<int>(r));
        return;
    }
    for (std::size_t r = 0; r < all.size(); ++r) {
        auto& tl = run_.timelines[r];
        tl.ops.insert(tl.ops.end(), all[r].ops.begin(), all[r].ops.end());
        tl.memory.insert(tl.memory.end(), all[r].memory.begin(), all[r].memory.end());
    }
}

timeline::RunTimeline MeasuredRecord::finish(bool complete, const std::string& completion) {
    run_.complete = complete;
    run_.completion = completion;
    if (file_) {
        file_->finish(complete, completion);
        file_.reset();
    }
    return run_;
}

timeline::RunTimeline collect_measured(const RunContext& ctx, std::int64_t steps, const std::string& out) {
    int rank = 0;
    SHARDSIM_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MeasuredRecord record(ctx, steps, out, rank);
    for (int s = 0; s < steps; ++s) record.add_step(s);
    return record.finish(true, "finished");
}

}  // namespace shardsim::cli
