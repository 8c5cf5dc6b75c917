#!/usr/bin/env bash
# The one command for the first machine with a GPU: bash tools/gpu-check.sh
#
#   1. builds (tools/setup.sh), unless SHARDSIM_GPU_CHECK_NO_BUILD=1 (the ctest that runs this
#      script in CPU-only mode has built already)
#   2. ctest -L gpu: every CUDA kernel and whole models against the CPU, the communicator contract
#   3. run --verify of every tiny model on CUDA, one rank, started without mpirun (an MPI program
#      started alone is a one-rank world)
#   4. scaled copies of the seed jobs (their model cut to 2 layers per stack, 2 steps) on one GPU,
#      each capped at its topology's device memory (a 24 or 40 GiB card emulated on a larger one),
#      and one table: predicted vs measured allocated and device peak, step time and MFU
#   5. with 2+ GPUs: NCCL busbw against the raw library (mpirun -np 2 shardsim bench --backend
#      nccl) beside the model's prediction, and the 2-rank NCCL seed jobs
#
# Without a GPU it runs to completion anyway, says what it skipped and why, and runs the same
# pipeline on the CPU backend for one tiny job, so the plumbing (table included) is exercised.
# Everything it runs is bounded by SHARDSIM_GPU_CHECK_BUDGET_S (default 450 s: under 8 minutes
# with the build already done); a step that would start past it is skipped and said so.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

START=$(date +%s)
BUDGET=${SHARDSIM_GPU_CHECK_BUDGET_S:-450}
OUT=${SHARDSIM_GPU_CHECK_OUT:-$(mktemp -d /tmp/shardsim-gpu-check.XXXXXX)}
mkdir -p "$OUT"
SKIPPED=()
FAILED=()
say() { printf 'gpu-check: %s\n' "$*"; }
skip() { SKIPPED+=("$1: $2"); say "skipped $1: $2"; }
fail() { FAILED+=("$1"); say "FAILED $1"; }
elapsed() { echo $(($(date +%s) - START)); }
in_budget() { (($(elapsed) < BUDGET)) || { skip "$1" "the ${BUDGET} s budget is spent ($(elapsed) s)"; return 1; }; }

# --- 1. build ---------------------------------------------------------------------------------
if [[ ${SHARDSIM_GPU_CHECK_NO_BUILD:-0} != 1 ]]; then
  say "building (tools/setup.sh)"
  # shellcheck source=/dev/null
  (source tools/setup.sh) >"$OUT/build.log" 2>&1 || { say "build failed: $OUT/build.log"; tail -20 "$OUT/build.log"; exit 1; }
fi
SHARDSIM=${SHARDSIM:-build/shardsim}
[[ -x $SHARDSIM ]] || { say "no binary at $SHARDSIM"; exit 1; }

# --- what this machine has ---------------------------------------------------------------------
GPUS=0
if ! "$SHARDSIM" --version 2>/dev/null | grep -qi "cuda.*yes\|nccl.*yes\|CUDA [0-9]"; then
  WHY="this build has no CUDA backend ($("$SHARDSIM" --version 2>/dev/null | tr '\n' ' '))"
elif ! command -v nvidia-smi >/dev/null 2>&1; then
  WHY="nvidia-smi is not installed: no NVIDIA driver"
else
  GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
  WHY="nvidia-smi lists no GPU"
fi
((GPUS > 0)) && say "$GPUS GPU(s): $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)"
((GPUS > 0)) || say "no GPU: $WHY"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# --- 2. ctest -L gpu -----------------------------------------------------------------------------
if ((GPUS > 0)) && in_budget "ctest -L gpu"; then
  say "ctest -L gpu"
  timeout 240 ctest --test-dir build -L gpu --output-on-failure >"$OUT/ctest-gpu.log" 2>&1 || fail "ctest -L gpu ($OUT/ctest-gpu.log)"
  tail -3 "$OUT/ctest-gpu.log"
elif ((GPUS == 0)); then
  skip "ctest -L gpu" "$WHY"
fi

# --- 3. --verify of every tiny model on CUDA, one rank, no mpirun --------------------------------
TINY=(jobs/tiny-*-cpu.ini)
# A one-GPU topology for them: the tiny jobs name cpu-host.
ONE_GPU=(--set job.topology=1x-a100-80g --set topology.cluster.gpus_per_node=1)
if ((GPUS > 0)); then
  for job in "${TINY[@]}"; do
    in_budget "verify $job" || break
    if timeout 120 "$SHARDSIM" run --job "$job" --backend nccl --steps 2 --verify "${ONE_GPU[@]}" >"$OUT/verify-$(basename "$job" .ini).log" 2>&1; then
      say "verify $(basename "$job"): $(grep -o 'verify: .*' "$OUT/verify-$(basename "$job" .ini).log" | tail -1)"
    else
      fail "verify $job ($OUT/verify-$(basename "$job" .ini).log)"
    fi
  done
else
  skip "--verify of the tiny models on CUDA" "$WHY"
fi

# --- 4. scaled seed jobs, predicted vs measured ----------------------------------------------
# A copy of a model file with every stack cut to 2 layers: the seed job's shapes and engine, small
# enough for one GPU in seconds.
scaled_model() {
  local model=$1 out=$OUT/models/$1-2layers.ini
  mkdir -p "$OUT/models"
  awk -F'=' '/^(layers|cross_attention_layers)[[:space:]]*=/ { v = $2 + 0; if (v > 2) { sub(/=.*/, "= 2") } } { print }' \
    "models/$model.ini" >"$out"
  echo "$out"
}
job_model() { sed -nE 's/^model[[:space:]]*=[[:space:]]*([^[:space:]#]+).*/\1/p' "$1" | head -1; }

ROWS="$OUT/rows.tsv"
: >"$ROWS"
# One job, one rank: simulate and run the same settings; a line of the table.
compare_job() {
  local job=$1 backend=$2; shift 2
  local name; name=$(basename "$job" .ini)
  "$SHARDSIM" simulate --job "$job" "$@" --json >"$OUT/$name.sim.json" 2>"$OUT/$name.sim.err" || { fail "simulate $name ($OUT/$name.sim.err)"; return; }
  if timeout 150 "$SHARDSIM" run --job "$job" --backend "$backend" --steps 2 --force "$@" --json >"$OUT/$name.run.json" 2>"$OUT/$name.run.err"; then
    printf '%s\t%s\t%s\n' "$name" "$OUT/$name.sim.json" "$OUT/$name.run.json" >>"$ROWS"
  else
    fail "run $name ($OUT/$name.run.err)"
  fi
}

if ((GPUS > 0)); then
  for job in jobs/*.ini; do
    case $job in *tiny-*|*mini-*) continue ;; esac
    in_budget "seed job $job" || break
    model=$(job_model "$job")
    [[ -f models/$model.ini ]] || { skip "$job" "model $model is not a shipped .ini"; continue; }
    # One rank on one GPU, capped at the job's own topology's GPU memory (the executor's limit).
    compare_job "$job" nccl --set job.model="$(scaled_model "$model")" --set topology.cluster.gpus_per_node=1 \
      --set topology.cluster.nodes=1 --set batch.grad_accum=1
  done
else
  skip "scaled seed jobs on one GPU" "$WHY"
  say "CPU-only: the same comparison on the CPU backend for tiny-llama (exercises this script's pipeline)"
  compare_job jobs/tiny-llama-cpu.ini mpi --set topology.cluster.gpus_per_node=1
fi

# --- 5. two GPUs and more: NCCL busbw vs the raw library vs the model; 2-rank NCCL jobs ---------------
BENCH_LINE="NCCL busbw: skipped"
if ((GPUS >= 2)) && command -v mpirun >/dev/null 2>&1 && in_budget "NCCL bench"; then
  timeout 120 mpirun -np 2 "$SHARDSIM" bench --backend nccl --op all_gather,reduce_scatter,all_reduce \
    --min-bytes 1M --max-bytes 256M --factor 16 --json >"$OUT/bench.json" 2>"$OUT/bench.err" || fail "NCCL bench ($OUT/bench.err)"
  # The model's prediction on a 2-GPU copy of the shipped topology nearest to this GPU
  # (SHARDSIM_GPU_CHECK_TOPOLOGY picks another): whether the two GPUs share NVLink is not known here.
  case $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) in
    *H100*|*H200*) near=8x-h100-80g-nvlink ;;
    *A100*) near=8x-a100-80g-nvlink ;;
    *4090*) near=2x-rtx4090-24g ;;
    *) near=2x-a100-40g ;;
  esac
  PREDICT_TOPOLOGY=${SHARDSIM_GPU_CHECK_TOPOLOGY:-$near}
  sed -E 's/^gpus_per_node[[:space:]]*=.*/gpus_per_node = 2/; s/^nodes[[:space:]]*=.*/nodes = 1/' \
    "topologies/$PREDICT_TOPOLOGY.ini" >"$OUT/predict-topology.ini"
  "$SHARDSIM" bench --predict --topology "$OUT/predict-topology.ini" --op all_gather,reduce_scatter,all_reduce --min-bytes 1M \
    --max-bytes 256M --factor 16 --json >"$OUT/bench-predict.json" 2>"$OUT/bench-predict.err" || fail "bench --predict ($OUT/bench-predict.err)"
  echo "$PREDICT_TOPOLOGY" >"$OUT/predict-topology.txt"
  BENCH_LINE="NCCL busbw: see the bench table below"
  for job in jobs/tiny-llama-cpu.ini jobs/tiny-t5-cpu.ini; do
    in_budget "2-rank NCCL $job" || break
    timeout 120 mpirun -np 2 "$SHARDSIM" run --job "$job" --backend nccl --steps 2 --verify --set job.topology=2x-a100-40g \
      >"$OUT/nccl2-$(basename "$job" .ini).log" 2>&1 || fail "2-rank NCCL $job ($OUT/nccl2-$(basename "$job" .ini).log)"
  done
elif ((GPUS < 2)); then
  skip "NCCL busbw and the 2-rank NCCL jobs" "$( ((GPUS == 0)) && echo "$WHY" || echo "one GPU: a collective needs two ranks")"
fi

# --- the table ---------------------------------------------------------------------------------
python3 - "$ROWS" "$OUT" <<'EOF'
import json, sys, os
rows, out = sys.argv[1], sys.argv[2]
def peaks(j):
    # allocated: torch.cuda.max_memory_allocated's figure where the file has it (the caching
    # allocator's replay), else the device peak less the runtime; device: the whole device peak
    # (reserved + the CUDA runtime's own memory).
    r = j["ranks"][0]
    device = r["peak_bytes"]
    allocated = r.get("allocated_peak_bytes", device - r["peak_by_category"].get("runtime_overhead", 0))
    return allocated / 2**20, device / 2**20
print("\npredicted vs measured, one rank (allocated: the tensors' peak; device: the device's peak, caching allocator and runtime included)")
print(f"{'job':<46}{'alloc MiB':>20}{'device MiB':>20}{'step':>22}{'MFU':>16}")
print(f"{'':<46}{'pred / meas':>20}{'pred / meas':>20}{'pred / meas':>22}{'pred / meas':>16}")
for line in open(rows):
    name, sim, run = line.rstrip("\n").split("\t")
    s, r = json.load(open(sim)), json.load(open(run))
    (sa, sr), (ra, rr) = peaks(s), peaks(r)
    def t(x): return f"{x*1e3:.1f} ms" if x < 1 else f"{x:.2f} s"
    def pct(j): return f"{100*j['mfu']:.1f}%" if "mfu" in j else "-"
    print(f"{name:<46}{sa:>9.1f} / {ra:<8.1f}{sr:>9.1f} / {rr:<8.1f}{t(s['step_time_s']):>10} / {t(r['step_time_s']):<9}{pct(s):>7} / {pct(r):<6}")
bench = os.path.join(out, "bench.json")
if os.path.exists(bench) and os.path.getsize(bench) > 0:
    b, p = json.load(open(bench)), json.load(open(os.path.join(out, "bench-predict.json")))
    pred = {(s["op"], l["size_bytes"]): l["busbw_GBps"] for s in p["sections"] if s["group"] == "world" for l in s["lines"]}
    near = open(os.path.join(out, "predict-topology.txt")).read().strip()
    print(f"\nNCCL busbw (GB/s), 2 ranks, out of place: ours, the raw library, the model ({near} cut to 2 GPUs)")
    print(f"  {'op':<16}{'size (B)':>12}  {'ours':>8} {'raw':>8} {'model':>8}")
    for sec in b.get("sections", []):
        if sec.get("group") != "world": continue
        for row in sec.get("rows", []):
            o = row["out_of_place"]
            m = pred.get((sec["op"], row["size_bytes"]))
            print(f"  {sec['op']:<16}{row['size_bytes']:>12}  {o['busbw_GBps']:8.1f} {o.get('raw_busbw_GBps') or 0:8.1f} {m if m is not None else float('nan'):8.1f}")
EOF
echo "$BENCH_LINE" | grep -q skipped && ((GPUS >= 2)) && say "$BENCH_LINE"

say "done in $(elapsed) s; files in $OUT"
for s in "${SKIPPED[@]}"; do say "  skipped: $s"; done
if ((${#FAILED[@]})); then
  for f in "${FAILED[@]}"; do say "  failed: $f"; done
  exit 1
fi
say "passed"
