#!/usr/bin/env python3
"""Reads a shardsim checkpoint (io/checkpoint.hpp) independently of shardsim, with h5py, and
compares two of them tensor by tensor: every (state, unit, tensor) assembled from its rows in
every rank file, checksums checked.

  checkpoint_state.py same A B     exit 0 when A and B hold bit-for-bit the same state
  checkpoint_state.py close A B T  exit 0 when every value of B is within relative T of A's
A and B are checkpoint folders (their `latest`) or step-N folders."""
import json
import os
import sys

import h5py
import numpy as np

DTYPES = {"fp32": np.float32, "bf16": np.uint16, "fp16": np.float16}


def fnv1a(data):
    h = 14695981039346656037
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def values(dtype, x):
    """The numbers a slice holds, in float64 (bf16 is kept as its 16 raw bits)."""
    if dtype == "bf16":
        return (x.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return x.astype(np.float64)


def load(folder):
    latest = os.path.join(folder, "latest")
    if os.path.exists(latest):
        folder = os.path.join(folder, open(latest).read().strip())
    meta = json.load(open(os.path.join(folder, "meta.json")))
    pieces = {}
    for r in range(meta["world_size"]):
        with h5py.File(os.path.join(folder, "rank-%05d.h5" % r), "r") as f:
            data = f["data"][:].tobytes()
            for row in f["index"][:]:
                raw = data[row["offset"]:row["offset"] + row["length"]]
                if fnv1a(raw) != int(row["checksum"]):
                    sys.exit("%s rank %d: checksum mismatch" % (folder, r))
                key = (row["state"].decode(), int(row["unit"]), int(row["tensor"]))
                pieces.setdefault(key, []).append((int(row["first_row"]), int(row["rows"]), int(row["row_elements"]),
                                                   int(row["total_rows"]), row["dtype"].decode(), raw))
    state = {}
    for key, parts in pieces.items():
        total, width, dt = parts[0][3], parts[0][2], parts[0][4]
        out = np.zeros((total, width), dtype=DTYPES[dt])
        seen = np.zeros(total, dtype=int)
        for first, rows, _, _, _, raw in parts:
            out[first:first + rows] = np.frombuffer(raw, dtype=DTYPES[dt]).reshape(rows, width)
            seen[first:first + rows] += 1
        if not (seen == 1).all():
            sys.exit("%s: %s has rows held %s times" % (folder, key, sorted(set(seen.tolist()))))
        state[key] = (dt, out)
    return meta, state


def main():
    mode, a, b = sys.argv[1], sys.argv[2], sys.argv[3]
    (ma, sa), (mb, sb) = load(a), load(b)
    if set(sa) != set(sb):
        sys.exit("different tensors: %s" % sorted(set(sa) ^ set(sb))[:5])
    worst, where = 0.0, None
    for key in sorted(sa):
        (da, xa), (db, xb) = sa[key], sb[key]
        if da != db:
            sys.exit("%s: dtype %s vs %s" % (key, da, db))
        if mode == "same":
            if xa.tobytes() != xb.tobytes():
                n = int((xa != xb).sum())
                sys.exit("%s: %d of %d values differ (%s %s step %d vs %s %s step %d)" % (
                    key, n, xa.size, ma["strategy"], ma["world_size"], ma["steps_done"], mb["strategy"], mb["world_size"], mb["steps_done"]))
        else:
            fa, fb = values(da, xa), values(db, xb)
            rel = float(np.max(np.abs(fa - fb)) / max(float(np.max(np.abs(fa))), 1e-30))
            if rel > worst:
                worst, where = rel, key
    if mode == "close":
        print("largest relative difference %.3g at %s" % (worst, where))
        if worst > float(sys.argv[4]):
            sys.exit("above the tolerance %s" % sys.argv[4])
    print("%d tensors %s" % (len(sa), "bit-for-bit equal" if mode == "same" else "within tolerance"))


main()
