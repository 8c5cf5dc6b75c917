// shardsim run: execute a job's plan across MPI ranks, measure it, check it against the plan.
#include <sys/sysinfo.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>

#include "shardsim/cli/options.hpp"
#include "shardsim/cli/record.hpp"
#include "shardsim/cli/run_checkpoint.hpp"
#include "shardsim/cli/run_setup.hpp"
#include "shardsim/comm/mpi.hpp"
#include "shardsim/comm/watchdog.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/exec/gather.hpp"
#include "shardsim/exec/verify.hpp"
#include "shardsim/device/backend.hpp"
#include "shardsim/io/hdf5.hpp"
#include "shardsim/report/header.hpp"
#include "shardsim/report/report.hpp"
#include "shardsim/report/summary.hpp"

namespace shardsim::cli {

namespace {

struct RunOptions {
    interop::Request req;  // --job, --set and the imported configs
    std::string backend = "auto";
    std::int64_t steps = 0;  // 0: the job's
    bool verify = false, json = false, force = false;
    bool has_out = false;
    std::string out;
    int threads = 1;
    double collective_timeout_s = 600;
    std::string checkpoint, resume;  // --checkpoint DIR, --resume DIR
    std::int64_t checkpoint_every = 0;
};

std::string progress_line(int step, int steps, double loss, double tokens_per_s, double elapsed) {
    const double eta = step > 0 ? elapsed / step * (steps - step) : 0;
    return "step " + std::to_string(step) + "/" + std::to_string(steps) + "  loss " + format_fixed(loss, 4) + "  " +
           format_fixed(tokens_per_s, 0) + " tokens/s  elapsed " + format_seconds(elapsed) + "  left " + format_seconds(eta);
}


// [Note: process footprint] The host memory a rank is predicted to hold is simulate's host figure
// (report::host_per_rank): what it offloads, the process itself (host.process_gib: libraries,
// MPI, BLAS, the CUDA runtime, the plan and its simulated prediction, the allocator's slack),
// pinned rounding, and on a CPU its device peak. run measures its resident size against it:
// VmRSS after every step, VmHWM at the end.
struct HostWatch {
    std::int64_t predicted = 0;  // this rank's share of the node's host memory
    std::int64_t process = 0;    // of which the process itself (host.process_gib)
    bool warned = false;

    HostWatch(const RunContext& ctx, int world_rank) {
        const auto& pred = ctx.prediction;
        const auto r = static_cast<std::size_t>(world_rank);
        if (r < pred.class_of_rank.size()) {
            const timeline::RankSummary s = pred.timelines.at(static_cast<std::size_t>(pred.class_of_rank[r])).summarize();
            predicted = report::host_per_rank(pred, s);
            // A GPU topology run on CPU ranks: its device is this host's memory too (as check_fit counts it).
            if (ctx.backend == device::Backend::mpi && !pred.host_is_device) predicted += s.peak_bytes;
        }
        process = pred.host_process_bytes;
    }
    // After a step: one warning per rank when the resident size passes the prediction (the
    // kernel's OOM killer, or Slurm's memory limit, may end the process).
    void check(int step, int world_rank) {
        const std::int64_t rss = device::process_resident_bytes();
        if (warned || rss <= predicted) return;
        warned = true;
        comm::say_from_rank(world_rank, "shardsim run: warning: resident size " + format_bytes(rss) + " after step " +
                                            std::to_string(step + 1) + " exceeds the " + format_bytes(predicted) +
                                            " of host memory predicted for this rank (of which " + format_bytes(process) +
                                            " for the process itself, host.process_gib)");
    }
};

// Rank 0 gets every rank's peak resident size and prediction (collective over the world).
struct HostUse {
    std::int64_t rss = 0, predicted = 0;
    int rank = 0;
};
HostUse largest_host_use(const HostWatch& w, int world_rank, int world_size) {
    const std::int64_t mine[2] = {device::process_peak_resident_bytes(), w.predicted};
    std::vector<std::int64_t> all(2 * static_cast<std::size_t>(world_size));
    SHARDSIM_MPI_CHECK(MPI_Gather(mine, 2, MPI_INT64_T, all.data(), 2, MPI_INT64_T, 0, MPI_COMM_WORLD));
    HostUse worst;
    if (world_rank != 0) return worst;
    for (int r = 0; r < world_size; ++r) {
        const auto i = 2 * static_cast<std::size_t>(r);
        if (r == 0 || all[i] - all[i + 1] > worst.rss - worst.predicted) worst = {all[i], all[i + 1], r};
    }
    return worst;
}

// One run's steps and what it prints, a phase per member function; every one is collective over
// the world. `start`: the steps a resumed checkpoint had done; the run goes on to the step count.
class StepLoop {
public:
    StepLoop(RunContext& ctx, const RunOptions& o, std::int64_t start, int world_rank, int world_size)
        : ctx_(ctx), o_(o), start_(start), saved_(start), rank_(world_rank), size_(world_size),
          steps_(o.steps > 0 ? o.steps : ctx.plan->scenario().job.steps) {}

    int run() {
        if (start_ >= steps_) return nothing_to_run();
        if (rank_ == 0 && !o_.json) std::cout << ctx_.startup_table << std::flush;
        ctx_.executor->set_first_step(static_cast<int>(start_));
        MeasuredRecord record(ctx_, steps_ - start_, o_.out, rank_);
        if (o_.verify) ctx_.executor->remember_first_step();
        HostWatch host(ctx_, rank_);
        const int stopped_by = train(record, host);
        if (stopped_by != 0) return stopped(record, stopped_by);
        checkpoint(steps_);
        return finished(record.finish(true, "finished"), host);
    }

private:
    // Nothing to train: with --checkpoint, the state is written again under this run's sharding
    // (a checkpoint resharded for another strategy or number of ranks).
    int nothing_to_run() {
        const std::string folder = o_.checkpoint.empty() ? std::string() : save_checkpoint(ctx_, o_.checkpoint, start_, rank_);
        if (rank_ == 0)
            std::cout << "shardsim run: the checkpoint in " << o_.resume << " has done " << start_ << " of " << steps_
                      << " step(s): nothing left to run (--steps sets the total)"
                      << (folder.empty() ? std::string() : "; its state written under this run's sharding to " + folder) << "\n";
        return 0;
    }

    void checkpoint(std::int64_t done) {
        if (o_.checkpoint.empty() || done == saved_) return;
        const std::string folder = save_checkpoint(ctx_, o_.checkpoint, done, rank_);
        saved_ = done;
        if (rank_ == 0 && !o_.json) std::cout << "checkpoint after step " << done << ": " << folder << "\n" << std::flush;
    }

    // The steps, until the last or a stop signal (returned; 0 when none came).
    int train(MeasuredRecord& record, HostWatch& host) {
        const auto& sc = ctx_.plan->scenario();
        // Encoder and decoder tokens, as the summary's tokens/s counts them (sim::throughput_attributes).
        const double tokens_per_step =
            static_cast<double>(sc.job.micro_batch * (sc.encoder_len() + sc.decoder_len()) * sc.job.grad_accum * ctx_.plan->groups().world());
        double elapsed = 0;
        int stopped_by = 0;
        for (int s = static_cast<int>(start_); s < steps_ && stopped_by == 0; ++s) {
            comm::watchdog::set_step(s);
            const exec::StepResult r = ctx_.executor->run_step(s);  // recorded as step s - start
            double loss = 0, seconds = 0;
            {
                const comm::InCollective watched(ctx_.step_group, "the step's loss, time and stop-signal all-reduces");
                SHARDSIM_MPI_CHECK(MPI_Allreduce(&r.loss, &loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
                SHARDSIM_MPI_CHECK(MPI_Allreduce(&r.seconds, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
                stopped_by = agreed_stop_signal(MPI_COMM_WORLD);
            }
            host.check(s, rank_);
            loss /= size_;
            losses_.push_back(loss);
            elapsed += seconds;
            // The file first: a step said done is a step in the file.
            {
                const comm::InCollective watched(ctx_.step_group, "gathering the step's timelines on rank 0 (--out)");
                record.add_step(s - static_cast<int>(start_));
            }
            if (o_.checkpoint_every > 0 && (s + 1) % o_.checkpoint_every == 0) checkpoint(s + 1);
            last_line_ = progress_line(s + 1, static_cast<int>(steps_), loss, tokens_per_step / seconds, elapsed);
            if (rank_ == 0 && !o_.json && stopped_by == 0)
                std::cout << (tty_ ? "\r" : "") << last_line_ << (tty_ ? (s + 1 == steps_ ? "   \n" : "   ") : "\n") << std::flush;
        }
        return stopped_by;
    }

    // Out of time (Slurm sends SIGTERM before the end) or asked to stop: checkpoint, close the file,
    // say so (the launcher may be gone already: the file comes first) and leave at once; the checks
    // and the summary would need the whole run.
    int stopped(MeasuredRecord& record, int stopped_by) {
        checkpoint(start_ + record.steps_recorded());
        const std::string why = "stopped by " + signal_name(stopped_by) + " after step " +
                                std::to_string(start_ + record.steps_recorded()) + " of " + std::to_string(steps_);
        record.finish(false, why);
        // Every rank waits for rank 0's file: a launcher that ends the job when a rank exits
        // non-zero (srun --kill-on-bad-exit, mpirun) must not take rank 0 before it is closed.
        SHARDSIM_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        if (rank_ == 0 && o_.json) {
            io::Json j = io::Json::object();
            j["complete"] = false;
            j["completion"] = why;
            j["stopped_by"] = signal_name(stopped_by);
            j["steps_recorded"] = record.steps_recorded();
            j["loss"] = losses_json();
            if (!o_.out.empty()) j["out"] = o_.out;
            j["exit_status"] = static_cast<std::int64_t>(stop_exit_code(stopped_by));
            std::cout << j.dump() << "\n" << std::flush;
        } else if (rank_ == 0)
            std::cout << (tty_ ? "\r" : "") + last_line_ + "\n" << "shardsim run: " << why
                      << (o_.out.empty() ? std::string()
                                         : "; the " + std::to_string(record.steps_recorded()) + " finished step(s) are in " + o_.out +
                                               " (complete = 0; report and validate read it with --allow-incomplete)")
                      << "; exit status " << stop_exit_code(stopped_by) << "\n"
                      << std::flush;
        return stop_exit_code(stopped_by);
    }

    // The run is over: checks against the plan from every rank, host memory, --verify, then rank 0
    // prints the last step's summary.
    int finished(const timeline::RunTimeline& run, const HostWatch& host) {
        const auto problems = ctx_.executor->check_against_plan();
        int bad = problems.empty() ? 0 : 1, any_bad = 0;
        SHARDSIM_MPI_CHECK(MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
        for (const auto& p : problems) comm::say_from_rank(rank_, "plan check: " + p);
        double overhead = ctx_.executor->measurement_overhead(), max_overhead = 0;
        SHARDSIM_MPI_CHECK(MPI_Allreduce(&overhead, &max_overhead, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
        const HostUse host_use = largest_host_use(host, rank_, size_);
        exec::VerifyResult verify;
        if (o_.verify) verify = exec::verify_against_reference(*ctx_.executor, static_cast<int>(steps_), MPI_COMM_WORLD);
        if (rank_ == 0) {
            // The figures are those of the last step: the first ones warm up.
            const timeline::RunTimeline last = report::select_step(run, -1);
            const std::int64_t process_measured = host_use.rss - (host_use.predicted - host.process);
            if (o_.json) {
                io::Json j = report::summary_json(last);
                j["measured_step"] = static_cast<std::int64_t>(steps_ - 1);
                j["loss"] = losses_json();
                j["measurement_overhead_fraction"] = max_overhead;
                j["plan_checks_passed"] = any_bad == 0;
                j["host_rss_peak_bytes"] = host_use.rss;
                j["host_rss_rank"] = static_cast<std::int64_t>(host_use.rank);
                j["host_predicted_bytes"] = host_use.predicted;
                j["host_process_measured_bytes"] = process_measured;
                if (o_.verify) {
                    j["verify_max_rel_diff"] = verify.max_rel_diff;
                    j["verify_tolerance"] = verify.tolerance;
                    j["verify_passed"] = verify.passed;
                    j["verify_worst_tensor"] = verify.worst_tensor;
                    j["verify_rule"] = verify.rule;
                }
                std::cout << j.dump() << "\n";
            } else {
                std::cout << "\nmeasured step " << steps_ << " of " << steps_ << " (earlier steps warm up)\n" << report::summary_text(last);
                std::cout << "\nrecording cost " << format_fixed(100 * max_overhead, 2) << "% of the step time; plan checks "
                          << (any_bad ? "FAILED (see above)" : "passed: persistent bytes and collective sizes as planned") << "\n";
                std::cout << "host memory: peak resident size " << format_bytes(host_use.rss) << " (rank " << host_use.rank
                          << ", the rank furthest above its prediction) against " << format_bytes(host_use.predicted)
                          << " predicted: buffers " << format_bytes(host_use.predicted - host.process) << " + the process itself "
                          << format_bytes(host.process) << " (host.process_gib), which measured " << format_bytes(process_measured) << "\n";
                if (o_.verify)
                    std::cout << "verify: max relative difference from a single-process reference " << verify.max_rel_diff
                              << " (worst " << verify.worst_tensor << ", tolerance " << verify.tolerance << ": " << verify.rule << "): "
                              << (verify.passed ? "passed" : "FAILED") << "\n";
                if (!o_.out.empty()) std::cout << "timelines written to " << o_.out << "\n";
            }
        }
        return (any_bad || (o_.verify && !verify.passed)) ? kExitCheckFailed : 0;
    }

    io::Json losses_json() const {
        io::Json l = io::Json::array();
        for (double x : losses_) l.push_back(x);
        return l;
    }

    RunContext& ctx_;
    const RunOptions& o_;
    const std::int64_t start_;
    std::int64_t saved_;  // the steps the newest checkpoint holds
    const int rank_, size_;
    const std::int64_t steps_;
    std::vector<double> losses_;
    std::string last_line_;
    // A progress line that rewrites itself only for a person at a terminal: mpirun and srun give
    // their ranks a pseudo-terminal even when their own output goes to a file.
    const bool tty_ = isatty(STDOUT_FILENO) != 0 &&
                      !(std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("SLURM_JOB_ID"));
};

int execute(const RunOptions& o, int world_rank, int world_size) {
    // From here a signal stops the run after a step instead of killing it mid-way.
    install_stop_handlers();
    if (o.has_out) check_output_paths({{"--out", o.out}}, world_rank, world_size);
    RunContext ctx = prepare_run(o.req, parse_backend_option(o.backend), o.threads, o.force, world_rank, world_size);
    // Bad input (exit 2, agreed by every rank) before the watchdog and the steps.
    if (!o.checkpoint.empty()) prepare_checkpoint_dir(o.checkpoint, world_rank, world_size);
    const std::int64_t start = o.resume.empty() ? 0 : resume_from(ctx, o.resume, world_rank, world_size);
    try {
        comm::watchdog::start(MPI_COMM_WORLD, o.collective_timeout_s, [&ctx](int op) {
            if (op < 0 || static_cast<std::size_t>(op) >= ctx.schedule.ops.size()) return std::string();
            return "op " + std::to_string(op) + " (" + plan::op_label(*ctx.plan, ctx.schedule.ops[static_cast<std::size_t>(op)]) + ")";
        });
        struct StopWatch {
            ~StopWatch() { comm::watchdog::stop(); }
        } stop_watch;
        return StepLoop(ctx, o, start, world_rank, world_size).run();
    } catch (const std::exception& e) {
        // Abort while this rank's threads and buffers still exist: unwinding them first would
        // wait on a collective the other ranks will never join.
        abort_run(ctx, world_rank, "shardsim run", e);
    }
}

}  // namespace

int cmd_run(const Args& args) {
    po::options_description desc("options");
    RunOptions o;
    desc.add_options()
        ("job", po::value<std::string>(&o.req.job), "job .ini path or shipped job name (default: the seed scenario llama-7b-fsdp-6x-a100-40g, or a job "
                                                        "built from --model and --topology)")
        ("set", po::value<std::vector<std::string>>(&o.req.sets)->composing(), "override a key (as simulate); repeatable")
        ("backend", po::value<std::string>(&o.backend)->default_value("auto"),
         kBackendHelp)
        ("steps", po::value<std::int64_t>(&o.steps)->default_value(0), "optimizer steps (0: the job's job.steps)")
        ("verify", po::bool_switch(&o.verify), "compare with a single-process reference trained on the same batches")
        ("out", po::value<std::string>(&o.out),
         "write every rank's measured timeline to this HDF5 file: FILE.partial, appended and flushed after every step, "
         "renamed to FILE at the end (complete = 0 if the run was stopped)")
        ("json", po::bool_switch(&o.json), "print the measured summary as JSON (same keys as simulate --json)")
        ("force", po::bool_switch(&o.force), "run even when the plan is predicted not to fit")
        ("threads", po::value<int>(&o.threads)->default_value(1), "BLAS threads per rank on the CPU backend")
        ("collective-timeout", po::value<double>(&o.collective_timeout_s)->default_value(600),
         "seconds a rank waits in one collective before the watchdog names the ranks that did not arrive and aborts "
         "the job (exit 124); 0: no watchdog")
        ("checkpoint", po::value<std::string>(&o.checkpoint),
         "write sharded checkpoints into this folder: after the last step, after a stop signal, and every --checkpoint-every steps")
        ("checkpoint-every", po::value<std::int64_t>(&o.checkpoint_every)->default_value(0),
         "steps between checkpoints (0: only at the end and on a stop)")
        ("resume", po::value<std::string>(&o.resume),
         "continue from the newest checkpoint in this folder (or a step-N folder of it), under this job's strategy and "
         "ranks, to --steps steps in all");
    add_import_options(desc, o.req);
    auto vm = parse_options("run", "mpirun -np N shardsim run --job JOB [--backend auto|nccl|mpi] [--steps S] [--verify] [--out FILE.h5] [--json] "
                                   "[--collective-timeout S] [--checkpoint DIR [--checkpoint-every K]] [--resume DIR] " +
                                std::string(interop::kImportUsage),
                            desc, args);
    if (!vm) return 0;
    if (o.steps < 0) throw InputError("--steps: bad value '" + std::to_string(o.steps) + "' (allowed: integer >= 0)");
    if (!std::isfinite(o.collective_timeout_s) || o.collective_timeout_s < 0 || o.collective_timeout_s > 1e6)
        throw InputError("--collective-timeout: bad value '" + format_fixed(o.collective_timeout_s, 1) +
                         "' (allowed: seconds in [0, 1e6]; 0: no watchdog)");
    if (o.threads < 1) throw InputError("--threads: bad value '" + std::to_string(o.threads) + "' (allowed: integer >= 1)");
    o.has_out = vm->count("out") > 0;
    if (o.checkpoint_every < 0) throw InputError("--checkpoint-every: bad value '" + std::to_string(o.checkpoint_every) + "' (allowed: integer >= 0)");
    if (o.checkpoint_every > 0 && o.checkpoint.empty()) throw InputError("--checkpoint-every: needs --checkpoint DIR (allowed: with --checkpoint)");
    if (vm->count("checkpoint") && o.checkpoint.empty()) throw InputError("--checkpoint: bad value '' (allowed: a folder)");
    if (vm->count("resume") && o.resume.empty()) throw InputError("--resume: bad value '' (allowed: a checkpoint folder)");
    if (o.verify && !o.resume.empty())
        throw InputError("--verify: not with --resume (allowed: --verify on a run from step 0: its reference trains from the start)");
    parse_backend_option(o.backend);  // refused before MPI starts

    return run_mpi_command("shardsim run", [&](int rank, int size) { return execute(o, rank, size); });
}

}  // namespace shardsim::cli
