#!/usr/bin/env bash
# tools/gpu-check.sh on this (CPU-only) host: it must run to completion, say what it skipped and
# why, and still print its predicted-vs-measured table (from the CPU backend). On a machine with a
# GPU this test is not the check: run tools/gpu-check.sh itself.
set -euo pipefail
root=${SHARDSIM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "a GPU is visible: run bash tools/gpu-check.sh itself (this test checks the CPU-only mode)"
  exit 77
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
log=$out/log
SHARDSIM_GPU_CHECK_NO_BUILD=1 SHARDSIM_GPU_CHECK_OUT=$out/files SHARDSIM=${SHARDSIM:-$root/build/shardsim} \
  bash "$root/tools/gpu-check.sh" >"$log" 2>&1 || { cat "$log"; echo "gpu-check.sh failed on a CPU-only host"; exit 1; }
cat "$log"
for want in "skipped ctest -L gpu: " "skipped --verify of the tiny models on CUDA: " "skipped scaled seed jobs on one GPU: " \
            "skipped NCCL busbw and the 2-rank NCCL jobs: " "predicted vs measured" "tiny-llama-cpu" "gpu-check: passed"; do
  grep -qF -- "$want" "$log" || { echo "missing from the output: $want"; exit 1; }
done
echo "gpu-check.sh CPU-only mode: ok"
