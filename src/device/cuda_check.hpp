#pragma once
// Check macros at the CUDA / cuBLAS C boundary: file, line and the call's text, then throw.
// Destructors use the _NOTHROW twins, which only report.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "shardsim/core/error.hpp"

namespace shardsim::device {

inline const char* cublas_status_name(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        default: return "CUBLAS_STATUS_(other)";
    }
}

}  // namespace shardsim::device

#define SHARDSIM_CUDA_CHECK(call)                                                                         \
    do {                                                                                                  \
        const cudaError_t shardsim_err_ = (call);                                                         \
        if (shardsim_err_ != cudaSuccess)                                                                 \
            ::shardsim::throw_error(__FILE__, __LINE__, std::string(#call) + ": " +                       \
                                                            cudaGetErrorName(shardsim_err_) + ": " +      \
                                                            cudaGetErrorString(shardsim_err_));           \
    } while (0)

#define SHARDSIM_CUBLAS_CHECK(call)                                                                       \
    do {                                                                                                  \
        const cublasStatus_t shardsim_st_ = (call);                                                       \
        if (shardsim_st_ != CUBLAS_STATUS_SUCCESS)                                                        \
            ::shardsim::throw_error(__FILE__, __LINE__,                                                   \
                                    std::string(#call) + ": " + ::shardsim::device::cublas_status_name(shardsim_st_)); \
    } while (0)

#define SHARDSIM_CUDA_CHECK_NOTHROW(call)                                                                 \
    do {                                                                                                  \
        const cudaError_t shardsim_err_ = (call);                                                         \
        if (shardsim_err_ != cudaSuccess)                                                                 \
            std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(shardsim_err_)); \
    } while (0)
