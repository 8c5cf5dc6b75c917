#include "shardsim/comm/half_sum.hpp"

#include "shardsim/core/half.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define SHARDSIM_F16C 1
#else
#define SHARDSIM_F16C 0
#endif

namespace shardsim::comm {

namespace {

void add_fp16_scalar(const std::uint16_t* in, std::uint16_t* inout, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) inout[i] = float_to_fp16(fp16_to_float(in[i]) + fp16_to_float(inout[i]));
}

#if SHARDSIM_F16C
// The x86 conversion instructions (F16C) are IEEE conversions: exact fp16 -> fp32, and fp32 ->
// fp16 rounded to nearest-even with subnormals and NaN (quieted, sign and top payload bits kept)
// exactly as core/half.hpp does it; a test holds the two to the same bits. Used when the CPU has
// them (checked at run time: the build targets the baseline x86-64).
__attribute__((target("avx,f16c"))) void add_fp16_f16c(const std::uint16_t* in, std::uint16_t* inout, std::int64_t n) {
    std::int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)));
        const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(inout + i)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(inout + i),
                         _mm256_cvtps_ph(_mm256_add_ps(a, b), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    add_fp16_scalar(in + i, inout + i, n - i);
}

bool have_f16c() {
    // F16C from cpuid: clang 14 (the sanitizer build) knows no __builtin_cpu_supports("f16c").
    static const bool yes = [] {
        unsigned a = 0, b = 0, c = 0, d = 0;
        return __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & bit_F16C) != 0;
    }();
    return yes;
}
#endif

}  // namespace

#if SHARDSIM_F16C
// Built twice, for AVX2 and for the baseline; the loader picks the one the CPU runs.
__attribute__((target_clones("avx2", "default")))
#endif
void add_bf16(const std::uint16_t* in, std::uint16_t* inout, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) inout[i] = float_to_bf16(bf16_to_float(in[i]) + bf16_to_float(inout[i]));
}

void add_fp16(const std::uint16_t* in, std::uint16_t* inout, std::int64_t n) {
#if SHARDSIM_F16C
    if (have_f16c()) {
        add_fp16_f16c(in, inout, n);
        return;
    }
#endif
    add_fp16_scalar(in, inout, n);
}

void add_fp16_portable(const std::uint16_t* in, std::uint16_t* inout, std::int64_t n) { add_fp16_scalar(in, inout, n); }

}  // namespace shardsim::comm
