// The backend-independent part of Device, and the CUDA factory (the one place outside the CUDA
// backend files that asks whether this build has CUDA).
#include "shardsim/device/device.hpp"

#include "shardsim/core/error.hpp"

namespace shardsim::device {

void Device::gemm(const GemmOp& op) {
    SHARDSIM_ASSERT(op.m >= 0 && op.n >= 0 && op.k >= 0 && op.batch >= 0, "negative GEMM size");
    if (op.m == 0 || op.n == 0 || op.batch == 0) return;
    gemm_flops_ += 2.0 * static_cast<double>(op.m) * static_cast<double>(op.n) * static_cast<double>(op.k) *
                   static_cast<double>(op.batch);
    run_gemm(op);
}

#if SHARDSIM_HAVE_CUDA
// In cuda_device_cuda.cpp.
bool cuda_probe(std::string* why);
std::unique_ptr<Device> make_cuda_device_checked(int index);
int cuda_count();
#endif

bool cuda_available(std::string* why) {
#if SHARDSIM_HAVE_CUDA
    return cuda_probe(why);
#else
    if (why) *why = "this build has no CUDA: CMake found no CUDA toolkit and NCCL (see the configure summary)";
    return false;
#endif
}

int cuda_device_count() {
#if SHARDSIM_HAVE_CUDA
    return cuda_count();
#else
    return 0;
#endif
}

std::unique_ptr<Device> make_cuda_device(int index) {
#if SHARDSIM_HAVE_CUDA
    return make_cuda_device_checked(index);
#else
    (void)index;
    throw Error("CUDA device requested, but this build has no CUDA (CMake found no CUDA toolkit and NCCL)");
#endif
}

}  // namespace shardsim::device
