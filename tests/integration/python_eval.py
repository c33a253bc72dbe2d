"""Evaluates a TorchScript classifier on the first N Fashion-MNIST test images in PyTorch, with
mpq's documented preprocessing ((x/255 - 0.2860) / 0.3530), and prints top-1 as %.4f.
With --time it prints images/second of the forward passes instead (batch 500).

usage: python_eval.py MODEL.pt N [--time] [--threads T]
"""
import gzip
import sys
import time

import numpy as np
import torch

model_path, n = sys.argv[1], int(sys.argv[2])
timing = "--time" in sys.argv
threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1
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
    preds = torch.cat([m(x[i:i + 500]).argmax(1) for i in range(0, n, 500)])
    dt = time.perf_counter() - t0
if timing:
    print("%.1f" % (n / dt))
else:
    print("%.4f" % (preds == y).double().mean().item())
