#pragma once
// Which backend a rank runs on, which GPU it binds, and what the host has: one policy for every
// command that starts ranks (run, validate, bench).
//   mpi   buffers in host memory, compute on the CPU (OpenBLAS), MPI collectives
//   nccl  buffers on the rank's GPU, compute with cuBLAS and our kernels, NCCL collectives
#include <mpi.h>

#include <cstdint>
#include <optional>
#include <string>

#include "shardsim/config/launch.hpp"

namespace shardsim::device {

enum class Backend { mpi, nccl };
const char* backend_name(Backend b);

enum class BackendRequest { automatic, mpi, nccl };
// "auto" | "mpi" | "nccl"; nullopt otherwise.
std::optional<BackendRequest> parse_backend_request(const std::string& s);
inline constexpr const char* kBackendChoices = "auto, nccl, mpi";

// Collective over `world`: every rank reports whether it can use a GPU with NCCL, and all take
// the same backend. `automatic` takes NCCL when every rank can. Refused (an InputError naming the
// rank, its host and why, thrown on the lowest such rank only, so that it is printed once; the
// caller stops the others): NCCL asked for and a rank cannot use a GPU; `automatic` on a rank the
// launcher allocated GPUs to (CUDA_VISIBLE_DEVICES set by Slurm or by hand) that cannot use one —
// a GPU job must not fall back to the CPU silently (`--backend mpi` asks for the CPU).
Backend choose_backend(BackendRequest request, MPI_Comm world, const config::EnvLookup& env = config::process_env);

// This rank's node-local rank: the launcher's variable (config::kLocalRankVariables), else the
// MPI node-local communicator; and where it came from.
std::pair<int, std::string> local_rank(MPI_Comm world);

// The GPU this rank binds: its node-local rank among the GPUs it sees (config::bind_gpu).
config::GpuBinding bind_local_gpu(MPI_Comm world);

// MemAvailable of /proc/meminfo in bytes; 0 when unknown.
std::int64_t host_available_bytes();
// This process's resident set size now (VmRSS of /proc/self/status) and its peak so far (VmHWM),
// in bytes; 0 when unknown.
std::int64_t process_resident_bytes();
std::int64_t process_peak_resident_bytes();

}  // namespace shardsim::device
