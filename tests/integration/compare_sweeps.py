"""Compares the trial files of two sweep directories run with different splits (1 process, MPI
ranks, layer-parallel, other thread counts): the same trial ids, and bit-identical results.

Exact equality is what mpq guarantees (docs/sweeps.md, "Results do not depend on the split"):
every example's statistics come from the same batches, BLAS runs single-threaded with fixed
partitions, and metrics are sums over examples in position order. So every metric except the
wall-clock ones, every /results table, and every layer's datasets and attributes must be equal
bit for bit; tables and attributes with NaN compare equal where both are NaN.

usage: compare_sweeps.py DIR_A DIR_B [--new-metrics NAME,...] [--bound REL]

Across mpq versions and LibTorch builds (issue 33's regression check, docs/toolchains.md):
--new-metrics names metrics that only DIR_B's (newer) files have; --bound REL compares numbers
with |a - b| <= REL * max(|a|, |b|, 1e-12) instead of bit for bit (another LibTorch's kernels)
and prints the largest relative difference of each metric.
"""
import glob
import os
import sys

import h5py
import numpy as np

# Wall-clock and cache-state metrics: the only ones allowed to differ.
TIMING = {"eval_seconds", "images_per_second", "quant_seconds", "calibration_seconds",
          "stats_cache_hit", "correction_seconds", "export_seconds",
          "gptq_seconds", "adaround_seconds", "adaround_cache_hit",
          "activation_calibration_seconds"}


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
        return False
    if a.dtype.kind == "f":
        return np.array_equal(a, b, equal_nan=True)
    return np.array_equal(a, b)


args = sys.argv[1:]
opt = lambda name, default: args[args.index(name) + 1] if name in args else default
NEW = set(filter(None, opt("--new-metrics", "").split(",")))
BOUND = float(opt("--bound", "0"))
worst = {}  # metric -> largest relative difference (with --bound)


def close(key, a, b):
    if BOUND == 0:
        return same(a, b)
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype.kind not in "fiub" or b.dtype.kind not in "fiub":
        return same(a, b)
    a, b = a.astype(np.float64), b.astype(np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    rel = np.where(both_nan, 0.0, np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-12))
    r = float(np.nanmax(rel)) if rel.size else 0.0
    worst[key] = max(worst.get(key, 0.0), r)
    return r <= BOUND


values = {args.index(o) + 1 for o in ("--new-metrics", "--bound") if o in args}
a_dir, b_dir = [x for i, x in enumerate(args) if not x.startswith("--") and i not in values][:2]
ids = lambda d: sorted(os.path.basename(p)[:-3] for p in glob.glob(f"{d}/trials/*.h5"))
ia, ib = ids(a_dir), ids(b_dir)
if ia != ib or not ia:
    print("FAIL: different or no trial sets:", set(ia) ^ set(ib))
    sys.exit(1)
bad = []
for i in ia:
    fa, fb = h5py.File(f"{a_dir}/trials/{i}.h5", "r"), h5py.File(f"{b_dir}/trials/{i}.h5", "r")
    ma, mb = fa["metrics"].attrs, fb["metrics"].attrs
    if set(ma) != set(mb) - NEW:
        bad.append(f"{i[:12]} metric names differ: {set(ma) ^ (set(mb) - NEW)}")
    for k in sorted(set(ma) & set(mb) - TIMING):
        if not close(k, ma[k], mb[k]):
            bad.append(f"{i[:12]} metric {k}: {ma[k]!r} vs {mb[k]!r}")
    for name in (fa["results"] if "results" in fa else []):
        if not close("results/" + name, fa["results"][name][()], fb["results"][name][()]):
            bad.append(f"{i[:12]} results/{name} differs")
    if sorted(fa["layers"]) != sorted(fb["layers"]):
        bad.append(f"{i[:12]} layer sets differ")
        continue
    for name in fa["layers"]:
        la, lb = fa["layers"][name], fb["layers"][name]
        for ds in sorted(set(la) | set(lb)):
            if ds not in la or ds not in lb or not close("layer/" + ds, la[ds][()], lb[ds][()]):
                bad.append(f"{i[:12]} layer {name} {ds} differs")
        for k in sorted((set(la.attrs) | set(lb.attrs)) - TIMING):
            if k not in la.attrs or k not in lb.attrs or not close("layer." + k, la.attrs[k], lb.attrs[k]):
                bad.append(f"{i[:12]} layer {name} attribute {k} differs")
for b in bad[:20]:
    print("FAIL", b)
if BOUND:
    for k in sorted(worst):
        if not k.startswith("layer") and worst[k] > 0:
            print(f"  {k}: largest relative difference {worst[k]:.2e}")
if bad:
    sys.exit(1)
print(f"{len(ia)} trials " + (f"within {BOUND:g} (relative)" if BOUND else "bit-identical"))
