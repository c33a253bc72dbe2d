#!/usr/bin/env python3
"""How much float32 rounding a TorchScript model amplifies, on random inputs and on real photos.

Issue 34 item 2: the export self-check once compared mpq's expanded export with mpq's simulation
(two float32 computations of the same function in different operation orders) on random inputs
and reported, for efficientnet_v2_s with random weights, a max difference of 1742 and 56% argmax
agreement, while on real photos the same file matched to 3e-5. Two float32 evaluations in
different orders differ by about as much as either differs from the exact (float64) result, so
this script measures, for each archive, float32 against float64 on
  * random inputs  (torch.randn, the old check's inputs), and
  * real photos    (results/data/photos, resized to the short side and centre-cropped, ImageNet
                    mean/std: the photos preset),
and prints max |diff|, that relative to the largest |logit|, and argmax agreement.

usage: rounding_sensitivity.py ARCHIVE... [--n 32] [--size 224] [--photos results/data/photos]
                               [--perturb 1e-6]
"""
import argparse
import json
import os

import numpy as np
import torch
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def load_photos(root, n, size):
    with open(os.path.join(root, "manifest.json")) as f:
        items = json.load(f)["images"]
    cal = [it for it in items if it["split"] == "calibration"][:n]
    out = []
    for it in cal:
        im = Image.open(os.path.join(root, it["file"])).convert("RGB")
        w, h = im.size
        s = size * 256 // 224 / min(w, h)
        im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
        w, h = im.size
        l, t = (w - size) // 2, (h - size) // 2
        a = (np.asarray(im.crop((l, t, l + size, t + size)), dtype=np.float32) / 255 - MEAN) / STD
        out.append(torch.from_numpy(a.transpose(2, 0, 1).copy()))
    return torch.stack(out)


def compare(model, x, perturb):
    with torch.no_grad():
        y32 = model.float()(x.float())
        if perturb:
            # A frozen archive (mpq's exports) keeps its weights as float32 graph constants, so
            # it cannot run in float64: measure the output's change under a relative input
            # perturbation instead (what mpq's export check does, kRoundingProbe).
            g = torch.Generator().manual_seed(4321)
            ref = model(x + x.abs() * torch.randn(x.shape, generator=g) * perturb).double()
        else:
            ref = model.double()(x.double())
            model.float()
    d = (y32.double() - ref).abs()
    scale = ref.abs().max().item()
    agree = (y32.argmax(1) == ref.argmax(1)).double().mean().item()
    return d.max().item(), d.max().item() / max(scale, 1e-30), scale, agree


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archives", nargs="+")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--photos", default="results/data/photos")
    ap.add_argument("--perturb", type=float, default=0,
                    help="instead of float64: compare with the output on inputs perturbed by this "
                         "relative amount (e.g. 1e-6; for frozen archives such as mpq's exports)")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    rnd = torch.randn(a.n, 3, a.size, a.size)
    photos = load_photos(a.photos, a.n, a.size)
    print("archive\tinputs\tmax_abs_diff\trel_to_max_logit\tmax_logit\targmax_agreement")
    for p in a.archives:
        m = torch.jit.load(p, map_location="cpu").eval()
        for name, x in (("random", rnd), ("photos", photos)):
            d, rel, scale, agree = compare(m, x, a.perturb)
            print(f"{os.path.basename(p)}\t{name}\t{d:.3g}\t{rel:.3g}\t{scale:.4g}\t{agree * 100:.1f}%", flush=True)


if __name__ == "__main__":
    main()
