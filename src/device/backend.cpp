#include "shardsim/device/backend.hpp"

#include <fstream>
#include <sstream>

#include "shardsim/comm/backends.hpp"
#include "shardsim/comm/mpi.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/device/device.hpp"

namespace shardsim::device {

const char* backend_name(Backend b) { return b == Backend::nccl ? "nccl" : "mpi"; }

std::optional<BackendRequest> parse_backend_request(const std::string& s) {
    if (s == "auto") return BackendRequest::automatic;
    if (s == "mpi") return BackendRequest::mpi;
    if (s == "nccl") return BackendRequest::nccl;
    return std::nullopt;
}

namespace {

// Why this rank cannot use a GPU with NCCL ("" when it can).
std::string why_no_gpu() {
    std::string why;
    if (!cuda_available(&why)) return why;
    if (!comm::nccl_built()) return "this build has no NCCL";
    return "";
}

// GPUs the launcher gave this process: CUDA_VISIBLE_DEVICES set to something that names a device.
std::optional<std::string> allocated_gpus(const config::EnvLookup& env) {
    const auto v = env("CUDA_VISIBLE_DEVICES");
    if (!v || v->empty() || *v == "NoDevFiles" || *v == "-1") return std::nullopt;
    return v;
}

}  // namespace

Backend choose_backend(BackendRequest request, MPI_Comm world, const config::EnvLookup& env) {
    int rank = 0, size = 1;
    SHARDSIM_MPI_CHECK(MPI_Comm_rank(world, &rank));
    SHARDSIM_MPI_CHECK(MPI_Comm_size(world, &size));
    const std::string why = why_no_gpu();
    const auto gpus = allocated_gpus(env);
    // The lowest rank without a GPU (size: none), and the lowest that has GPUs allocated but
    // cannot use them: only that rank speaks, so that an error is printed once.
    int lacking[2] = {why.empty() ? size : rank, !why.empty() && gpus ? rank : size};
    int first[2] = {size, size};
    SHARDSIM_MPI_CHECK(MPI_Allreduce(lacking, first, 2, MPI_INT, MPI_MIN, world));
    const std::string who = "rank " + std::to_string(rank) + " on " + comm::host_name();
    switch (request) {
        case BackendRequest::mpi: return Backend::mpi;
        case BackendRequest::nccl:
            if (first[0] == rank)
                throw InputError("--backend: bad value 'nccl': " + who + " cannot use a GPU (" + why + ") (allowed: mpi, auto)");
            return Backend::nccl;
        case BackendRequest::automatic:
            if (first[1] == rank)
                throw InputError("--backend: auto found no usable GPU on " + who + " although CUDA_VISIBLE_DEVICES=" + *gpus +
                                 " allocates some (" + why + "); a GPU job does not fall back to the CPU silently (allowed: fix "
                                 "the GPU set-up, or --backend mpi to run on the CPU on purpose)");
            return first[0] == size ? Backend::nccl : Backend::mpi;
    }
    return Backend::mpi;
}

std::pair<int, std::string> local_rank(MPI_Comm world) {
    const config::LaunchEnv launch = config::read_launch_env();
    if (launch.local_rank) return {*launch.local_rank, launch.local_rank_source};
    return {comm::node_local_rank(world), "MPI node-local communicator"};
}

config::GpuBinding bind_local_gpu(MPI_Comm world) {
    const auto [local, source] = local_rank(world);
    return config::bind_gpu(local, source, cuda_device_count(), config::read_launch_env().cuda_visible);
}

std::int64_t host_available_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string key, unit;
    std::int64_t kb = 0;
    while (in >> key >> kb >> unit)
        if (key == "MemAvailable:") return kb * 1024;
    return 0;
}

namespace {
std::int64_t status_kib(const std::string& field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(field, 0) == 0) {
            std::istringstream rest(line.substr(field.size()));
            std::int64_t kb = 0;
            rest >> kb;
            return kb * 1024;
        }
    return 0;
}
}  // namespace

std::int64_t process_resident_bytes() { return status_kib("VmRSS:"); }
std::int64_t process_peak_resident_bytes() { return status_kib("VmHWM:"); }

}  // namespace shardsim::device
