"""Compares logits: an mpq HDF5 (`--save-logits`, /logits) or a .npy (--npy) against a .npy.

usage: compare_logits.py OURS.h5 REF.npy BOUND [--top1]
       compare_logits.py --npy OURS.npy REF.npy BOUND [--top1]
Prints max |ours - ref| / max |ours|; exits 1 if the shapes differ or it exceeds BOUND. With
--top1 the arg-max must also agree on every row whose top-2 margin (in ref) exceeds the bound
times the largest |logit| (rows within it may flip).
"""
import sys

import h5py
import numpy as np

args = [a for a in sys.argv[1:] if not a.startswith("--")]
ours = np.load(args[0]) if "--npy" in sys.argv else h5py.File(args[0], "r")["logits"][()]
ref, bound = np.load(args[1]), float(args[2])
if ours.shape != ref.shape:
    print(f"shapes {ours.shape} vs {ref.shape}")
    sys.exit(1)
scale = max(float(np.abs(ours).max()), 1e-30)
err = float(np.abs(ours - ref).max() / scale)
ok = err <= bound
if "--top1" in sys.argv and ref.ndim == 2 and ref.shape[1] > 1:
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > bound * scale
    ok = ok and bool((ours.argmax(1) == ref.argmax(1))[clear].all())
print(f"{err:.1e}")
sys.exit(0 if ok else 1)
