#include "shardsim/core/system.hpp"

#include <sched.h>

#include <fstream>
#include <string>

namespace shardsim {

std::vector<int> affinity_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &set)) cpus.push_back(c);
    if (cpus.empty()) cpus.push_back(0);
    return cpus;
}

long long last_level_cache_bytes() {
    const std::string cpu = "/sys/devices/system/cpu/cpu" + std::to_string(affinity_cpus().front()) + "/cache/index";
    int best_level = 0;
    long long best = 0;
    for (int i = 0; i < 16; ++i) {
        std::ifstream level_in(cpu + std::to_string(i) + "/level"), size_in(cpu + std::to_string(i) + "/size"),
            type_in(cpu + std::to_string(i) + "/type");
        int level = 0;
        std::string size, type;
        if (!(level_in >> level) || !(size_in >> size) || !(type_in >> type)) break;
        if (type == "Instruction" || size.empty()) continue;
        // "32768K", "1M", or bytes.
        long long n = 0;
        std::size_t used = 0;
        try {
            n = std::stoll(size, &used);
        } catch (...) {
            continue;
        }
        const char unit = used < size.size() ? size[used] : ' ';
        if (unit == 'K') n *= 1024;
        if (unit == 'M') n *= 1024 * 1024;
        if (unit == 'G') n *= 1024LL * 1024 * 1024;
        if (level > best_level || (level == best_level && n > best)) best_level = level, best = n;
    }
    return best;
}

}  // namespace shardsim
