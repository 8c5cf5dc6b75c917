#include "shardsim/core/version.hpp"

#ifndef SHARDSIM_VERSION
#error "SHARDSIM_VERSION must be defined by the build"
#endif

namespace shardsim {
std::string version() { return SHARDSIM_VERSION; }
}  // namespace shardsim
