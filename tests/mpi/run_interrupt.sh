#!/usr/bin/env bash
# `shardsim run --out` loses nothing, as a user (or Slurm) interrupts it, at 2 ranks:
#   1. a bad --out (missing folder, a folder, /proc/x.h5, "", /dev/full) is refused before the
#      first step: exit 2, one line, from rank 0 only, no source paths;
#   2. SIGTERM to one rank, and to mpirun: every rank stops after its step, the file is complete = 0
#      with exactly the steps printed, the ranks exit 143; report and validate refuse it unless
#      --allow-incomplete;
#   3. kill -9 of one rank: FILE.partial stays, readable, complete = 0, with every printed step;
#      report names it when asked for FILE;
#   4. no rank outlives its mpirun.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"

# 1. Bad --out: refused before anything runs (the five launched side by side: each mpirun takes
#    ~1.5 s to come down after a rank exits non-zero).
bad_outs=("$tmp/no-such-folder/run.h5" "$tmp" /proc/x.h5 "" /dev/full)
for i in "${!bad_outs[@]}"; do
  "$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --job "$job" --out "${bad_outs[$i]}" >"$tmp/out$i" 2>"$tmp/err$i" &
  pids+=($!)
done
for i in "${!bad_outs[@]}"; do
  wait "${pids[$i]}"
  rc=$?
  out=${bad_outs[$i]}
  # mpirun adds its own banner (from a line of dashes on) when a rank exits non-zero: not ours.
  lines=$(sed '/^-\{20,\}/,$d' "$tmp/err$i" | grep -c .)
  if ((rc != 2)) || ((lines != 1)) || ! grep -q "^--out: bad value '$out': .*(allowed: " "$tmp/err$i" ||
     grep -qE '\.(cpp|hpp):[0-9]' "$tmp/err$i" || grep -q '^step ' "$tmp/out$i"; then
    fail "--out '$out': exit $rc, $lines line(s) before mpirun's banner; stderr: $(cat "$tmp/err$i"); stdout: $(cat "$tmp/out$i")"
  fi
done
pids=()
((failures == 0)) && echo "ok: 5 bad --out paths refused before the first step: exit 2, one line each, e.g. $(head -1 "$tmp/err4")"

# Starts a long run in the background ($1: output file, $2: its stdout, $2.err its stderr, then
# more arguments); sets $mp and $rank_pids once it is well into the run: step 20 printed, or with
# --json (nothing printed before the end) 20 steps' worth of FILE.partial.
start_run() {
  local out=$1 log=$2 i json=0
  shift 2
  [[ " $* " == *" --json "* ]] && json=1
  "$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --job "$job" --steps 1000000 --out "$out" "$@" >"$log" 2>"$log.err" &
  mp=$!
  pids+=("$mp")
  for ((i = 0; i < 300; i++)); do
    ((json == 0)) && grep -q '^step 20/' "$log" 2>/dev/null && break
    ((json == 1)) && (($(stat -c %s "$out.partial" 2>/dev/null || echo 0) > 2000000)) && break
    sleep 0.1
  done
  rank_pids="$(rank_pid "$mp" 0) $(rank_pid "$mp" 1)"
}

# A process that has not exited (a zombie has: no init here reaps the ranks mpirun leaves).
running() { [[ -e /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

# Waits for mpirun $mp (at most 30 s), then for its ranks (mpirun may return while they still
# close their files; at most 10 s more); sets $rc. Fails if a rank is still running after that.
finish_run() {
  local i p
  for ((i = 0; i < 300; i++)); do kill -0 "$mp" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$mp" 2>/dev/null && { fail "$1: mpirun still running 30 s after the signal"; kill -KILL "$mp"; }
  wait "$mp"
  rc=$?
  for p in $rank_pids; do
    for ((i = 0; i < 100; i++)); do running "$p" || break; sleep 0.1; done
    running "$p" && fail "$1: rank process $p still running 10 s after mpirun ended"
  done
}

# What `report --allow-incomplete --json` says of a file: "complete steps_in_file".
file_state() {
  "$SHARDSIM" report "$1" --allow-incomplete --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(int(j["complete"]), len(j["steps_in_file"]), j["steps_in_file"][-1] + 1)'
}

last_printed() { grep -o '^step [0-9]*/' "$1" | tail -1 | tr -dc '0-9'; }

# 2. SIGTERM to rank 1 (with --json: the stop is a JSON object), then to mpirun.
for target in rank1 mpirun; do
  out=$tmp/term-$target.h5
  log=$tmp/term-$target.log
  if [[ $target == rank1 ]]; then start_run "$out" "$log" --json; kill -TERM "${rank_pids#* }"; else start_run "$out" "$log"; kill -TERM "$mp"; fi
  finish_run "SIGTERM to $target"
  printed=$(last_printed "$log")
  [[ -s $out && ! -e $out.partial ]] || { fail "SIGTERM to $target: $out not published: $(tail -3 "$log" "$log.err")"; continue; }
  read -r complete n last < <(file_state "$out")
  completion=$(h5dump -a /completion "$out" | sed -n 's/.*(0): "\(.*\)"$/\1/p')
  [[ $complete == 0 && $n == "$last" && $completion == "stopped by SIGTERM after step $n of 1000000" ]] ||
    fail "SIGTERM to $target: file says complete=$complete, $n steps (last $last), '$completion'"
  if [[ $target == rank1 ]]; then
    # mpirun waits for ranks that exit on their own: rank 0's JSON is all there.
    python3 - "$log" "$n" "$out" <<'PY' || fail "SIGTERM to rank 1: the JSON on stdout: $(head -c 300 "$log")"
import json, sys
j = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
assert j["complete"] is False and j["stopped_by"] == "SIGTERM" and j["exit_status"] == 143, j
assert j["steps_recorded"] == n and len(j["loss"]) == n and j["out"] == sys.argv[3], (j["steps_recorded"], n)
assert j["completion"] == f"stopped by SIGTERM after step {n} of 1000000", j["completion"]
PY
    grep -q "Exit code: *143" "$log.err" || fail "SIGTERM to rank 1: no rank exited 143: $(tail -5 "$log.err")"
    printed=$n
  else
    # mpirun, signalled itself, may return before its ranks' last lines reach it: the file says it.
    ((n >= ${printed:-0})) || fail "SIGTERM to mpirun: $n steps in the file, $printed printed"
  fi
  "$SHARDSIM" report "$out" >/dev/null 2>"$tmp/err"
  r=$?
  ((r == 2)) && grep -q "incomplete timeline file (stopped by SIGTERM after step $n of 1000000)" "$tmp/err" ||
    fail "report of an incomplete file: exit $r: $(cat "$tmp/err")"
  "$SHARDSIM" validate "$out" "$out" >/dev/null 2>"$tmp/err"
  r=$?
  ((r == 2)) || fail "validate of an incomplete file: exit $r: $(cat "$tmp/err")"
  echo "ok: SIGTERM to $target: stopped after step $n ($printed reported), file complete = 0 with its $n steps (mpirun exit $rc)"
done

# 3. kill -9 of rank 1: nothing can be written any more; FILE.partial holds what was.
out=$tmp/killed.h5
start_run "$out" "$tmp/killed.log"
kill -KILL "${rank_pids#* }"
finish_run "kill -9"
printed=$(last_printed "$tmp/killed.log")
if [[ -s $out.partial && ! -e $out ]]; then
  read -r complete n last < <(file_state "$out.partial")
  # The file is appended before a step is printed: at least the printed steps, whole.
  [[ $complete == 0 && $n == "$last" && ${n:-0} -ge ${printed:-1} ]] ||
    fail "kill -9: $out.partial says complete=$complete with $n steps (last $last), $printed printed"
  "$SHARDSIM" report "$out" >/dev/null 2>"$tmp/err"
  grep -q "^$out: no such file, but $out.partial is there" "$tmp/err" || fail "report of the missing file: $(cat "$tmp/err")"
  h5dump -H "$out.partial" >/dev/null || fail "h5dump cannot read $out.partial"
  echo "ok: kill -9 of rank 1 after step $printed: $out.partial readable, complete = 0, $n steps (mpirun exit $rc)"
else
  fail "kill -9: expected $out.partial and no $out: $(ls "$tmp")"
fi

((failures == 0)) && echo "all passed"
((failures == 0))
