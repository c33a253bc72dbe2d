"""Checks an mpq trial file the way a user would read it (h5py), against what the trial claims.

usage: check_trial.py TRIAL.h5 MODEL.pt EXPECT_JSON
EXPECT_JSON: {"bits": 4, "granularity": "per_channel", "points": 1, "calibration_size": 0}
(calibration_size: images recorded; 0 for methods that use no calibration data)
Exits non-zero with a message per failed check.
"""
import hashlib
import json
import sys

import h5py
import numpy as np

path, model_path, expect = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


f = h5py.File(path, "r")
check(f.attrs["format"] == "mpq-trial", "format attribute")
check(f.attrs["status"] == "complete", "status attribute")
check(len(f.attrs["trial_id"]) == 64, "trial id is a sha256")
cfg = json.loads(f["config"][()])
check(cfg["weights"]["bits"] == expect["bits"], "config bits")
check(cfg["weights"]["granularity"] == expect["granularity"], "config granularity")

m = f["manifest"].attrs
for key in ["git_commit", "git_dirty", "torch_version", "hdf5_version", "mpi_version", "opencv_version",
            "host", "threads", "start_time", "end_time", "model_sha256", "dataset_fingerprint",
            "calibration_seed", "preprocessing", "weight_bits", "weight_granularity", "bn_folded"]:
    check(key in m, "manifest has " + key)
sha = hashlib.sha256(open(model_path, "rb").read()).hexdigest()
check(m["model_sha256"] == sha, "manifest model_sha256 is the model file's sha256")
check(m["threads"] >= 1, "threads recorded")
check(m["start_time"] <= m["end_time"], "start before end")
calib = f["manifest/calibration_indices"][()]
check(len(calib) == expect["calibration_size"], "calibration indices count")
check(m["calibration_size"] == len(calib), "manifest calibration_size matches the indices")
check((not m["calibration_used"]) or len(calib) > 0,
      "calibration indices recorded when the weights used calibration data")
check(np.all(np.diff(calib) > 0), "calibration indices sorted and distinct")

met = f["metrics"].attrs
for key in ["top1", "top5", "agreement", "kl", "fp_top1", "fp_top5"]:
    check(key in met, "metrics has " + key)
check(0 <= met["top1"] <= met["top5"] <= 1, "0 <= top1 <= top5 <= 1")
check(0 <= met["agreement"] <= 1, "agreement in [0, 1]")
check(met["kl"] >= 0, "KL >= 0")

L = 2 ** (expect["bits"] - 1) - 1
layers = f["layers"]
check(layers.attrs["count"] == len(layers), "layer count")
for name in layers:
    g = layers[name]
    a = g.attrs
    codes, scales = g["codes"][()], g["scales"][()]
    ppc, pc = g["points_per_channel"][()], g["point_channel"][()]
    check(codes.dtype == np.int8, f"{name}: codes are int8")
    check(codes.shape == (ppc.sum(), a["d"]), f"{name}: codes shape [P, d]")
    check(np.abs(codes).max() <= L, f"{name}: codes within [-L, L]")
    check(np.all(ppc == expect["points"]), f"{name}: points per channel")
    check(np.all(pc == np.repeat(np.arange(len(ppc)), ppc)), f"{name}: point_channel is channel-major")
    check(np.all(scales >= 0), f"{name}: scales non-negative")
    if expect["granularity"] == "per_layer":
        check(np.allclose(scales, scales[0]), f"{name}: one scale per layer")
    else:
        # max-range RTN per channel: the largest magnitude of every nonzero channel lands on L
        live = scales > 0
        check(np.all(np.abs(codes[live]).max(axis=1) == L), f"{name}: max |code| == L per channel")
    # The recorded error equals the error of the stored representation: rel error from codes.
    werr = g["weight_error"][()][:, 0]
    check(np.all(werr >= 0), f"{name}: weight errors non-negative")
    check(abs(a["weight_mse"] * a["params"] - werr.sum()) <= 1e-4 * max(1e-12, werr.sum()),
          f"{name}: weight_mse consistent with per-channel errors")

if failures:
    for x in failures:
        print("FAIL:", x)
    sys.exit(1)
print(f"{path}: all checks passed ({len(layers)} layers)")
