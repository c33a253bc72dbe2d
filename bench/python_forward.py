"""Images/s of forward passes of a TorchScript model in PyTorch on seeded random batches (the same
protocol as `mpq_bench forward`: two warm-up passes, median of three timed runs).

With --optimize the archive is frozen and run through torch.jit.optimize_for_inference first
(prepacked oneDNN convolutions, blocked layout): PyTorch's fastest CPU path for the archive.
--shape C,H,W sets the input shape (default 3,224,224).

usage: python3 bench/python_forward.py MODEL.pt IMAGES BATCH THREADS [--optimize] [--shape C,H,W]
"""
import sys
import time

import torch

path, images, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
shape = [3, 224, 224]
if "--shape" in sys.argv:
    shape = [int(v) for v in sys.argv[sys.argv.index("--shape") + 1].split(",")]
torch.set_num_threads(threads)
m = torch.jit.load(path).eval()
if "--optimize" in sys.argv:
    m = torch.jit.optimize_for_inference(torch.jit.freeze(m))
torch.manual_seed(0)
x = torch.randn(batch, *shape)
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
