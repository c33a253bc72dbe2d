"""The independent reference for mpq's image pipeline: torchvision 0.14's eval transform on PIL,
exactly as users (and published top-1 numbers) run it.

usage:
  torchvision_reference.py compare MPQ_EXPORT.h5 ROOT RESIZE CROP INTERP COLOR MEAN STD
      Recomputes Resize -> CenterCrop -> ToTensor -> Normalize on PIL.Image.open(p).convert(mode)
      for every path in mpq's `data export` file (paths relative to ROOT) and checks the
      tensors are bit-identical (float32). RESIZE/CROP 0 = skipped; MEAN/STD comma-separated.
  torchvision_reference.py logits MPQ_LOGITS.h5 ROOT MODEL.pt
      Runs MODEL.pt in PyTorch on the torchvision tensors of the images listed in mpq's
      `eval --save-logits` file and compares logits (relative max difference) and top-1.
Prints one line per failure and exits 1 if any.
"""
import sys

import h5py
import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image


def transform(resize, crop, interp, color, mean, std):
    steps = []
    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[interp]
    if resize > 0:
        steps.append(T.Resize(resize, interpolation=mode))
    if crop > 0:
        steps.append(T.CenterCrop(crop))
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    tf = T.Compose(steps)
    pil_mode = "RGB" if color == "rgb" else "L"
    return lambda path: tf(Image.open(path).convert(pil_mode))


def compare(export, root, resize, crop, interp, color, mean, std):
    f = h5py.File(export, "r")
    images, paths = f["images"][()], [p.decode() if isinstance(p, bytes) else p for p in f["paths"][()]]
    tf = transform(resize, crop, interp, color, mean, std)
    bad = 0
    for i, p in enumerate(paths):
        ref = tf(f"{root}/{p}").numpy()
        got = images[i]
        if ref.shape != got.shape:
            print(f"FAIL {p}: shape mpq {got.shape} vs torchvision {ref.shape}")
            bad += 1
        elif not np.array_equal(ref.view(np.uint32), got.view(np.uint32)):
            diff = np.abs(ref - got)
            print(f"FAIL {p}: {np.count_nonzero(diff)} values differ, max {diff.max():.3g}")
            bad += 1
    print(f"{len(paths) - bad}/{len(paths)} images bit-identical to torchvision "
          f"(resize {resize}, crop {crop}, {interp}, {color})")
    return bad == 0


def logits(saved, root, model_path):
    f = h5py.File(saved, "r")
    got = f["logits"][()]
    paths = [p.decode() if isinstance(p, bytes) else p for p in f["paths"][()]]
    pre = {k: f.attrs[k] for k in f.attrs}
    import json
    p = json.loads(pre["preprocessing_json"])
    tf = transform(p["resize"], p["crop"], p["interpolation"], p["color"], p["mean"], p["std"])
    x = torch.stack([tf(f"{root}/{q}") for q in paths])
    m = torch.jit.load(model_path).eval()
    with torch.no_grad():
        ref = m(x).numpy()
    rel = np.abs(ref - got).max() / max(1e-12, np.abs(ref).max())
    agree = (ref.argmax(1) == got.argmax(1)).mean()
    ok = rel < 1e-4 and agree == 1.0
    print(f"{'ok' if ok else 'FAIL'}: {len(paths)} images, logits max relative difference {rel:.2e}, "
          f"top-1 agreement {agree:.4f}")
    return ok


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "compare":
        ok = compare(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6],
                     sys.argv[7], [float(v) for v in sys.argv[8].split(",")],
                     [float(v) for v in sys.argv[9].split(",")])
    elif cmd == "logits":
        ok = logits(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
    sys.exit(0 if ok else 1)
