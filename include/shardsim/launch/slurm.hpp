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

// With --requeue, Slurm sends SIGTERM to the ranks this long before the time limit (Slurm sends it
// up to 60 s earlier than asked): time to finish a step and close the file.
inline constexpr std::int64_t kDefaultSignalGrace = 120;
// A job requeued this many times is not requeued again by its script (SHARDSIM_MAX_RESTARTS).
inline constexpr int kDefaultMaxRestarts = 3;

// The request. Unset optionals and empty strings are derived from the job.
struct SlurmOptions {
    std::string job;                // as given to --job: written into the script
    std::vector<std::string> sets;  // --set arguments: written into the script
    std::vector<std::string> shape_sets;  // --set arguments derived from --nodes / --gpus-per-node (shape_overrides)
    SlurmMode mode = SlurmMode::run;
    std::optional<SlurmLauncher> launcher;  // default srun
    std::optional<std::int64_t> nodes;
    std::optional<std::int64_t> gpus_per_node;
    std::optional<std::int64_t> cpus_per_task;
    std::string mem;  // per node, in Slurm's spelling: "64G", "32000M", "0" (all of the node)
    std::string time;
    std::string partition;
    std::string account;
    bool exclusive = false;           // #SBATCH --exclusive: whole nodes
    std::string gpu_bind, cpu_bind;   // srun --gpu-bind / --cpu-bind (srun only)
    std::string nccl_debug;           // NCCL_DEBUG for the ranks (GPU jobs): VERSION, WARN, INFO or TRACE
    std::vector<std::string> setup;   // shell lines run first in the job (module load ..., source ...)
    bool requeue = false;             // --mode run: stop before the time limit and requeue (see the script)
    std::int64_t signal_grace_s = kDefaultSignalGrace;
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

// The memory request is the predicted need times this, capped at the topology's host memory.
inline constexpr double kMemHeadroom = 1.25;
inline constexpr const char* kDefaultTime = "00:30:00";
inline constexpr const char* kDefaultSimulateTime = "00:10:00";

// The --set arguments that give the job the shape asked with --nodes and --gpus-per-node
// (topology.cluster.nodes, topology.cluster.gpus_per_node, and parallel.world_size=0 when the job
// fixes a world size the shape does not have); empty when the job already has that shape. Asked
// for several nodes of a topology without a network between nodes, it throws one InputError line
// that names everything to add (the network's --set arguments, or a multi-node topology), so
// that the next try works. Requests it cannot read (a GPU count on a CPU topology, 0 nodes) are
// left to derive_slurm_resources to refuse.
std::vector<std::string> shape_overrides(const model::Scenario& scenario, const SlurmOptions& options);

// The Slurm job name: "shardsim-" and the job's name, or, when --set changed what the job is
// (job.model, job.topology, parallel.strategy, the topology's nodes or GPUs per node), a name made
// of the effective model, strategy and cluster ("shardsim-llama-7b-fsdp-full-shard-4x8-h100-ib").
std::string slurm_job_name(const model::Scenario& scenario);

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
