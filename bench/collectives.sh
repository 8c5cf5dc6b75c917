#!/usr/bin/env bash
# The collectives sweep of docs/bench.md: `shardsim bench` on NP ranks (default 2) from 8 B to
# MAX (default 1G), all three ops, then `shardsim calibrate` of the cpu-host topology on it.
# Prints bench's table (ours vs the raw library, #wrong) and calibrate's fit.
#   usage: bench/collectives.sh [SHARDSIM] (default: build/shardsim)
#   env: NP (2), MAX (1G), ITERS (20), WARMUP (5), TOPOLOGY (cpu-host), OUT (a temporary folder), MPIEXEC
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shardsim=${1:-$here/../build/shardsim}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
"${MPIEXEC:-mpirun}" -np "${NP:-2}" "$shardsim" bench --op all_gather,reduce_scatter,all_reduce --min-bytes 8 \
  --max-bytes "${MAX:-1G}" --factor 2 --iters "${ITERS:-20}" --warmup "${WARMUP:-5}" --out "$out/bench.h5" |
  tee "$out/bench.txt"
echo
"$shardsim" calibrate "$out/bench.h5" --topology "${TOPOLOGY:-cpu-host}" --out "$out/calibrated.ini" | tee "$out/calibrate.txt"
