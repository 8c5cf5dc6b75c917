// The backend policy every MPI command shares (device/backend.hpp), on ranks that have no usable
// GPU (CI): the CPU when asked for or when nothing was allocated; an error, on one rank only,
// when NCCL is asked for or when GPUs were allocated but cannot be used.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "mpi_helpers.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/device/backend.hpp"
#include "shardsim/device/device.hpp"

using namespace shardsim;
using namespace shardsim::test;

namespace {
config::EnvLookup env_of(std::map<std::string, std::string> vars) {
    return [vars](const std::string& k) -> std::optional<std::string> {
        auto it = vars.find(k);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
}
}  // namespace

TEST_CASE("backend: one choice for every rank, and no silent fall-back from an allocated GPU") {
    std::string why;
    if (device::cuda_available(&why)) {
        MESSAGE("skipped: this host has a GPU; the refusals below are about hosts without one");
        return;
    }
    using device::BackendRequest;
    CHECK(device::choose_backend(BackendRequest::mpi, MPI_COMM_WORLD, env_of({{"CUDA_VISIBLE_DEVICES", "0,1"}})) ==
          device::Backend::mpi);
    CHECK(device::choose_backend(BackendRequest::automatic, MPI_COMM_WORLD, env_of({})) == device::Backend::mpi);
    CHECK(device::choose_backend(BackendRequest::automatic, MPI_COMM_WORLD, env_of({{"CUDA_VISIBLE_DEVICES", ""}})) ==
          device::Backend::mpi);

    // Asked for NCCL without a GPU: only the lowest rank throws (the caller stops the others).
    bool threw = false;
    try {
        device::choose_backend(BackendRequest::nccl, MPI_COMM_WORLD, env_of({}));
    } catch (const InputError& e) {
        threw = true;
        CHECK(std::string(e.what()).find("--backend: bad value 'nccl': rank 0 on ") != std::string::npos);
    }
    CHECK(threw == is_root());

    // A GPU allocation (as Slurm's --gpus-per-node sets it) that cannot be used is refused.
    threw = false;
    try {
        device::choose_backend(BackendRequest::automatic, MPI_COMM_WORLD, env_of({{"CUDA_VISIBLE_DEVICES", "0,1"}}));
    } catch (const InputError& e) {
        threw = true;
        const std::string m = e.what();
        CHECK(m.find("auto found no usable GPU on rank 0") != std::string::npos);
        CHECK(m.find("CUDA_VISIBLE_DEVICES=0,1") != std::string::npos);
        CHECK(m.find("--backend mpi") != std::string::npos);
    }
    CHECK(threw == is_root());
}
