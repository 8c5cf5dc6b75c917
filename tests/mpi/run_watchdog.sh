#!/usr/bin/env bash
# No hang ([Note: collective watchdog]): one rank of `shardsim run --out` stopped (SIGSTOP) or
# killed (kill -9) at 2 and 6 ranks, with --collective-timeout 5:
#   - mpirun and every rank end, non-zero, within the timeout + 10 s of the signal; no rank
#     process is left (not even the stopped one);
#   - a stopped rank: one line names the collective, its group and the stopped rank as not arrived,
#     and the job exits 124;
#   - FILE.partial is readable, complete = 0, and holds at least every step printed.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
timeout_s=5

# A process that has not exited (a zombie has: no init here reaps the ranks mpirun leaves).
running() { [[ -e /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

for np in 2 6; do
  victim=$((np / 2))
  for sig in STOP KILL; do
    name="SIG$sig of rank $victim of $np"
    out=$tmp/$np-$sig.h5
    log=$tmp/$np-$sig.log
    "$MPIEXEC" -np "$np" --oversubscribe "$SHARDSIM" run --job "$job" --set topology.cluster.gpus_per_node="$np" \
      --steps 1000000 --out "$out" --collective-timeout "$timeout_s" >"$log" 2>"$log.err" &
    mp=$!
    pids+=("$mp")
    for ((i = 0; i < 600; i++)); do
      grep -q '^step 10/' "$log" 2>/dev/null && break
      kill -0 "$mp" 2>/dev/null || break
      sleep 0.1
    done
    ranks=()
    for ((r = 0; r < np; r++)); do ranks+=("$(rank_pid "$mp" "$r")"); done
    if ! grep -q '^step 10/' "$log" || ((${#ranks[@]} != np)) || [[ " ${ranks[*]} " == *"  "* ]]; then
      fail "$name: the run did not reach step 10 with $np ranks: $(tail -5 "$log.err")"
      kill -KILL "$mp" 2>/dev/null
      continue
    fi
    t0=$(date +%s.%N)
    kill -"$sig" "${ranks[$victim]}"
    # Everything must be over by the timeout + 10 s.
    limit=$((timeout_s + 10))
    while kill -0 "$mp" 2>/dev/null; do
      (($(echo "$(date +%s.%N) - $t0 > $limit" | bc))) && break
      sleep 0.1
    done
    if kill -0 "$mp" 2>/dev/null; then
      fail "$name: mpirun still running $limit s after the signal"
      kill -KILL "$mp" "${ranks[@]}" 2>/dev/null
    fi
    wait "$mp"
    rc=$?
    left=()
    for p in "${ranks[@]}"; do
      for ((i = 0; i < 20; i++)); do running "$p" || break; sleep 0.1; done
      running "$p" && left+=("$p")
    done
    took=$(echo "$(date +%s.%N) - $t0" | bc)
    ((${#left[@]} == 0)) || { fail "$name: rank processes ${left[*]} still running"; kill -KILL "${left[@]}"; }
    ((rc != 0)) || fail "$name: mpirun exited 0"
    if [[ $sig == STOP ]]; then
      ((rc == 124)) || fail "$name: exit $rc, not 124: $(tail -5 "$log.err")"
      grep -q "collective watchdog: .* (ranks [0-9, -]*) .*has waited .*did not arrive: .*rank $victim (no answer" "$log.err" ||
        fail "$name: no watchdog line naming rank $victim: $(grep -v '^$' "$log.err" | head -20)"
    fi
    printed=$(grep -o '^step [0-9]*/' "$log" | tail -1 | tr -dc '0-9')
    if [[ -s $out.partial ]]; then
      read -r complete n < <("$SHARDSIM" report "$out.partial" --allow-incomplete --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(int(j["complete"]), len(j["steps_in_file"]))')
      [[ $complete == 0 && ${n:-0} -ge ${printed:-1} ]] ||
        fail "$name: $out.partial says complete=$complete with ${n:-?} steps, $printed printed"
    else
      fail "$name: no $out.partial: $(ls "$tmp")"
    fi
    echo "ok: $name: all $np ranks gone $took s after the signal (timeout $timeout_s s), mpirun exit $rc, $n steps in the file ($printed printed)"
    [[ $sig == STOP ]] && grep -h "collective watchdog" "$log.err" | head -2 | sed 's/^/    /'
  done
done

((failures == 0)) && echo "all passed"
((failures == 0))
