#pragma once
// How this process was started — by srun (a Slurm job and step), by mpirun, or alone — and which
// GPU it binds. Read from environment variables only, through a lookup function, so that it needs
// no MPI and tests can hand it any environment. `shardsim run` records `attributes()` in the HDF5
// root and binds its GPU with `bind_gpu`; when no launcher variable names the node-local rank it
// falls back to the MPI node-local communicator (MPI_Comm_split_type shared).
//
// Measured under Slurm 22.05 + Open MPI 4.1 (tests/slurm): srun sets SLURM_LOCALID per task and
// SLURM_STEP_ID; `mpirun` inside an allocation leaves SLURM_LOCALID at 0 on every rank (it is the
// local id of the launcher daemon) and sets no SLURM_STEP_ID, but sets OMPI_COMM_WORLD_LOCAL_RANK.
// Hence the order in which the local rank is looked up. With `--gpus-per-node=G` every task of a
// node sees CUDA_VISIBLE_DEVICES=0,...,G-1 and picks its own GPU by local rank; with
// `--gpus-per-task=1` (or --gpu-bind=single:1) each sees exactly one, which it uses.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace shardsim::config {

// One environment variable, nullopt when unset. `process_env` reads this process's environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
std::optional<std::string> process_env(const std::string& name);

struct SlurmJob {
    std::string job_id;     // SLURM_JOB_ID
    std::string step_id;    // SLURM_STEP_ID; empty in the batch step and under mpirun
    std::string nodelist;   // SLURM_JOB_NODELIST, compressed as Slurm writes it ("gpu[01-04]")
    std::int64_t nodes = 0; // SLURM_JOB_NUM_NODES (SLURM_NNODES)
    std::string partition;  // SLURM_JOB_PARTITION
    std::string cluster;    // SLURM_CLUSTER_NAME
};

struct LaunchEnv {
    std::optional<SlurmJob> slurm;            // present when SLURM_JOB_ID is set
    std::optional<int> local_rank;            // node-local rank, when a launcher variable says it
    std::string local_rank_source;            // the variable it came from
    std::optional<std::string> cuda_visible;  // CUDA_VISIBLE_DEVICES as the launcher set it

    // Root attributes for the run's HDF5 file, named after their variables in lower case:
    // slurm_job_id, slurm_step_id, slurm_job_num_nodes, slurm_job_nodelist, slurm_job_partition,
    // slurm_cluster_name; unset ones are left out (all of them outside Slurm). Values are text,
    // as in timeline::RunTimeline::attributes.
    std::map<std::string, std::string> attributes() const;
};

// Variables that hold the node-local rank, in the order they are trusted.
inline constexpr const char* kLocalRankVariables[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                                                      "SLURM_LOCALID"};

// A variable that is set but malformed (SLURM_LOCALID=x) is an InputError naming it.
LaunchEnv read_launch_env(const EnvLookup& env = process_env);

struct GpuBinding {
    int device = 0;           // CUDA ordinal to select: an index among the visible GPUs
    std::string visible_as;   // that GPU's CUDA_VISIBLE_DEVICES entry ("3", a UUID), or the ordinal
    std::string description;  // one line for the start-up table
};

// Rank `local_rank` of its node binds GPU `local_rank` of the `visible_gpus` it sees, or the only
// one when the launcher gave each task a single GPU. A local rank without a GPU is an Error that
// prints every factor.
GpuBinding bind_gpu(int local_rank, const std::string& local_rank_source, int visible_gpus,
                    const std::optional<std::string>& cuda_visible);

}  // namespace shardsim::config
