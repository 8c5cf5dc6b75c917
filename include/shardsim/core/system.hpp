#pragma once
// What this process may run on: the CPUs of its affinity mask, i.e. its cpuset (a container's,
// Slurm's --cpus-per-task, mpirun's --bind-to core), not the machine's count (`nproc` reports the
// same mask; std::thread::hardware_concurrency does not).
#include <vector>

namespace shardsim {

// The ids of the CPUs this process may run on, ascending; never empty (one CPU when the mask
// cannot be read).
std::vector<int> affinity_cpus();

}  // namespace shardsim
