"""Images/s of forward passes of a TorchScript model in PyTorch on seeded random 3x224x224 batches
(the same protocol as `mpq_bench forward`: two warm-up passes, median of three timed runs).

usage: python3 bench/python_forward.py MODEL.pt IMAGES BATCH THREADS
"""
import sys
import time

import torch

path, images, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
m = torch.jit.load(path).eval()
torch.manual_seed(0)
x = torch.randn(batch, 3, 224, 224)
rates = []
with torch.no_grad():
    m(x)
    m(x)
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(0, images, batch):
            m(x)
        rates.append(images / (time.perf_counter() - t0))
print("%.1f" % sorted(rates)[1])
