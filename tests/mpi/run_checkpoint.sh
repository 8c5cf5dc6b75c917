#!/usr/bin/env bash
# `shardsim run --checkpoint / --resume` (issue 17, item 6), on tiny-llama-cpu with AdamW in fp32:
#   1. same ranks and strategy (4 ranks, zero3): 2 steps, checkpoint, resume for 2 more: the losses
#      of steps 3-4 and the whole state (parameters, moments) are bit-for-bit those of 4 steps
#      without a break;
#   2. resharded (4 ranks zero3 -> 6 ranks ddp, the same 24 sequences per step): the state a
#      resumed run holds is bit-for-bit the state saved (written again under the new sharding);
#      2 more steps stay within 1e-5 of the uninterrupted run (not bitwise: 6 ranks add the
#      gradients of 24 sequences in another order than 4 ranks do, and fp32 addition is not
#      associative);
#   2b. the same with bf16 parameters, fp32 master weights and states on the host (T5, ZeRO-3 with
#      offload -> ZeRO-2 with optimizer offload);
#   3. a checkpoint of another model or number of sequences per step, or a damaged file (a bad
#      checksum, an index row outside the data, an impossible step count), is refused: exit 2, one
#      line naming the checkpoint and what is wrong;
#   4. a run stopped by SIGTERM writes a checkpoint of the steps it finished, and it resumes (the
#      Slurm requeue template relies on it).
# The state is compared by tests/mpi/checkpoint_state.py, which reads the files with h5py, not
# with shardsim. Skips (exit 77) when Debian's python3 has no h5py.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
PY=/usr/bin/python3
if ! "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  echo "SKIP: $PY cannot import h5py (apt-get install -y python3-h5py)"
  exit 77
fi
here=$(cd "$(dirname "$0")" && pwd)
state="$PY $here/checkpoint_state.py"

# run NP STRATEGY GRAD_ACCUM STEPS [more flags]: the step losses, one per line, in $tmp/losses.
run() {
  local np=$1 strategy=$2 accum=$3 steps=$4
  shift 4
  "$MPIEXEC" -np "$np" --oversubscribe "$SHARDSIM" run --job "$job" --json --steps "$steps" \
    --set "topology.cluster.gpus_per_node=$np" --set "parallel.strategy=$strategy" --set "batch.grad_accum=$accum" "$@" \
    >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  "$PY" -c 'import json,sys; t=open(sys.argv[1]).read(); i=t.find("{"); [print(repr(x)) for x in (json.loads(t[i:])["loss"] if i >= 0 else [])]' \
    "$tmp/out" >"$tmp/losses" 2>/dev/null
  return $rc
}

# 1. Same ranks, same strategy.
run 4 zero3 3 4 --checkpoint "$tmp/full" || fail "uninterrupted run: $(tail -3 "$tmp/err")"
tail -n 2 "$tmp/losses" >"$tmp/full_losses"
run 4 zero3 3 2 --checkpoint "$tmp/half" || fail "first half: $(tail -3 "$tmp/err")"
[[ $(cat "$tmp/half/latest") == step-000002 ]] || fail "latest is '$(cat "$tmp/half/latest")', not step-000002"
ls -a "$tmp/half" | grep -q partial && fail "a .partial folder was left behind"
run 4 zero3 3 4 --resume "$tmp/half" --checkpoint "$tmp/resumed" || fail "resumed run: $(tail -3 "$tmp/err")"
grep -q "resumed from $tmp/half/step-000002: 2 step(s) done by zero3 on 4 rank(s)" "$tmp/err" || fail "no 'resumed from' line: $(head -3 "$tmp/err")"
[[ $(wc -l <"$tmp/losses") == 2 ]] || fail "the resumed run printed $(wc -l <"$tmp/losses") losses, not 2"
cmp -s "$tmp/losses" "$tmp/full_losses" || fail "losses of steps 3-4 differ: $(paste -d' ' "$tmp/losses" "$tmp/full_losses" | tr '\n' ';')"
$state same "$tmp/full" "$tmp/resumed" || fail "resumed state differs from the uninterrupted run's"

# 2. Resharded: 4 ranks zero3 x 3 accumulation -> 6 ranks ddp x 2 (24 sequences per step either way).
run 6 ddp 2 2 --resume "$tmp/half" --checkpoint "$tmp/resharded" || fail "resharding: $(tail -3 "$tmp/err")"
$state same "$tmp/half" "$tmp/resharded" || fail "the state loaded under 6-rank ddp is not the state saved by 4-rank zero3"
run 6 ddp 2 4 --resume "$tmp/half" --checkpoint "$tmp/cont6" || fail "continuing on 6 ranks: $(tail -3 "$tmp/err")"
$state close "$tmp/full" "$tmp/cont6" 1e-5 || fail "2 steps on 6 ranks after resharding drift from the uninterrupted run"

# 2b. bf16 with fp32 master weights, states on the host: T5 under ZeRO-3 with optimizer and
#     parameter offload -> ZeRO-2 with optimizer offload (whose host staging copy is loaded from the
#     parameters): the state loaded is the state saved.
t5() {
  "$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --job "$SHARDSIM_SOURCE_DIR/jobs/tiny-t5-cpu.ini" --set precision.params=bf16 \
    --set memory.offload_optimizer=true "$@" >"$tmp/out" 2>"$tmp/err"
}
t5 --set parallel.strategy=zero3 --set memory.offload_params=true --steps 1 --checkpoint "$tmp/t5" || fail "t5 zero3 offload: $(tail -3 "$tmp/err")"
t5 --set parallel.strategy=zero2 --steps 1 --resume "$tmp/t5" --checkpoint "$tmp/t5z2" || fail "t5 -> zero2 offload: $(tail -3 "$tmp/err")"
$state same "$tmp/t5" "$tmp/t5z2" || fail "bf16 + master + host states: the state loaded under zero2 is not the state saved by zero3"

# 3. Refusals: one line, exit 2.
refused() {  # what, expected pattern; the last run's exit code in $1
  local rc=$1 what=$2 pattern=$3
  local lines
  lines=$(sed '/^-\{20,\}/,$d' "$tmp/err" | grep -c .)
  if ((rc != 2)) || ((lines != 1)) || ! grep -q -- "$pattern" "$tmp/err"; then
    fail "$what: exit $rc, $lines line(s): $(head -3 "$tmp/err")"
  fi
}
run 4 zero3 2 4 --resume "$tmp/half"
refused $? "another number of sequences per step" "its sequences_per_step is 24, this job's 16"
"$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --job "$SHARDSIM_SOURCE_DIR/jobs/tiny-gpt2-cpu.ini" --steps 3 --resume "$tmp/half" >"$tmp/out" 2>"$tmp/err"
refused $? "another model" "its model is \"tiny-llama\", this job's \"tiny-gpt2\""
cp -r "$tmp/half" "$tmp/damaged"
"$PY" - "$tmp/damaged/step-000002/rank-00001.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f["data"][5] ^= 1
PY
run 4 zero3 3 4 --resume "$tmp/damaged"
refused $? "a damaged file" "checksum mismatch"
cp -r "$tmp/half" "$tmp/bad-index"
"$PY" - "$tmp/bad-index/step-000002/rank-00000.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    rows = f["index"][:]
    rows[0]["length"] += 4096  # past the end of /data
    f["index"][:] = rows
PY
run 4 zero3 3 4 --resume "$tmp/bad-index"
refused $? "an index row outside /data" "not a slice of whole rows inside /data (the file is damaged)"
cp -r "$tmp/half" "$tmp/bad-meta"
sed -i 's/"steps_done": 2/"steps_done": -3/' "$tmp/bad-meta/step-000002/meta.json"
run 4 zero3 3 4 --resume "$tmp/bad-meta"
refused $? "a negative step count" "steps_done: bad value -3"
run 4 zero3 3 4 --resume "$tmp/nothing-here"
refused $? "no checkpoint" "no checkpoint there"

# 4. SIGTERM to mpirun: the steps finished are checkpointed before the ranks exit (mpirun, signalled
#    itself, may return before its ranks' last lines reach it: the checkpoint holds at least the
#    last step printed), and the checkpoint resumes.
"$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --job "$job" --steps 1000000 --checkpoint "$tmp/stopped" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do grep -q "^step 20/" "$tmp/out" && break; sleep 0.2; done
kill -TERM "$pid"
wait "$pid"
rc=$?
((rc != 0)) || fail "SIGTERM: exit 0"
if [[ -f $tmp/stopped/latest ]]; then
  done_steps=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps_done"])' "$tmp/stopped/$(cat "$tmp/stopped/latest")/meta.json")
  printed=$(grep -o '^step [0-9]*/' "$tmp/out" | tail -1 | tr -dc '0-9')
  ((done_steps >= printed && done_steps > 0)) || fail "SIGTERM: the checkpoint holds $done_steps steps, $printed were printed"
  "$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --job "$job" --steps $((done_steps + 1)) --resume "$tmp/stopped" >"$tmp/out" 2>"$tmp/err" ||
    fail "resuming the SIGTERM checkpoint: $(tail -3 "$tmp/err")"
else
  fail "SIGTERM: no checkpoint written: $(tail -3 "$tmp/err")"
fi

((failures == 0)) && echo "checkpoint and resume: all cases passed"
exit $((failures > 0))
