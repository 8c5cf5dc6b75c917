#!/usr/bin/env bash
# How long `simulate`, `report` and `validate` take when a step has very many ops: Llama-2-70B
# with fsdp-full-shard on 128 x 8 H100 (1,024 ranks) at grad_accum 1 ... 128, and a Llama-2-70B
# stretched to 10,000 layers (a model .ini made here from models/llama-2-70b.ini) on 8 and 1,024
# H100. Every figure is end to end (process start to exit), the median of RUNS runs:
#   simulate   `shardsim simulate` printing its text report (plan, schedule, simulation, summary)
#   report     `shardsim report F.h5 --html --chrome-trace` of the simulated file
#   validate   `shardsim validate F.h5 F.h5` (every rank of the file against itself)
#   usage: bench/simulate_long.sh [SHARDSIM] (default: build/shardsim)   env: RUNS (default 3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shardsim=${1:-$here/../build/shardsim}
runs=${RUNS:-3}
job=llama-7b-fsdp-6x-a100-40g  # fsdp-full-shard, bf16, AdamW; model, topology and batch set below
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e 's/^layers = 80$/layers = 10000/' -e 's/^name = llama-2-70b$/name = llama-2-70b-10000-layers/' \
  "$here/../models/llama-2-70b.ini" >"$tmp/llama-10000-layers.ini"
grep -q '^layers = 10000$' "$tmp/llama-10000-layers.ini"

# Median wall time of running "$@" RUNS times, output discarded.
median_time() {
  local times=() t0 t1
  for ((i = 0; i < runs; i++)); do
    t0=${EPOCHREALTIME/./}
    "$@" >/dev/null
    t1=${EPOCHREALTIME/./}
    times+=("$(((t1 - t0) / 1000000)).$(printf '%06d' $(((t1 - t0) % 1000000)))")  # seconds, from microseconds
  done
  printf '%s\n' "${times[@]}" | sort -g | sed -n "$(((runs + 1) / 2))p"
}

printf '%-22s %18s %6s %10s %10s %12s %10s %10s\n' model topology ranks grad_accum "ops/rank" "simulate (s)" "report (s)" "validate (s)"
row() {
  local model=$1 topo=$2 accum=$3
  local sets=(--job "$job" --set "job.model=$model" --set "job.topology=$topo" --set "batch.grad_accum=$accum")
  local out ops ranks
  out=$("$shardsim" simulate "${sets[@]}" --out "$tmp/run.h5")
  ops=$(sed -n 's/^simulated \([0-9]*\) ops per rank.*/\1/p' <<<"$out")
  ranks=$(sed -n 's/^| groups *world \([0-9]*\) .*/\1/p' <<<"$out")
  local t_sim t_rep t_val
  t_sim=$(median_time "$shardsim" simulate "${sets[@]}")
  t_rep=$(median_time "$shardsim" report "$tmp/run.h5" --html "$tmp/r.html" --chrome-trace "$tmp/t.json")
  t_val=$(median_time "$shardsim" validate "$tmp/run.h5" "$tmp/run.h5")
  printf '%-22s %18s %6s %10s %10s %12.3f %10.3f %10.3f\n' "$(basename "$model" .ini)" "$topo" "$ranks" "$accum" "$ops" \
    "$t_sim" "$t_rep" "$t_val"
}
for accum in 1 16 128; do row llama-2-70b 128x8-h100-ib "$accum"; done
row "$tmp/llama-10000-layers.ini" 8x-h100-80g-nvlink 4
row "$tmp/llama-10000-layers.ini" 128x8-h100-ib 4
