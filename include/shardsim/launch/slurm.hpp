#pragma once
// `shardsim slurm`: an sbatch script for a job. The resources come from the job and its topology
// — one rank per GPU, as many nodes as the topology has, host memory from the simulated peak —
// and options given explicitly must agree with them: an impossible request is an InputError that
// prints every factor. The script carries the job's effective configuration in its header and
// reads the binary, the job, the output folder and extra arguments from environment variables.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shardsim/core/units.hpp"
#include "shardsim/model/scenario.hpp"

namespace shardsim::launch {

// What the script runs: the executor (run), the simulator (simulate, one task, no GPU), the
// executor compared with the simulator (validate), or the collective benchmark (bench).
enum class SlurmMode { run, simulate, validate, bench };
enum class SlurmLauncher { srun, mpirun };

const std::vector<std::string>& slurm_mode_names();  // in the enum's order
std::optional<SlurmMode> parse_slurm_mode(const std::string& s);
std::string slurm_mode_name(SlurmMode m);

// The request. Unset optionals and empty strings are derived from the job.
struct SlurmOptions {
    std::string job;                // as given to --job: written into the script
    std::vector<std::string> sets;  // --set arguments: written into the script
    SlurmMode mode = SlurmMode::run;
    std::optional<SlurmLauncher> launcher;  // default srun
    std::optional<std::int64_t> nodes;
    std::optional<std::int64_t> gpus_per_node;
    std::optional<std::int64_t> cpus_per_task;
    std::string mem;  // per node, in Slurm's spelling: "64G", "32000M", "0" (all of the node)
    std::string time;
    std::string partition;
    std::string account;
};

// One resource of the allocation with the reason for its value, for the script's header.
struct SlurmResource {
    std::string name;    // "nodes", "tasks per node", ...
    std::string value;   // as it goes into #SBATCH
    std::string origin;  // "topology 6x-a100-40g: 1 node x 6 GPUs", "--cpus-per-task"
};

struct SlurmResources {
    std::int64_t nodes = 1;
    std::int64_t tasks_per_node = 1;
    std::int64_t gpus_per_node = 0;  // 0: no GPU requested (CPU topology, or --mode simulate)
    std::int64_t cpus_per_task = 1;
    std::string mem;                 // per node, Slurm spelling
    std::string time;                // Slurm spelling
    SlurmLauncher launcher = SlurmLauncher::srun;
    std::vector<SlurmResource> table;  // the same values with their origins
    std::vector<std::string> predictions;  // what the simulator expects (memory, step time)
    std::vector<std::string> warnings;     // predictions that say the run will likely fail
};

// Host memory one process needs besides what the plan puts on the host: the CUDA runtime, NCCL
// and MPI buffers and the binary itself for a GPU rank; MPI and the binary for a CPU rank.
inline constexpr std::int64_t kGpuRankHostOverhead = 2 * kGiB;
inline constexpr std::int64_t kCpuRankHostOverhead = kGiB / 2;
// The memory request is the predicted need times this, capped at the topology's host memory.
inline constexpr double kMemHeadroom = 1.25;
inline constexpr const char* kDefaultTime = "00:30:00";
inline constexpr const char* kDefaultSimulateTime = "00:10:00";

// Derives the allocation; throws InputError with one line per impossible request.
SlurmResources derive_slurm_resources(const model::Scenario& scenario, const SlurmOptions& options);

// The whole sbatch script, for resources derived from the same scenario and options; the
// two-argument form derives them (and throws InputError as derive_slurm_resources does).
std::string slurm_script(const model::Scenario& scenario, const SlurmOptions& options,
                         const SlurmResources& resources);
std::string slurm_script(const model::Scenario& scenario, const SlurmOptions& options);

// `s` quoted for bash when it needs it.
std::string shell_quote(const std::string& s);

}  // namespace shardsim::launch
