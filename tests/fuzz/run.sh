#!/usr/bin/env bash
# Runs one libFuzzer harness of the reliability build (tools/sanitize.sh build) for a bounded
# time: first every seed (the shipped jobs, topologies and models, the inputs of tests/fuzz/corpus
# -- the reproducers of past crashes among them -- and, for the HDF5 reader, files written by
# `simulate --out`; for the checkpoint reader, rank files written by `run --checkpoint`), then mutations for SHARDSIM_FUZZ_SECONDS (default 20). A crash, a sanitizer
# report, a leak, a timeout (10 s per input) or running out of memory (2 GiB) fails, with the
# input saved under the work folder's crashes/ and its path printed.
#   usage: tests/fuzz/run.sh HARNESS [extra libFuzzer flags]   (e.g. fuzz_job -runs=1000000)
#   env:   SHARDSIM_SANITIZE_DIR (default build/sanitize), SHARDSIM_FUZZ_SECONDS
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
harness=${1:?usage: tests/fuzz/run.sh HARNESS [libFuzzer flags]}
shift
dir=${SHARDSIM_SANITIZE_DIR:-$root/build/sanitize}
[[ $dir = /* ]] || dir=$root/$dir
bin=$dir/tests/$harness
if [[ ! -x $bin ]]; then
  if ! command -v clang++ >/dev/null; then echo "$harness: clang is not installed; skipped" >&2; exit 77; fi
  echo "$harness: $bin is missing (build it with tools/sanitize.sh build)" >&2
  exit 1
fi
seconds=${SHARDSIM_FUZZ_SECONDS:-20}

# The work corpus grows with what the fuzzer finds (kept between local runs, never committed).
work=$dir/fuzz/$harness
mkdir -p "$work/corpus" "$work/crashes"
seeds=("$here/corpus/${harness#fuzz_}")
case $harness in
  fuzz_ini) seeds+=("$root/jobs" "$root/topologies" "$root/models") ;;
  fuzz_job) seeds+=("$root/jobs") ;;
  fuzz_topology) seeds+=("$root/topologies") ;;
  fuzz_model) seeds+=("$root/models") ;;
  fuzz_hdf5)
    # Small valid files of each family, written by the instrumented binary itself.
    mkdir -p "$work/seeds"
    for job in tiny-llama-cpu tiny-t5-cpu tiny-gpt2-cpu; do
      [[ -f $work/seeds/$job.h5 ]] || "$dir/shardsim" simulate --job "$job" --out "$work/seeds/$job.h5" >/dev/null
    done
    seeds+=("$work/seeds") ;;
  fuzz_checkpoint)
    # The rank files of one-rank checkpoints of two families, written by the instrumented binary
    # (leak checking off for this one run: Open MPI's plugins, loaded by the run, keep allocations
    # LeakSanitizer cannot attribute to a library the suppressions name; tools/sanitize.sh).
    mkdir -p "$work/seeds"
    for job in tiny-llama-cpu tiny-t5-cpu; do
      if [[ ! -f $work/seeds/$job.h5 ]]; then
        ASAN_OPTIONS=detect_leaks=0 "$dir/shardsim" run --job "$job" --set topology.cluster.gpus_per_node=1 --steps 1 --checkpoint "$work/ckpt-$job" >/dev/null
        cp "$work/ckpt-$job/step-000001/rank-00000.h5" "$work/seeds/$job.h5"
      fi
    done
    seeds+=("$work/seeds") ;;
esac
for s in "${seeds[@]}"; do [[ -d $s ]] || { echo "$harness: no seed folder $s" >&2; exit 1; }; done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tools/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
log=$work/last.log
set +e
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$work/crashes/" "$@" "$work/corpus" "${seeds[@]}" >"$log" 2>&1
rc=$?
set -e
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
echo "$harness: ${runs:-?} executions in ${seconds} s (exit $rc); log $log"
if ((rc != 0)); then
  grep -E "ERROR|runtime error|SUMMARY|Test unit written|deadly signal|==[0-9]+==" "$log" | head -40 >&2 || tail -40 "$log" >&2
  exit 1
fi
