"""Tiny attention models for test_attention.sh (issue 34): a ViT-like classifier built on
nn.MultiheadAttention (batch_first, need_weights=False: PyTorch runs it as the fused
aten::_native_multi_head_attention in eval mode), traced and scripted, and a model with a weight
mpq cannot quantize (a constant matmul operand).

usage: attention_models.py export OUT_DIR
       attention_models.py logits MODEL.pt DATA_EXPORT.h5 OUT.npy   (inputs: `mpq data export`)
"""
import json
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, e=32, heads=4):
        super().__init__()
        self.ln = nn.LayerNorm(e)
        self.attn = nn.MultiheadAttention(e, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(e, 64), nn.GELU(), nn.Linear(64, e))

    def forward(self, x):
        y = self.ln(x)
        y, _ = self.attn(y, y, y, need_weights=False)
        x = x + y
        return x + self.mlp(x)


class TinyViT(nn.Module):
    """32x32 input, 4x4 patches of 8 px, two blocks, 10 classes."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 32, 8, 8)
        self.pos = nn.Parameter(torch.randn(1, 16, 32) * 0.02)
        self.blocks = nn.Sequential(Block(), Block())
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.blocks(x).mean(1))


class ConstMatmul(nn.Module):
    """A conv and a linear mpq quantizes, and a [32, 32] weight used through torch.matmul, which
    it does not."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 8, 8)
        self.mix = nn.Parameter(torch.randn(32, 32) / 32**0.5)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.conv(x).flatten(2).mean(2)
        return self.head(torch.matmul(x, self.mix))


def export(out):
    torch.manual_seed(0)
    vit = TinyViT().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.jit.trace(vit, x).save(f"{out}/vit_traced.pt")
    torch.jit.script(vit).save(f"{out}/vit_scripted.pt")
    mm = ConstMatmul().eval()
    with torch.no_grad():
        torch.jit.trace(mm, x).save(f"{out}/matmul_traced.pt")
    counts = {
        "vit_weights": sum(p.numel() for n, p in vit.named_parameters() if p.dim() >= 2 and n != "pos"),
        "vit_attention_weights": sum(
            p.numel() for n, p in vit.named_parameters() if ".attn." in n and p.dim() >= 2),
        "matmul_fp_weights": mm.mix.numel(),
        "matmul_layer_weights": mm.conv.weight.numel() + mm.head.weight.numel(),
    }
    with open(f"{out}/counts.json", "w") as f:
        json.dump(counts, f)
    print(json.dumps(counts))


def logits(model, data, out):
    m = torch.jit.load(model).eval()
    x = torch.from_numpy(h5py.File(data, "r")["images"][()])
    with torch.no_grad():
        y = m(x)
    np.save(out, (y[0] if isinstance(y, (tuple, list)) else y).numpy())


if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(sys.argv[2])
    elif sys.argv[1] == "logits":
        logits(*sys.argv[2:5])
    else:
        sys.exit(__doc__)
