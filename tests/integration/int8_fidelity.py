"""The int8 deployment of a trial against its fake-quant simulation, on all 10000 Fashion-MNIST
test images, with bounds that hold for any trained model:

1. The float expanded export (the simulation as a plain TorchScript model) gives the trial's
   top-1 up to images whose margin is within float32 reordering error (python_eval.py
   --flip-bound, 1e-3 of the largest logit).
2. The int8 model's logits differ from the simulation's by a relative RMS of at most
   B = 3 * sqrt(L) * (10 / 255) / sqrt(12), L = layers on int8 kernels. Why: the one step the
   simulation does not have is each int8 layer's output requantized to 8 bits over the range seen
   on calibration images (docs/models.md): rounding noise of RMS step / sqrt(12), step =
   range / 255, which is at most 10 / 255 / sqrt(12) = 1.1% of the signal for activations whose
   range is at most 10x their RMS; independent noise of L layers adds in quadrature; 3x for the
   network's gain and clipping beyond the calibration range. Measured on the width-0.25 test
   models (22-23 int8 layers, B = 16%): 1.7-6.1%.
3. The top-1 of the int8 model differs from the simulation's by at most the fraction of images
   whose top-1 can flip: those whose simulated top-2 margin is at most twice that image's
   largest logit deviation in the int8 model. Measured: 6-18% of images can flip; the top-1s
   differ by 0.05-1.4 points (0.01-0.09 on the default models, docs/benchmarks.md).

usage: int8_fidelity.py SIMULATED.pt INT8.pt TRIAL.h5
"""
import gzip
import math
import sys

import h5py
import numpy as np
import torch

torch.backends.quantized.engine = "onednn"
sim_path, int8_path, trial_path = sys.argv[1:4]
root = "/usr/share/datasets/fashion-mnist"
with gzip.open(f"{root}/t10k-images-idx3-ubyte.gz") as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
with gzip.open(f"{root}/t10k-labels-idx1-ubyte.gz") as f:
    labels = torch.from_numpy(np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64))
x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - 0.2860) / 0.3530
metrics = h5py.File(trial_path, "r")["metrics"].attrs
assert metrics["n_eval"] == len(labels), "the trial must be evaluated on the whole test split"


def logits(path):
    m = torch.jit.load(path).eval()
    with torch.no_grad():
        return torch.cat([m(x[i:i + 500]) for i in range(0, len(x), 500)]).double()


def margins(z):
    top2 = z.topk(2, 1).values
    return top2[:, 0] - top2[:, 1]


zs, z8 = logits(sim_path), logits(int8_path)
top1 = lambda z: (z.argmax(1) == labels).double().mean().item()
ok = True

sim_bound = (margins(zs) <= 2 * 1e-3 * zs.abs().max()).double().mean().item()
if abs(top1(zs) - metrics["top1"]) > sim_bound + 1e-9:
    print(f"simulation in PyTorch: top-1 {top1(zs):.4f} vs trial {metrics['top1']:.4f} (bound {sim_bound})")
    ok = False

L = int(metrics["export_int8_layers"])
bound = 3 * math.sqrt(L) * (10 / 255) / math.sqrt(12)
dz = z8 - zs
rel = (dz.norm() / (zs - zs.mean(1, keepdim=True)).norm()).item()
if not rel <= bound:
    print(f"int8 logits: relative RMS deviation {rel:.4f} > {bound:.4f} ({L} int8 layers)")
    ok = False

can_flip = (margins(zs) <= 2 * dz.abs().max(1).values).double().mean().item()
if abs(top1(z8) - top1(zs)) > can_flip + 1e-9:
    print(f"int8 top-1 {top1(z8):.4f} vs simulated {top1(zs):.4f}: more than the {can_flip:.4f} that can flip")
    ok = False
print(f"top-1 int8 {top1(z8):.4f}, simulated {top1(zs):.4f} (trial {metrics['top1']:.4f}); "
      f"int8 logit deviation {100 * rel:.1f}% RMS (bound {100 * bound:.0f}%); "
      f"{100 * can_flip:.1f}% of images can flip")
sys.exit(0 if ok else 1)
