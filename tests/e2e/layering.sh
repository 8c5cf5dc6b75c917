#!/usr/bin/env bash
# The house rule, checked: layers core -> config -> model -> plan -> timeline -> sim | comm ->
# device -> nn -> exec -> bench -> io -> report -> study -> launch -> cli. A file under src/<layer>/ or include/shardsim/<layer>/ includes
# only shardsim headers of its own layer or of layers before it; sim and comm do not include
# each other. Fails listing every offending include.
set -euo pipefail
root=${SHARDSIM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
python3 - "$root" <<'PY'
import pathlib, re, sys
root = pathlib.Path(sys.argv[1])
order = ["core", "config", "model", "plan", "timeline", "sim", "comm", "device", "nn", "exec", "bench", "io", "report", "study", "launch", "cli"]
rank = {layer: i for i, layer in enumerate(order)}
parallel = {("sim", "comm"), ("comm", "sim")}
bad, files = [], 0
for base in (root / "src", root / "include" / "shardsim"):
    for path in sorted(base.rglob("*")):
        if not path.is_file() or path.suffix not in {".hpp", ".cpp", ".cu", ".h"}:
            continue
        layer = path.relative_to(base).parts[0]
        if layer not in rank:
            continue
        files += 1
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = re.match(r'\s*#\s*include\s+"shardsim/(\w+)/', line)
            if not m:
                continue
            inc = m.group(1)
            if inc not in rank or rank[inc] > rank[layer] or (layer, inc) in parallel:
                bad.append(f"{path.relative_to(root)}:{n}: layer '{layer}' includes '{inc}' ({line.strip()})")
if files == 0:
    sys.exit(f"no sources found under {root}")
for b in bad:
    print(b)
print(f"layering: {files} files, {len(bad)} include(s) against the layer order "
      "core -> config -> model -> plan -> timeline -> sim | comm -> device -> nn -> exec -> bench -> io -> report -> study -> launch -> cli")
sys.exit(1 if bad else 0)
PY
