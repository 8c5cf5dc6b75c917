#!/usr/bin/env bash
# The reliability build: shardsim, its unit and MPI test binaries and the libFuzzer harnesses of
# tests/fuzz, compiled with clang, AddressSanitizer and UndefinedBehaviorSanitizer (any undefined
# behaviour aborts) and libFuzzer coverage, in a build folder of its own (default build/sanitize;
# the ctests of the ordinary build pass build/sanitize under it). CUDA is left out: the
# sanitizers instrument host code only.
#   usage: tools/sanitize.sh build | unit | mpi | all
#     build  configure (once) and build
#     unit   the unit suite (the doctest binary, which also runs the instrumented shardsim binary)
#     mpi    the MPI suite at 2 ranks
# Exit 77 (a skip for ctest) when clang is not installed (tools/setup.sh installs it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
dir=${SHARDSIM_SANITIZE_DIR:-build/sanitize}
what=${1:-all}

# Leaks: LeakSanitizer stays on for shardsim's own allocations. Open MPI (with PMIx, hwloc and
# libevent under it) keeps allocations of its own alive past MPI_Finalize, on purpose, for the
# life of the process, and HDF5 loses some after a corrupted file; tools/lsan.supp suppresses the
# reports whose allocation stack passes through those libraries, and only those.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tools/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

need_clang() {
  if ! command -v clang++ >/dev/null || ! command -v clang >/dev/null; then
    echo "sanitize: clang is not installed (tools/setup.sh installs clang and libclang-rt-dev); skipped" >&2
    exit 77
  fi
}

build() {
  need_clang
  if [[ ! -f $dir/CMakeCache.txt ]]; then
    # -O1: the speed the sanitizers are usually run at; line tables are enough for their stacks.
    cmake --fresh -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
      -DSHARDSIM_SANITIZE=ON -DSHARDSIM_FUZZ=ON -DSHARDSIM_ENABLE_CUDA=OFF >"$dir.configure.log" 2>&1 ||
      { cat "$dir.configure.log" >&2; exit 1; }
  fi
  cmake --build "$dir" -j "$(nproc)" --target shardsim shardsim_unit_tests shardsim_mpi_tests fuzzers
}

unit() {
  # The tests that start shardsim find the instrumented binary: it is compiled into the suite.
  (cd "$dir" && ./tests/shardsim_unit_tests)
}

mpi() {
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  export OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
  # For the leak suppressions to see Open MPI in an allocation's stack: its components stay
  # loaded (a dlclose'd one is an unnamed frame) and stacks are unwound fully (the system
  # libraries have no frame pointers, and the fast unwinder stops at them).
  export OMPI_MCA_mca_base_component_disable_dlclose=1
  export ASAN_OPTIONS=$ASAN_OPTIONS:fast_unwind_on_malloc=0
  (cd "$dir" && mpirun -np 2 --oversubscribe ./tests/shardsim_mpi_tests)
}

case $what in
  build) build ;;
  unit) need_clang; unit ;;
  mpi) need_clang; mpi ;;
  all) build; unit; mpi ;;
  *) echo "usage: tools/sanitize.sh build | unit | mpi | all" >&2; exit 2 ;;
esac
