"""Exports torchvision models the way users do (random weights: no downloads here), as
'user models' for graph-generality tests: traced ResNet-18 and MobileNetV2 (traced graphs use
aten::_convolution) and a scripted ResNet-18 (aten::conv2d). BatchNorm statistics are made
non-trivial by a few training-mode forward passes.

usage: export_torchvision.py OUT_DIR
"""
import sys

import torch
import torchvision

out = sys.argv[1]
torch.manual_seed(0)
x = torch.randn(2, 3, 64, 64)
for name, ctor in [("resnet18", torchvision.models.resnet18), ("mobilenet_v2", torchvision.models.mobilenet_v2)]:
    m = ctor(num_classes=10)
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(8, 3, 64, 64))
    m.eval()
    torch.jit.trace(m, x).save(f"{out}/{name}_traced.pt")
    if name == "resnet18":
        torch.jit.script(m).save(f"{out}/{name}_scripted.pt")
print("exported")
