#!/usr/bin/env bash
# How fast `shardsim plan` searches: configurations per second through the memory-bound pruning and
# the fast ranking, and through the full simulation, for Llama-2-70B (issue 15's targets on a
# 2-core host: 1,000,000 configurations pruned or ranked in under 10 s; 100 simulated in full in
# under 5 s). One row per search, the median of RUNS runs of each, with what it answered.
#   usage: bench/plan_search.sh [SHARDSIM] (default: build/shardsim)   env: RUNS (default 3), THREADS (default: every core)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shardsim=${1:-$here/../build/shardsim}
runs=${RUNS:-3}
threads=${THREADS:-$(nproc)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

searches=(
  "a100-80g, 64 GPUs|--model llama-2-70b --seq-len 2048 --global-batch 64 --gpus a100-80g"
  "every GPU, 512 GPUs, --allow all|--model llama-2-70b --seq-len 2048 --global-batch 512 --max-gpus 512 --allow all --confirm 100"
)
echo "shardsim plan search speed, $(nproc) cores, $threads threads, median of $runs runs"
printf '%-34s %10s %9s %11s %9s %9s %11s %8s  %s\n' search configs "prune+rank" configs/s simulated "simulate" "sims/s" "total" "answer"
printf '%-34s %10s %9s %11s %9s %9s %11s %8s\n' "" "" "(s)" "" "" "(s)" "" "(s)"
for s in "${searches[@]}"; do
  name=${s%%|*}
  args=${s#*|}
  : >"$tmp/rows"
  for ((i = 0; i < runs; i++)); do
    # shellcheck disable=SC2086
    "$shardsim" plan $args --threads "$threads" --quiet --json >"$tmp/out.json" || true
    python3 - "$tmp/out.json" >>"$tmp/rows" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
s = j["search"]
w = j["results"][0] if j["results"] else None
answer = f'{w["gpu"]} x {w["gpus"]} {w["label"]}: {w["tokens_per_s"]:.0f} tok/s' if w and w["fits"] else "nothing fits"
print(s["candidates"], s["wall_s"]["prune_rank"], s["simulated"], s["wall_s"]["simulate"], s["wall_s"]["total"], answer.replace(" ", "_"))
PY
  done
  python3 - "$tmp/rows" "$name" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = lambda k: statistics.median(float(r[k]) for r in rows)
c, pr, n, sm, tot = int(rows[0][0]), med(1), int(rows[0][2]), med(3), med(4)
print(f"{sys.argv[2]:<34s} {c:10d} {pr:9.2f} {c/pr:11.0f} {n:9d} {sm:9.2f} {n/sm:11.1f} {tot:8.2f}  {rows[0][5].replace('_', ' ')}")
PY
done
