"""Evaluates a TorchScript classifier on the first N Fashion-MNIST test images in PyTorch, with
mpq's documented preprocessing ((x/255 - 0.2860) / 0.3530), and prints top-1 as %.4f.

With --flip-bound R it prints "TOP1 BOUND": BOUND is the fraction of images whose top-1 could
change if every logit moved by at most R * max|logit| (their top-2 margin is below twice that),
ties to the lower class index as everywhere in mpq. Comparing a top-1 computed elsewhere (mpq's
C++ evaluation of the same function with operations in another order: BN folded, points summed
in another order) within BOUND holds for any model whatever its margins, as long as the two
computations differ by less than R relative: a wrong weight or layer moves logits far more and
flips confident images.

With --time it prints images/second of the forward passes instead (batch 500).

usage: python_eval.py MODEL.pt N [--time] [--threads T] [--flip-bound R]
"""
import gzip
import sys
import time

import numpy as np
import torch

model_path, n = sys.argv[1], int(sys.argv[2])
timing = "--time" in sys.argv
threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1
flip = float(sys.argv[sys.argv.index("--flip-bound") + 1]) if "--flip-bound" in sys.argv else None
torch.set_num_threads(threads)
root = "/usr/share/datasets/fashion-mnist"
with gzip.open(f"{root}/t10k-images-idx3-ubyte.gz") as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
with gzip.open(f"{root}/t10k-labels-idx1-ubyte.gz") as f:
    labels = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - 0.2860) / 0.3530
y = torch.from_numpy(labels.astype(np.int64))
m = torch.jit.load(model_path).eval()
with torch.no_grad():
    m(x[:500])  # warm-up
    t0 = time.perf_counter()
    logits = torch.cat([m(x[i:i + 500]) for i in range(0, n, 500)])
    dt = time.perf_counter() - t0
if timing:
    print("%.1f" % (n / dt))
    sys.exit(0)
top1 = (logits.argmax(1) == y).double().mean().item()  # argmax: first maximum
if flip is None:
    print("%.4f" % top1)
else:
    z = logits.double()
    top2 = z.topk(2, 1).values
    margin = top2[:, 0] - top2[:, 1]
    tau = flip * z.abs().max().item()
    print("%.4f %.6f" % (top1, (margin <= 2 * tau).double().mean().item()))
