#pragma once
#include <string>

namespace shardsim {

std::string version();  // from the project() version in CMakeLists.txt

}  // namespace shardsim
