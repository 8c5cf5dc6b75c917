#!/usr/bin/env bash
# `shardsim report` as a user runs it, and its HTML page in a real browser (headless Chromium):
#   - a screenshot that is not blank (pixels decoded with python3's zlib, coloured chart pixels counted)
#   - the DOM after the page's script ran: every chart has shapes, the script finished, no error
#   - every peak dot sits on the curve (a vertex of the total's outline, which draws spikes of no
#     width), in the DOM and in the pixels (ink right under each red dot, not background)
#   - the peak card is the largest peak drawn (the step drawn, not another one)
#   - with --compare, both files' ops span most of the chart: a step 14x shorter than the other
#     gets its own time axis instead of a corner of the shared one
#   - differences beyond twice read as ratios (x14.7), never as +1370.0%
#   - no console errors in Chromium's log
#   - the Chrome trace is valid JSON with the expected processes, threads and counters, and with
#     --compare both files' processes, apart
# A measured file comes from a 2-rank CPU `shardsim run` when that works here; otherwise a second
# simulation stands in for it (the unit tests cover measured files built in memory).
# Skips (exit 77) only when chromium is not installed.
set -euo pipefail
: "${SHARDSIM:?set SHARDSIM to the shardsim binary}" "${SHARDSIM_SOURCE_DIR:?set SHARDSIM_SOURCE_DIR}"

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
    echo "SKIP: chromium is not installed (apt-get install -y chromium); the HTML report was not rendered"
    exit 77
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
t_start=$(date +%s.%N)
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f} s')" "$t_start" "$(date +%s.%N)"; }

chrome() {
    local profile
    profile=$(mktemp -d -p "$work")
    timeout 180 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage \
        --user-data-dir="$profile" "$@"
}

# Checks one page: screenshot pixels, DOM counts, console. $1 = html, $2 = panels expected, $3 = compare (0|1),
# $4 = own axis expected for the compared file (0|1|any)
check_page() {
    local html=$1 panels=$2 compare=$3 own_axis=${4:-any} name
    name=$(basename "$html" .html)
    [ -s "$html" ] || fail "$html was not written"
    grep -Eq '(src|href)=["'"'"']?(https?:)?//' "$html" && fail "$html refers to something outside itself"
    chrome --screenshot="$work/$name.png" --window-size=1280,1800 --hide-scrollbars "file://$html" \
        >"$work/$name.shot.log" 2>&1 || { cat "$work/$name.shot.log"; fail "chromium could not screenshot $html"; }
    chrome --dump-dom --window-size=1280,1800 --hide-scrollbars --enable-logging=stderr --v=0 "file://$html" >"$work/$name.dom.html" 2>"$work/$name.console.log" \
        || { cat "$work/$name.console.log"; fail "chromium could not load $html"; }
    # Chromium logs every console message of the page as "INFO:CONSOLE:<line>] ..." whatever its level;
    # the page writes none, so any message (an uncaught exception, console.error) is a failure.
    if grep -E 'Uncaught|:CONSOLE[:(][0-9]*' "$work/$name.console.log"; then
        fail "console messages while loading $html"
    fi
    python3 - "$work/$name.png" "$work/$name.dom.html" "$panels" "$compare" "$own_axis" <<'PY'
import os, re, struct, sys, zlib

png_path, dom_path, panels, compare, own_axis = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
name = os.path.basename(png_path)[:-4]

def pixels(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), f"unexpected PNG format: depth {depth}, colour type {colour}"
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, bpp, rows

w, h, bpp, rows = pixels(png_path)
total = w * h
ink = coloured = 0
for line in rows:
    for x in range(0, len(line), bpp):
        r, g, b = line[x], line[x + 1], line[x + 2]
        if min(r, g, b) < 235: ink += 1
        if max(r, g, b) - min(r, g, b) > 60: coloured += 1
print(f"screenshot {w}x{h}: {100 * ink / total:.1f}% non-background pixels, {100 * coloured / total:.1f}% coloured")
assert ink > 0.03 * total, "the screenshot is (nearly) blank"
assert coloured > 0.01 * total, "no coloured chart pixels in the screenshot"

dom = open(dom_path, encoding="utf-8").read()
root = re.search(r"<html[^>]*>", dom).group(0)  # the script marks <html> when it is done
assert "data-report-error" not in root, "the page's script threw: " + root
assert 'data-report-ready="ok"' in root, "the page's script did not finish: " + root
figures = re.findall(r'<figure class="chart" data-chart="(\w+)" data-shapes="(\d+)"', dom)
kinds = [k for k, _ in figures]
assert kinds.count("memory") == panels and kinds.count("gantt") == panels, f"charts found: {figures}"
assert all(int(n) > 0 for _, n in figures), f"a chart with no shapes: {figures}"
sections = re.findall(r'<section class="panel".*?</section>', dom, re.S)
for s in sections:
    assert s.count('<path class="mem"') > 0 and s.count('<rect class="op"') > 0, "a panel without memory areas or ops"
    assert s.count('class="capacity"') + s.count('class="capacity-off"') == 1, "a memory chart without its capacity"
    if name == "seed":
        assert s.count('class="capacity"') == 1, "the seed scenario's chart without its capacity line"
    if compare:
        assert s.count('<rect class="op cmp"') > 0 and s.count('cmp-line') == 1, "a panel without the compared file"
drawn = re.search(r'data-drawn-gantt="(\d+)"', dom).group(1)
areas = dom.count('<path class="mem"')
print(f"DOM: {len(sections)} panel(s), {drawn} op blocks, {areas} memory areas")

# The peak dot on the curve: its centre is a vertex of the total's outline (spikes included).
LEFT, PLOT_W = 96.0, 1200 - 96 - 24  # charts.cpp: kLeft, kChartWidth - kLeft - kRight
def vertices(d):
    return {(round(float(x), 1), round(float(y), 1)) for x, y in re.findall(r"[ML](-?[\d.]+) (-?[\d.]+)", d)}
peaks = []
for s in sections:
    mem = re.search(r'data-chart="memory".*?</figure>', s, re.S).group(0)
    total = re.search(r'<path class="mem-total" d="([^"]+)"', mem)
    dot = re.search(r'<circle class="peak" cx="([\d.]+)" cy="([\d.]+)"[^>]*><title>[^<]*peak: ([^<]+) at ', mem)
    assert total and dot, "a memory chart without its total outline or its peak dot"
    assert (round(float(dot.group(1)), 1), round(float(dot.group(2)), 1)) in vertices(total.group(1)), \
        f"the peak dot ({dot.group(1)}, {dot.group(2)}) is not on the curve"
    peaks.append(dot.group(3))
# The card shows the drawn step's peak: the largest of the dots.
def size(text):
    v, u = text.split()
    return float(v) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[u]
card = re.search(r'peak device memory \(fullest rank\)</div><div class="card-value">([^<]+) of ', dom).group(1)
assert size(card) == max(size(p) for p in peaks), f"peak card {card}, dots {peaks}"
# Ratios, not four-digit percentages.
big = re.findall(r"[+-]\d{3,}\.\d%", dom)
assert not big, f"differences as huge percentages: {big[:3]}"
if compare:
    axis = 'data-axis="compare"' in dom
    assert own_axis == "any" or axis == (own_axis == "1"), f"own axis for the compared file: {axis}, expected {own_axis}"
    for s in sections:
        gantt = re.search(r'data-chart="gantt".*?</figure>', s, re.S).group(0)
        for cls in ("op", "op cmp"):
            ends = [float(x) + float(w) for x, w in re.findall(r'<rect class="' + cls + r'" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', gantt)]
            assert ends and (max(ends) - LEFT) / PLOT_W > 0.45, f"'{cls}' blocks span {(max(ends) - LEFT) / PLOT_W:.0%} of the chart"
    print(f"compare: both timelines span the chart ({'own axis each' if axis else 'one shared axis'})")

# In the pixels: where the page put each peak dot (its script notes it), red; right under it, ink
# (the spike or the areas), not background. Dots below the screenshot's height are not checked.
def red(p): return p[0] > 190 and p[1] < 90 and p[2] < 90
found = 0
for x, y, r in (map(int, m.split(",")) for m in re.findall(r'<circle class="peak"[^>]*data-page-xyr="([\d,-]+)"', dom)):
    if y + r + 8 >= h:
        continue
    found += 1
    assert any(red(rows[y + dy][(x + dx) * bpp:(x + dx) * bpp + 3]) for dy in (-1, 0, 1) for dx in (-1, 0, 1)), \
        f"no red peak dot at ({x}, {y}) in the screenshot"
    below = [rows[yy][xx * bpp:xx * bpp + 3] for yy in range(y + r + 2, y + r + 7) for xx in (x - 1, x, x + 1)]
    assert any(min(p) < 200 for p in below), f"the peak dot at ({x}, {y}) floats over background in the screenshot"
assert found >= 1, "no peak dot within the screenshot"
print(f"pixels: {found} peak dot(s) red where the page put them, each with ink right under it")
PY
}

# 1. The seed scenario (6 ranks sharing one predicted timeline), with its trace.
"$SHARDSIM" simulate --out "$work/sim.h5" >/dev/null
"$SHARDSIM" report "$work/sim.h5" --html "$work/seed.html" --chrome-trace "$work/seed.json" >"$work/seed.txt"
grep -q "per rank group" "$work/seed.txt" || fail "no per-rank table in the text report"
grep -q "compute utilisation" "$work/seed.txt" || fail "no utilisation in the text report"
grep -q "HTML report written to $work/seed.html" "$work/seed.txt" || fail "the report did not say where the page is"
check_page "$work/seed.html" 1 0
python3 - "$work/seed.json" <<'PY'
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
procs = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
threads = {(e["pid"], e["args"]["name"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
series = {e["name"] + " " + k for e in events if e["ph"] == "C" for k in e["args"]}
assert procs == {100000: "ranks 0-5 (simulated, one shared timeline)"}, procs
assert {(100000, "compute"), (100000, "comm")} <= threads, threads
assert {"memory MiB params", "memory MiB gathered_params", "memory MiB activations"} <= series, series
xs = [e for e in events if e["ph"] == "X"]
assert xs and all(e["dur"] >= 0 and "bytes" in e["args"] and "flops" in e["args"] for e in xs)
assert any("busbw_GBps" in e["args"] for e in xs)
print(f"trace: {len(xs)} ops, {len(series)} memory series, threads {sorted(t for _, t in threads)}")
PY

# 2. Measured beside predicted: a 2-rank CPU run when it works here, else a second simulation.
job="$SHARDSIM_SOURCE_DIR/jobs/tiny-gpt2-cpu.ini"
"$SHARDSIM" simulate --job "$job" --out "$work/tiny-sim.h5" >/dev/null
other="$work/tiny-run.h5"
if [ -n "${MPIEXEC:-}" ] && timeout 300 "$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --job "$job" --out "$other" \
        >"$work/run.log" 2>&1; then
    expect_pid0="rank 0 (measured)"
    panels=2
else
    echo "note: 'shardsim run' did not produce a measured file here (tail of its log below); a second simulation stands in"
    tail -n 5 "$work/run.log" 2>/dev/null || true
    "$SHARDSIM" simulate --job "$job" --set parallel.strategy=zero2 --out "$other" >/dev/null
    expect_pid0=""
    panels=1
fi
"$SHARDSIM" report "$other" --compare "$work/tiny-sim.h5" --html "$work/compare.html" \
    --chrome-trace "$work/compare.json" >"$work/compare.txt"
grep -q "side by side" "$work/compare.txt" || fail "no side-by-side table with --compare"
check_page "$work/compare.html" "$panels" 1 any
python3 - "$work/compare.json" "$expect_pid0" <<'PY'
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
procs = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
simulated = [p for p in procs if 100000 <= p < 200000]
others = [p for p in procs if p < 100000 or p >= 200000]
assert simulated and others, f"both files' processes expected: {procs}"
if sys.argv[2]:
    assert procs[0] == sys.argv[2] and procs[1] == "rank 1 (measured)", procs
assert all(any(e["ph"] == "X" and e["pid"] == p for e in events) for p in procs), "a process without ops"
print(f"compare trace: processes {sorted(procs.values())}")
PY
# 3. Two predictions whose steps differ ~14x (compute at 2% instead of 30% of the peak): each file on
#    its own time axis, both readable; the text says the difference as a ratio.
"$SHARDSIM" simulate --job "$job" --out "$work/fast.h5" >/dev/null
"$SHARDSIM" simulate --job "$job" --set topology.gpu.compute_efficiency=0.02 --out "$work/slow.h5" >/dev/null
"$SHARDSIM" report "$work/slow.h5" --compare "$work/fast.h5" --html "$work/scales.html" >"$work/scales.txt"
grep -Eq '^step time +[0-9.]+ [mu]?s +[0-9.]+ [mu]?s +x[0-9.]+$' "$work/scales.txt" ||
    fail "the step time difference is not a ratio: $(grep '^step time' "$work/scales.txt")"
check_page "$work/scales.html" 1 1 1

echo "PASS: report text, HTML rendered in $("$CHROMIUM" --version 2>/dev/null | head -1), traces valid ($(elapsed))"
