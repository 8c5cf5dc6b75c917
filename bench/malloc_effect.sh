#!/usr/bin/env bash
# Reduce-scatter and all-reduce busbw on 2 ranks with glibc's default allocation thresholds
# (MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ unset) and with
# comm::keep_large_allocations_in_heap(), the call `shardsim run` and `shardsim bench` make.
#   usage: bench/malloc_effect.sh [BUILD_DIR] (default: build)   env: MPIEXEC, MAX_MIB (default 64)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
prog=$build/bench/bench_malloc_effect
mpiexec=${MPIEXEC:-mpirun}
max=${MAX_MIB:-64}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for mode in default heap; do
  env -u MALLOC_MMAP_THRESHOLD_ -u MALLOC_TRIM_THRESHOLD_ "$mpiexec" -np 2 "$prog" "$mode" "$max" >"$tmp/$mode"
done
echo "busbw on 2 ranks (GB/s), glibc defaults vs keep_large_allocations_in_heap()"
printf '%12s %14s %14s %8s %14s %14s %8s\n' "size (B)" "RS default" "RS heap" "x" "AR default" "AR heap" "x"
paste "$tmp/default" "$tmp/heap" | awk '{ printf "%12d %14.3f %14.3f %8.1f %14.3f %14.3f %8.1f\n", $1, $2, $5, $5 / $2, $3, $6, $6 / $3 }'
