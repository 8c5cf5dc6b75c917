#pragma once
// What `run` (and `validate`) set up before the first step: the plan, the backend and device
// this rank uses, its communicators, the executor, and the start-up table.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shardsim/comm/communicator.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/device/backend.hpp"
#include "shardsim/exec/executor.hpp"
#include "shardsim/interop/import.hpp"
#include "shardsim/plan/schedule.hpp"
#include "shardsim/timeline/timeline.hpp"

namespace shardsim::cli {

// Thrown on the ranks that agree to stop because another rank found bad input (that rank
// prints it): they exit with `code` and say nothing.
struct QuietExit {
    int code;
};

struct RunContext {
    plan::PlanPtr plan;
    plan::Schedule schedule;
    timeline::RunTimeline prediction;  // the simulator's view of the same plan
    device::Backend backend = device::Backend::mpi;
    std::unique_ptr<device::Device> device;
    std::unique_ptr<device::Device> host_math;
    std::unique_ptr<comm::Communicator> world;
    std::vector<std::unique_ptr<comm::Communicator>> group_comms;  // the plan's groups smaller than the world
    // Each plan group's communicator as the executor calls it: watched ([Note: collective watchdog]).
    std::vector<std::unique_ptr<comm::Communicator>> watched_comms;
    int step_group = -1;  // the watchdog's group for the world-level calls between steps
    std::unique_ptr<exec::Executor> executor;
    std::string startup_table;         // rank 0 prints it (after what was imported, if anything)
    interop::ImportReport imported;    // --deepspeed / --accelerate / --hf-args: what became of each key
    timeline::RunTimeline run_attributes;  // root attributes of the measured run (no timelines)
};

// A failure on one rank: says which rank on which host, then brings the whole job down
// (MPI_Abort), so no other rank is left waiting in a collective.
[[noreturn]] void abort_job(int world_rank, const std::string& message);

// Collective over MPI_COMM_WORLD, between two steps of checks that may fail on some ranks only:
// when any rank holds an error, the lowest such rank throws it (and prints it, through
// run_mpi_command) and every other rank throws QuietExit{kExitBadInput}, before anyone reaches
// the next collective.
void agree_or_stop(const std::optional<InputError>& error, int world_rank, int world_size);

// The frame of every MPI subcommand (run, validate, bench): keeps large allocations in the heap
// (see comm/mpi.hpp), starts MPI, calls `body(world_rank, world_size)` on every rank and turns
// what it throws into the job's end: QuietExit -> its code, silently; InputError -> its problems,
// exit 2 (only the rank that found them throws it, the others throw QuietExit); anything else ->
// abort_job, prefixed with `what` ("shardsim bench: error: ...").
int run_mpi_command(const std::string& what, const std::function<int(int world_rank, int world_size)>& body);
// Whether an MPI launcher (mpirun, srun --mpi) started this process: its rank variables are set.
bool launched_by_mpi();

// Collective over MPI_COMM_WORLD, before anything is measured: rank 0 checks that each
// {option, path} can be written (io::check_output_path) and says in one line which cannot; every
// rank then stops with exit 2 (InputError on rank 0, QuietExit on the others).
void check_output_paths(const std::vector<std::pair<std::string, std::string>>& outputs, int world_rank, int world_size);

// Collective over MPI_COMM_WORLD. Refuses (InputError on the first failing rank, QuietExit on
// the others) a world size that is not the job's, an unavailable backend, or a job predicted
// not to fit (unless `force`).
RunContext prepare_run(const interop::Request& request, device::BackendRequest backend, int threads, bool force,
                       int world_rank, int world_size);
RunContext prepare_run(const std::string& job, const std::vector<std::string>& sets, device::BackendRequest backend,
                       int threads, bool force, int world_rank, int world_size);

// The failure of a prepared run on this rank: as abort_job, with `command` ("shardsim run") in
// front; out of memory also names the op (kind, unit, micro-batch) and what the simulator
// predicted this rank would hold after it, and at its peak.
[[noreturn]] void abort_run(const RunContext& ctx, int world_rank, const std::string& command, const std::exception& e);

// Collective over MPI_COMM_WORLD, after the steps: every rank's measured timeline is gathered on
// rank 0, which writes `out` (skipped when empty; see MeasuredRecord in cli/record.hpp) and gets
// the whole measured run (`steps` recorded, rank r -> timeline r); the other ranks get the run's
// attributes without timelines.
timeline::RunTimeline collect_measured(const RunContext& ctx, std::int64_t steps, const std::string& out);

}  // namespace shardsim::cli
