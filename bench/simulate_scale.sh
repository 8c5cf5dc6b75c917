#!/usr/bin/env bash
# How long `shardsim simulate` takes as the cluster grows: Llama-2-70B with fsdp-full-shard on
# 4 x 8 H100 (32 ranks) and 128 x 8 H100 (1024 ranks). Prints one row per topology: the
# simulator's own time (simulation_wall_time_s of --json: plan, schedule, simulate) and the whole
# process (start-up included), each the median of RUNS runs, with what was predicted.
#   usage: bench/simulate_scale.sh [SHARDSIM] (default: build/shardsim)   env: RUNS (default 5)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shardsim=${1:-$here/../build/shardsim}
runs=${RUNS:-5}
job=llama-7b-fsdp-6x-a100-40g  # fsdp-full-shard, bf16, AdamW; model and topology set below
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf '%-15s %6s %6s %13s %13s %11s %9s %10s %5s\n' topology ranks ops/rk "simulate (s)" "process (s)" "step (s)" exposed "peak GiB" fits
for topo in 4x8-h100-ib 128x8-h100-ib; do
  sets=(--job "$job" --set "job.topology=$topo" --set job.model=llama-2-70b)
  ops=$("$shardsim" simulate "${sets[@]}" | sed -n 's/^simulated \([0-9]*\) ops per rank.*/\1/p')
  : >"$tmp/times"
  for ((i = 0; i < runs; i++)); do
    t0=$(date +%s.%N)
    "$shardsim" simulate "${sets[@]}" --json >"$tmp/out.json"
    t1=$(date +%s.%N)
    python3 - "$tmp/out.json" "$t0" "$t1" >>"$tmp/times" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
peak = max(r["peak_bytes"] for r in j["ranks"]) / 2**30
print(j["simulation_wall_time_s"], float(sys.argv[3]) - float(sys.argv[2]), j["world_size"], j["step_time_s"],
      j["exposed_comm_fraction"], peak, "yes" if j["fits"] else "NO")
PY
  done
  python3 - "$tmp/times" "$topo" "$ops" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
sim = statistics.median(float(r[0]) for r in rows)
proc = statistics.median(float(r[1]) for r in rows)
r = rows[0]
print(f"{sys.argv[2]:<15s} {int(r[2]):6d} {sys.argv[3]:>6s} {sim:13.3f} {proc:13.3f} {float(r[3]):11.3f} {100*float(r[4]):8.1f}% {float(r[5]):10.2f} {r[6]:>5s}")
PY
done
