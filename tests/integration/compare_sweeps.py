"""Compares the trial files of two sweep directories: same trial ids, identical codes, scales and
points, identical counting metrics, KL within 1e-9 relative.

usage: compare_sweeps.py DIR_A DIR_B
"""
import glob
import os
import sys

import h5py
import numpy as np

a_dir, b_dir = sys.argv[1], sys.argv[2]
ids = lambda d: sorted(os.path.basename(p)[:-3] for p in glob.glob(f"{d}/trials/*.h5"))
ia, ib = ids(a_dir), ids(b_dir)
if ia != ib:
    print("FAIL: different trial sets:", set(ia) ^ set(ib))
    sys.exit(1)
bad = 0
for i in ia:
    fa, fb = h5py.File(f"{a_dir}/trials/{i}.h5", "r"), h5py.File(f"{b_dir}/trials/{i}.h5", "r")
    ma, mb = fa["metrics"].attrs, fb["metrics"].attrs
    counts = ["n_eval", "total_points", "extra_points"]
    counts += (["map_voc07", "map_voc12", "fp_map_voc07", "fidelity_map", "detections"]
               if "map_voc07" in ma else ["top1", "top5", "agreement", "fp_top1"])
    for k in counts:
        if ma[k] != mb[k]:
            print(f"FAIL {i[:12]} metric {k}: {ma[k]} vs {mb[k]}")
            bad += 1
    if "kl" in ma and abs(ma["kl"] - mb["kl"]) > 1e-9 * max(1e-12, abs(ma["kl"])):
        print(f"FAIL {i[:12]} kl {ma['kl']} vs {mb['kl']}")
        bad += 1
    for name in fa["layers"]:
        for ds in ["codes", "scales", "points_per_channel", "point_channel"]:
            if not np.array_equal(fa["layers"][name][ds][()], fb["layers"][name][ds][()]):
                print(f"FAIL {i[:12]} layer {name} {ds} differs")
                bad += 1
if bad:
    sys.exit(1)
print(f"{len(ia)} trials identical")
