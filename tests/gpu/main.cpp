// The gpu tests' main: without a usable GPU nothing here can run, so the binary says why and
// exits 77, which ctest reports as "Skipped" (SKIP_RETURN_CODE) rather than as a pass.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <iostream>
#include <string>

#include "shardsim/device/device.hpp"

int main(int argc, char** argv) {
    std::string why;
    if (!shardsim::device::cuda_available(&why)) {
        std::cout << "SKIP: no usable GPU (" << why << "); the CUDA device and NCCL code was compiled, not run\n";
        return 77;
    }
    doctest::Context context(argc, argv);
    return context.run();
}
