#!/usr/bin/env bash
# `shardsim run` as a user runs it, under mpirun: the JSON keys, a 6-rank HDF5 file readable by
# h5dump, ZeRO-3 moving 1.5x DDP's bytes, a failing rank bringing the job down, bad world sizes,
# a job that does not fit (refused; forced: out of memory at an op).
source "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
run() { "$MPIEXEC" -np "$1" --oversubscribe "$SHARDSIM" run --job "$job" --set topology.cluster.gpus_per_node="$1" "${@:2}"; }

# 1. JSON: the keys simulate --json has, plus loss, verify, plan checks.
run 2 --steps 2 --verify --json >"$tmp/run.json" 2>"$tmp/err" || fail "2-rank run exited $?: $(tail -3 "$tmp/err")"
python3 - "$tmp/run.json" <<'PY' || fail "2-rank JSON"
import json, sys
j = json.load(open(sys.argv[1]))
for k in ["world_size", "fits", "gpu_memory_bytes", "step_time_s", "compute_time_s", "comm_time_s", "exposed_comm_s",
          "comm_bytes_per_rank", "param_count", "trainable_param_count", "ranks", "loss", "verify_max_rel_diff",
          "plan_checks_passed", "measurement_overhead_fraction"]:
    assert k in j, k
assert j["world_size"] == 2 and len(j["loss"]) == 2 and j["plan_checks_passed"] and j["verify_passed"]
r = j["ranks"][0]
for k in ["peak_bytes", "peak_by_category", "model_state_bytes", "host_peak_bytes"]:
    assert k in r, k
# The process's own footprint ([Note: process footprint] in cli/run.cpp): the resident size less
# the predicted buffers, inside what host.process_gib allows a CPU rank (auto: 0.5 GiB).
rss, pred, own = j["host_rss_peak_bytes"], j["host_predicted_bytes"], j["host_process_measured_bytes"]
allowed = j["host_process_bytes_per_rank"]
assert allowed == 512 << 20 and own == rss - (pred - allowed) and 16 << 20 < own < allowed and rss < pred, (rss, pred, own, allowed)
print(f"ok: 2 ranks, loss {j['loss']}, verify {j['verify_max_rel_diff']:.2e}, recording {100*j['measurement_overhead_fraction']:.2f}% of the step, "
      f"peak RSS {rss / 2**20:.0f} MiB of which {own / 2**20:.0f} MiB the process's own")
PY

# 2. Six ranks write one HDF5 file: six rank groups, non-empty ops and memory, readable by h5dump.
run 6 --steps 1 --out "$tmp/run6.h5" >/dev/null 2>"$tmp/err" || fail "6-rank run exited $?: $(tail -3 "$tmp/err")"
if h5dump -H "$tmp/run6.h5" >"$tmp/dump" 2>&1; then
  groups=$(grep -c 'GROUP "rank_' "$tmp/dump")
  ((groups == 6)) || fail "expected 6 rank groups, found $groups"
  for r in 0 5; do
    ops=$(h5dump -H -d "/rank_$r/ops" "$tmp/run6.h5" | grep -o 'DATASPACE  SIMPLE { ( [0-9]* )' | grep -o '[0-9]*' | head -1)
    mem=$(h5dump -H -d "/rank_$r/memory" "$tmp/run6.h5" | grep -o 'DATASPACE  SIMPLE { ( [0-9]* )' | grep -o '[0-9]*' | head -1)
    ((${ops:-0} > 0 && ${mem:-0} > 0)) || fail "rank $r: ops ${ops:-?}, memory ${mem:-?}"
  done
  echo "ok: 6-rank file has $groups rank groups with ops and memory"
else
  fail "h5dump cannot read the 6-rank file"
fi

# 2b. validate at 6 ranks: the ranks of one prediction are folded into one result, as simulate
#     folds them, not printed six times. (Whether it passes depends on how 6 ranks on this host's
#     cores overlap; exit 3 is a verdict, not a failure of this check.)
"$MPIEXEC" -np 6 --oversubscribe "$SHARDSIM" validate --job "$job" --set topology.cluster.gpus_per_node=6 \
  --time-tolerance 0 >"$tmp/v6" 2>"$tmp/err"
rc=$?
((rc == 0 || rc == 3)) || fail "6-rank validate exited $rc: $(tail -3 "$tmp/err")"
headers=$(grep -c '^ranks ' "$tmp/v6")
grep -Eq '^ranks 0-5: (PASS|FAIL) \(6 ranks with one prediction; each row shows the rank furthest from it\)$' "$tmp/v6" && ((headers == 1)) ||
  fail "6-rank validate printed $headers result headers: $(grep '^ranks ' "$tmp/v6" | head -3)"
((failures == 0)) && echo "ok: 6-rank validate folds its ranks into one result"

# 3. ZeRO-3 moves 1.5x the bytes of DDP per step (measured on the wire; one micro-batch per step,
#    as the ZeRO paper counts).
# (zero3 with stage3_max_reuse_distance 0: every unit gathered again in backward, as the paper counts;
# by default DeepSpeed keeps a model this small gathered from forward to backward.)
for s in ddp zero3; do
  extra=()
  [[ $s == zero3 ]] && extra=(--set deepspeed.stage3_max_reuse_distance=0)
  run 2 --steps 1 --json --set parallel.strategy=$s --set batch.grad_accum=1 "${extra[@]}" >"$tmp/$s.json" 2>"$tmp/err" || fail "$s run exited $?"
done
python3 - "$tmp/ddp.json" "$tmp/zero3.json" <<'PY' || fail "zero3 / ddp bytes"
import json, sys
wire = lambda f: sum(v["wire_bytes"] for v in json.load(open(f))["comm_bytes_per_rank"].values())
ratio = wire(sys.argv[2]) / wire(sys.argv[1])
print(f"ok: zero3 moved {ratio:.4f}x the bytes of ddp")
assert abs(ratio - 1.5) < 1e-9, ratio
PY

# 4. A failing rank ends the job promptly, naming rank and host; the others do not hang.
start=$(date +%s)
SHARDSIM_INJECT_FAILURE=1:5 "$MPIEXEC" -np 3 --oversubscribe -x SHARDSIM_INJECT_FAILURE "$SHARDSIM" run --job "$job" \
  --set topology.cluster.gpus_per_node=3 --steps 3 >/dev/null 2>"$tmp/err"
rc=$?
elapsed=$(($(date +%s) - start))
((rc != 0)) || fail "an injected failure exited 0"
grep -q "^\[rank 1 on .*\] shardsim run: error: injected failure at op 5" "$tmp/err" || fail "the failing rank did not say who it is: $(head -3 "$tmp/err")"
((elapsed < 60)) || fail "the job took ${elapsed}s to come down"
echo "ok: an injected failure on rank 1 ended the job in ${elapsed}s (exit $rc)"

# 5. A world size that is not the job's: one line, exit 2, said once.
"$MPIEXEC" -np 3 --oversubscribe "$SHARDSIM" run --job "$job" >/dev/null 2>"$tmp/err"
rc=$?
((rc == 2)) || fail "wrong world size exited $rc"
[[ $(grep -c "this run has 3 rank(s) (mpirun -np / srun -n; without a launcher: 1) but job tiny-llama-cpu runs on 2" "$tmp/err") == 1 ]] || fail "world size message: $(cat "$tmp/err")"
echo "ok: a 3-rank launch of a 2-rank job is refused once, exit 2"

# 6. Memory: a CPU rank has the topology's device memory. A job predicted not to fit is refused
#    before anything is allocated; forced, it fails at the op that runs out, with the prediction.
cap=$("$SHARDSIM" simulate --job "$job" --json | python3 -c 'import json,sys; print(max(r["peak_bytes"] for r in json.load(sys.stdin)["ranks"]))')
small=$(python3 -c "print($cap * 0.8 / 2**30)")  # 80% of the predicted peak: the persistent state fits
run 2 --set topology.gpu.memory_gib="$small" >/dev/null 2>"$tmp/err"
rc=$?
((rc == 2)) || fail "a job predicted not to fit exited $rc"
grep -q "^job tiny-llama-cpu is predicted to need .* per rank but x86-64 core of topology cpu-host has .*--force to run anyway)$" "$tmp/err" \
  || fail "no-fit message: $(head -3 "$tmp/err")"
run 2 --set topology.gpu.memory_gib="$small" --force >/dev/null 2>"$tmp/err"
rc=$?
((rc != 0)) || fail "a forced job past its memory exited 0"
grep -Eq "\] shardsim run: error: out of memory at op [0-9]+ \([a-z_]+ [^)]*\): it asked for .* of [a-z_]+ with .* in use; the simulator predicted .* a peak of .* \(device\)" "$tmp/err" \
  || fail "out-of-memory message: $(grep error "$tmp/err" | head -2)"
echo "ok: refused when predicted not to fit (exit 2); forced, out of memory names the op and the prediction (exit $rc)"

# calibrate --compute with the job's ranks ([Note: calibrating with the job's ranks]): both ranks
# measure at once, rank 0 alone prints and writes, and what it writes loads with its figures.
"$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" calibrate --compute --topology cpu-host --device cpu --model tiny-llama \
  --out "$tmp/cal.ini" >"$tmp/out" 2>"$tmp/err" || fail "mpirun calibrate --compute exited $?: $(tail -3 "$tmp/err")"
(($(grep -c "^wrote $tmp/cal.ini$" "$tmp/out") == 1)) || fail "mpirun calibrate --compute: not one 'wrote' line: $(grep -c wrote "$tmp/out")"
grep -q "2 rank(s) at once" "$tmp/cal.ini" || fail "the calibrated file does not say it was measured on 2 ranks at once"
grep -Eq "^time_cv = [0-9.e-]+ " "$tmp/cal.ini" || fail "no time_cv in the calibrated file"
"$SHARDSIM" simulate --job tiny-llama-cpu --set job.topology="$tmp/cal.ini" >/dev/null 2>"$tmp/err" ||
  fail "the calibrated topology does not simulate: $(head -2 "$tmp/err")"
echo "ok: calibrate --compute on 2 ranks at once writes one file that simulates"

((failures == 0)) && echo "all passed"
((failures == 0))
