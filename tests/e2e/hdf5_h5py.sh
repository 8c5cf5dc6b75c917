#!/usr/bin/env bash
# The timeline file read without shardsim, as docs/hdf5.md shows it:
#   - the h5py example of docs/hdf5.md, extracted from the page as written, runs on a simulated and
#     on a measured (2-rank, 3-step) file with Debian's python3-h5py and python3-matplotlib, writes
#     a PNG, and its peak equals `shardsim report --json`'s;
#   - `h5dump -A` of each file shows the schema version, completeness and units, and of a bench
#     file its units.
# Skips (exit 77) only when python3-h5py or python3-matplotlib is not installed (tools/setup.sh
# installs both).
set -euo pipefail
: "${SHARDSIM:?set SHARDSIM to the shardsim binary}" "${SHARDSIM_SOURCE_DIR:?set SHARDSIM_SOURCE_DIR}"
MPIEXEC=${MPIEXEC:-mpirun}

# Debian's python3 (apt installs h5py for it), not whatever python3 is first on PATH.
PY=/usr/bin/python3
if ! "$PY" -c 'import h5py, matplotlib' 2>/dev/null; then
    echo "SKIP: $PY cannot import h5py and matplotlib (apt-get install -y python3-h5py python3-matplotlib)"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The example, exactly as the page has it.
sed -n '/<!-- h5py-example: begin -->/,/<!-- h5py-example: end -->/p' "$SHARDSIM_SOURCE_DIR/docs/hdf5.md" |
    sed '1,2d;$d' | sed '$d' >"$work/plot_memory.py"
grep -q '^import h5py$' "$work/plot_memory.py" || fail "no h5py example found in docs/hdf5.md"

job=$SHARDSIM_SOURCE_DIR/jobs/tiny-llama-cpu.ini
"$SHARDSIM" simulate --job "$job" --out "$work/sim.h5" >/dev/null
"$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --job "$job" --steps 3 --out "$work/run.h5" >"$work/run.log" 2>&1 ||
    { tail -5 "$work/run.log"; fail "the 2-rank run failed"; }
"$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" bench --op all_gather --max-bytes 4K --iters 2 --warmup 1 \
    --out "$work/bench.h5" >/dev/null 2>&1 || fail "the 2-rank bench failed"

for f in sim run; do
    for rank in 0 1; do
        png=$work/$f-$rank.png
        out=$(cd "$work" && "$PY" plot_memory.py "$work/$f.h5" "$rank" "$png") || fail "the example failed on $f.h5 rank $rank"
        echo "$f.h5: $out"
        [[ $(head -c 8 "$png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || fail "$png is not a PNG"
        (($(stat -c %s "$png") > 10000)) || fail "$png is suspiciously small"
        peak=$(sed -n 's/.*: peak \([0-9]*\) bytes.*/\1/p' <<<"$out")
        want=$("$SHARDSIM" report "$work/$f.h5" --json | "$PY" -c '
import json, sys
r = int(sys.argv[1])
print(next(g["peak_bytes"] for g in json.load(sys.stdin)["ranks"] if r in g["ranks"]))' "$rank")
        [[ $peak == "$want" ]] || fail "$f.h5 rank $rank: the example says peak $peak bytes, shardsim report $want"
        [[ $f == run ]] && { grep -q "step 2:" <<<"$out" || fail "the measured file's last step is not 2: $out"; }
    done
done

# /buffers and /op_buffers: every op's net memory change per category (its row in /rank_0/ops)
# is what its allocations minus its frees of buffers with memory of their own come to.
for f in sim run; do
    "$PY" - "$work/$f.h5" <<'PYEOF' || fail "$f.h5: /op_buffers does not account for the ops' memory changes"
import sys, collections, h5py
f = h5py.File(sys.argv[1], "r")
buffers = {int(b["id"]): b for b in f["buffers"][:]}
net = collections.defaultdict(lambda: collections.Counter())
for u in f["op_buffers"][:]:
    b = buffers[int(u["buffer"])]
    if b["parent"] >= 0 or b["persistent"]:
        continue
    acc = u["access"].decode()
    cat = b["category"].decode()
    if "a" in acc: net[int(u["op_id"])][cat] += int(b["bytes"])
    if "f" in acc: net[int(u["op_id"])][cat] -= int(b["bytes"])
ops = f["rank_0/ops"][:]
cats = [n[len("net_"):] for n in ops.dtype.names if n.startswith("net_")]
assert cats, "no net_ columns in the ops table"
checked = 0
for row in ops[ops["step"] == ops["step"][0]]:
    for c in cats:
        want = int(row["net_" + c])
        got = net[int(row["op_id"])][c]
        assert want == got, f"op {row['op_id']} {row['kind'].decode()}: {c} {want} in ops, {got} from op_buffers"
        checked += 1
print(f"{sys.argv[1]}: {len(buffers)} buffers, {checked} op/category changes accounted for")
PYEOF
done

for f in sim run; do
    h5dump -A "$work/$f.h5" >"$work/$f.attrs" || fail "h5dump -A $f.h5"
    for a in schema_version complete completion effective_model t_start.units t.units step_time_s.units; do
        grep -q "ATTRIBUTE \"$a\"" "$work/$f.attrs" || fail "h5dump -A $f.h5 shows no attribute $a"
    done
    h5dump -a /schema_version "$work/$f.h5" | grep -q '(0): 2$' || fail "$f.h5: schema_version is not 2"
done
h5dump -A "$work/bench.h5" | grep -q 'ATTRIBUTE "busbw_GBps.units"' || fail "the bench file shows no units"
h5dump -a /schema_version "$work/bench.h5" | grep -q '(0): 1$' || fail "the bench file shows no schema version"
echo "PASS: the h5py example of docs/hdf5.md ran on both files, h5dump -A shows versions and units"
