#!/usr/bin/env bash
# `shardsim bench` and `shardsim calibrate` as a user runs them, under mpirun (MPI backend):
#   2 and 3 ranks: #wrong is 0 for every size; algbw and busbw follow nccl-tests' definitions
#   (recomputed here from the printed time); rank 0 alone prints; the HDF5 file feeds calibrate,
#   whose topology simulate accepts; bad options and impossible set-ups are one-line errors.
set -uo pipefail
: "${SHARDSIM:?}" "${SHARDSIM_SOURCE_DIR:?}"
MPIEXEC=${MPIEXEC:-mpirun}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }

cat >"$tmp/check.py" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
n, dtype = int(sys.argv[2]), sys.argv[3]
assert j["world_size"] == n and j["dtype"] == dtype, (j["world_size"], j["dtype"])
assert j["wrong_total"] == 0 and j["passed"], "wrong elements"
factor = {"all_gather": (n - 1) / n, "reduce_scatter": (n - 1) / n, "all_reduce": 2 * (n - 1) / n}
lines = 0
for s in j["sections"]:
    assert s["wrong"] == 0
    for row in s["rows"]:
        for where in ("out_of_place", "in_place"):
            p = row[where]
            assert p["wrong"] == 0, (s["op"], row["size_bytes"], where)
            algbw = row["size_bytes"] / (p["time_us"] * 1e-6) / 1e9
            assert abs(p["algbw_GBps"] - algbw) <= 1e-9 * algbw, (p, algbw)
            assert abs(p["busbw_GBps"] - algbw * factor[s["op"]]) <= 1e-9 * algbw, (s["op"], p)
            if p["raw_time_us"] is not None:
                raw = row["size_bytes"] / (p["raw_time_us"] * 1e-6) / 1e9 * factor[s["op"]]
                assert abs(p["raw_busbw_GBps"] - raw) <= 1e-9 * raw
                assert abs(p["ours_over_raw"] - p["busbw_GBps"] / raw) <= 1e-9
            lines += 1
print(f"{lines} lines checked")
PY

bench() {  # bench NP ARGS... (--quiet: mpirun adds no banner of its own to a failing exit)
  local np=$1
  shift
  "$MPIEXEC" --quiet -np "$np" --oversubscribe "$SHARDSIM" bench "$@"
}

for np in 2 3; do
  for dtype in fp32 bf16; do
    if bench "$np" --min-bytes 8 --max-bytes 64K --iters 3 --warmup 1 --dtype "$dtype" --json \
        --out "$tmp/bench-$np-$dtype.h5" >"$tmp/b.json" 2>"$tmp/err" &&
        out=$(python3 "$tmp/check.py" "$tmp/b.json" "$np" "$dtype" 2>&1); then
      ok "bench np $np $dtype: #wrong 0, busbw = size/time x factor ($out)"
    else
      fail "bench np $np $dtype"
      tail -5 "$tmp/err" "$tmp/b.json"
    fi
  done
done

# The text: one header per section with a units row, one line per size, a pass line; rank 0 only.
text=$(bench 2 --op all_gather --min-bytes 1K --max-bytes 64K --factor 4 --iters 2 --warmup 0 2>&1)
rc=$?
sizes=$(grep -cE '^ +[0-9]+ +[0-9]+ +fp32 ' <<<"$text")
if ((rc == 0)) && grep -q '^# *(B) *(elements) *(us)' <<<"$text" && ((sizes == 4)) &&
    (($(grep -c '^# shardsim bench' <<<"$text") == 1)) && grep -q '^# PASS: 0 wrong' <<<"$text"; then
  ok "bench text: units row, $sizes lines, pass footer, printed once"
else
  fail "bench text (rc $rc, $sizes size lines)"
  echo "$text" | head -20
fi

# calibrate the 2-rank sweep; simulate accepts the result.
cal="$tmp/cpu-host-calibrated.ini"
if out=$("$SHARDSIM" calibrate "$tmp/bench-2-fp32.h5" --topology cpu-host --out "$cal" 2>&1) &&
    grep -q 'intra_node' <<<"$out" && grep -q 'fitted by shardsim calibrate' "$cal" &&
    "$SHARDSIM" simulate --job tiny-llama-cpu --set "job.topology=$cal" >/dev/null 2>&1; then
  ok "calibrate: $(grep -E '^intra_node +all ' <<<"$out" | awk '{print "median error " $4 ", max " $5}')"
else
  fail "calibrate"
  echo "$out"
fi

# Errors: one line, exit 2, whatever the number of ranks.
expect_error() {  # expect_error NAME PATTERN COMMAND...
  local name=$1 pattern=$2
  shift 2
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if ((rc == 2)) && (($(wc -l <<<"$out") == 1)) && grep -q -- "$pattern" <<<"$out"; then
    ok "$name: $out"
  else
    fail "$name (exit $rc)"
    echo "$out"
  fi
}
expect_error "bad option under mpirun" "--op: bad value 'gather'" bench 2 --op gather
expect_error "bad size under mpirun" "--max-bytes: bad value '1T'" bench 2 --max-bytes 1T
expect_error "topology that is not the world" "--topology: bad value '4x8-h100-ib'" bench 2 --topology 4x8-h100-ib
expect_error "nccl without a GPU" "cannot use a GPU" bench 2 --backend nccl --max-bytes 64

echo "$failures failure(s)"
((failures == 0))
