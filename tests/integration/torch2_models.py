"""What PyTorch 2.x users hand mpq, written by the torch of the Python running this script (the
torch2 venv: 2.14.1, torchvision 0.29.1): torchvision classifiers traced and scripted, and a
scripted detector, random weights with BatchNorm statistics warmed by training-mode passes (no
downloads here), and their logits on given input tensors.

usage: torch2_models.py export OUT_DIR
       torch2_models.py logits MODEL.pt DATA_EXPORT.h5 OUT.npy   (inputs: `mpq data export`)
       torch2_models.py run MODEL.pt DATA_EXPORT.h5 OUT.npy      (same, for any archive: mpq's)
"""
import sys

import h5py
import numpy as np
import torch
import torchvision


def warmed(m, size):
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(8, 3, size, size))
    return m.eval()


def export(out):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    r18 = warmed(torchvision.models.resnet18(num_classes=10), 64)
    torch.jit.trace(r18, x).save(f"{out}/resnet18_traced.pt")
    torch.jit.script(r18).save(f"{out}/resnet18_scripted.pt")
    mv3 = warmed(torchvision.models.mobilenet_v3_small(num_classes=10), 64)
    torch.jit.trace(mv3, x).save(f"{out}/mobilenet_v3_small_traced.pt")
    det = torchvision.models.detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21).eval()
    torch.jit.script(det).save(f"{out}/ssdlite_scripted.pt")
    print(f"exported with torch {torch.__version__}, torchvision {torchvision.__version__}")


def logits(model, data, out):
    m = torch.jit.load(model).eval()
    x = torch.from_numpy(h5py.File(data, "r")["images"][()])
    with torch.no_grad():
        y = m(x)
    if isinstance(y, (tuple, list)):
        y = y[0]
    np.save(out, y.numpy())


if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(sys.argv[2])
    else:
        logits(*sys.argv[2:5])
