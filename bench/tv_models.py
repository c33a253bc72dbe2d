"""Writes randomly initialized torchvision classifiers for the benchmarks (no weights download):
traced TorchScript, BatchNorm running statistics warmed up on random batches so activations keep
a trained network's scale (with torchvision's initial statistics MobileNetV2's activations decay
to ~1e-7 deep in the network, which no real model has).

usage: python3 bench/tv_models.py OUT_DIR ARCH...
"""
import os
import sys

import torch
import torchvision

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
for arch in sys.argv[2:]:
    path = os.path.join(out, arch + ".pt")
    if os.path.exists(path):
        continue
    m = getattr(torchvision.models, arch)(weights=None)
    m.train()
    with torch.no_grad():
        for _ in range(4):
            m(torch.randn(16, 3, 224, 224))
    m.eval()
    torch.jit.trace(m, torch.randn(1, 3, 224, 224)).save(path)
