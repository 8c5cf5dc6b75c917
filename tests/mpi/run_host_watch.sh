#!/usr/bin/env bash
# `run` watches each rank's resident size against simulate's host figure for it (issue 17, item 8):
#   1. with host.process_gib = 0 the prediction leaves the process itself out, so every rank passes
#      it: exactly one warning line per rank, naming the rank, its resident size, the step and the
#      prediction, and the run still finishes (exit 0);
#   2. with the default (0.5 GiB per CPU rank, measured: README) no rank warns.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"

"$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --job "$job" --steps 3 --set topology.host.process_gib=0 >"$tmp/out" 2>"$tmp/err"
rc=$?
((rc == 0)) || fail "process_gib=0: exit $rc: $(tail -3 "$tmp/err")"
for r in 0 1; do
  n=$(grep -c "^\[rank $r on .*\] shardsim run: warning: resident size .* after step 1 exceeds the .* of host memory predicted for this rank (of which 0 B for the process itself, host.process_gib)$" "$tmp/err")
  ((n == 1)) || fail "rank $r warned $n times, not once: $(grep warning "$tmp/err")"
done
"$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --job "$job" --steps 3 >"$tmp/out" 2>"$tmp/err" || fail "default: exit $?"
grep -q "warning: resident size" "$tmp/err" && fail "a rank warned under the default process_gib: $(grep warning "$tmp/err")"
((failures == 0)) && echo "host memory watch: all cases passed"
exit $((failures > 0))
