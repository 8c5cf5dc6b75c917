#pragma once
// What this process may run on: the CPUs of its affinity mask, i.e. its cpuset (a container's,
// Slurm's --cpus-per-task, mpirun's --bind-to core), not the machine's count (`nproc` reports the
// same mask; std::thread::hardware_concurrency does not).
#include <vector>

namespace shardsim {

// The ids of the CPUs this process may run on, ascending; never empty (one CPU when the mask
// cannot be read).
std::vector<int> affinity_cpus();

// The size of the last-level cache of the CPU this process starts on (Linux sysfs: the highest
// level of /sys/devices/system/cpu/cpuN/cache), bytes; 0 when it cannot be read.
long long last_level_cache_bytes();

}  // namespace shardsim
