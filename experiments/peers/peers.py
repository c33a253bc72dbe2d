#!/usr/bin/env python3
"""Peer PTQ toolkits beside mpq on EfficientNet-Lite0: same weights, same photos, one harness.

Every quantized model -- a peer's (Brevitas, run here from PyPI) and mpq's (its expanded
`--export`, a TorchScript file) -- is evaluated by this script on the same preprocessed tensors
of the photos' evaluation split, against the same FP model (the PyPI package's nn.Module), with
mpq's fidelity metrics (docs/trial-file-format.md): top-1 agreement, top-5 agreement (FP top-1
among the quantized top-5), mean KL(FP || quantized) in nats, output SQNR in dB. Calibration
images are the ones an mpq trial used (its /manifest/calibration_indices in the photos'
calibration split), so peer and mpq calibrate on the same images.

usage: peers.py --mpq-trial T.h5 [--mpq LABEL=TRIAL.h5:EXPORT.pt ...] [--peer METHOD ...]
                --bits 4 --granularity per_channel [--eval-limit N] [--out table.tsv]

  --peer     brevitas_rtn (max-abs scale, "stats"), brevitas_mse (MSE scale), brevitas_rtn_bc
             (RTN, then Brevitas's bias correction on the calibration images), brevitas_gptq,
             brevitas_gptq_actorder, brevitas_cle_rtn (graph equalization, 20 iterations, then
             RTN), brevitas_learned_round (hard-sigmoid learned rounding, layerwise,
             --iters iterations, AdaRound-style; needs accelerate, so PyTorch 2.x);
             aimet_rtn, aimet_adaround, aimet_cle_rtn (AIMET 2.42 on PyTorch 2.x:
             experiments/peers/aimet_peer.py says what is matched);
             mct_mse, mct_mse_bc (Sony's MCT 2.6.1 PTQ, MSE thresholds, without/with its
             bias correction, on PyTorch 2.x: experiments/peers/mct_peer.py)
Run by experiments/peers/run.sh (creates the venv, runs mpq, writes the table).
"""
import argparse
import contextlib
import copy
import io
import json
import os
import sys
import time
import traceback

import numpy as np
import torch
from PIL import Image

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "scripts"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_pretrained  # noqa: E402  (the same loader mpq's archives come from)


def preprocess(path, pp):
    """Short side to pp.resize (bicubic), centre crop pp.crop, mean/std: the model's preset."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = pp["resize"] / min(w, h)
    im = im.resize((max(pp["resize"], round(w * s)), max(pp["resize"], round(h * s))), Image.BICUBIC)
    w, h = im.size
    c = pp["crop"]
    l, t = (w - c) // 2, (h - c) // 2
    x = np.asarray(im.crop((l, t, l + c, t + c)), dtype=np.float32) / 255
    x = (x - np.array(pp["mean"], np.float32)) / np.array(pp["std"], np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


def split_files(root, split):
    with open(os.path.join(root, "manifest.json")) as f:
        images = json.load(f)["images"]
    return [os.path.join(root, e["file"]) for e in images if e["split"] == split]


def fidelity(fp, q):
    fp, q = fp.double(), q.double()
    top = fp.argmax(1)
    agree = (q.argmax(1) == top).double().mean().item()
    top5 = q.topk(5, 1).indices
    agree5 = (top5 == top[:, None]).any(1).double().mean().item()
    lp, lq = torch.log_softmax(fp, 1), torch.log_softmax(q, 1)
    kl = (lp.exp() * (lp - lq)).sum(1).mean().item()
    noise = ((fp - q) ** 2).sum().item()
    sqnr = 200.0 if noise <= 1e-20 * (fp ** 2).sum().item() else min(
        200.0, 10 * np.log10((fp ** 2).sum().item() / noise))
    return {"agreement": 100 * agree, "agreement_top5": 100 * agree5, "kl": kl, "sqnr_db": sqnr}


def run(model, x, batch=32):
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def standardize(model):
    """The PyPI port's convolutions are nn.Conv2d subclasses (Conv2dStaticSamePadding) whose
    forward pads and calls F.conv2d. torch.fx traces through such a non-torch.nn module, so
    Brevitas sees functional convolutions on parameters and quantizes none of them: without this
    step "W4" Brevitas quantized only the final Linear (1 of 50 layers), silently. Each is
    replaced by nn.Sequential(its padding, a plain nn.Conv2d holding the same tensors)."""
    import torch.nn as nn
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Conv2d) and type(child) is not nn.Conv2d:
            conv = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                             child.padding, child.dilation, child.groups, child.bias is not None)
            conv.weight = child.weight
            if child.bias is not None:
                conv.bias = child.bias
            pad = getattr(child, "static_padding", nn.Identity())
            if type(pad).__name__ == "Identity":
                pad = nn.Identity()
            setattr(model, name, nn.Sequential(pad, conv))
        elif type(child).__name__ == "Identity" and type(child) is not nn.Identity:
            setattr(model, name, nn.Identity())  # the port's own; AIMET refuses unknown modules
        else:
            standardize(child)
    return model


def count_quant_layers(m):
    import brevitas.nn as qnn
    return sum(isinstance(x, (qnn.QuantConv2d, qnn.QuantLinear)) for x in m.modules())


def brevitas_model(model, method, bits, granularity, calib, iters):
    from brevitas.graph.quantize import preprocess_for_quantize
    from brevitas_examples.imagenet_classification.ptq.ptq_common import apply_gptq, quantize_model
    eq = 20 if method == "brevitas_cle_rtn" else 0
    # relu6_to_relu=False: Brevitas's default turns ReLU6 into ReLU (right only when an activation
    # quantizer clips at 6); weight-only must keep the FP network's function.
    m = preprocess_for_quantize(standardize(copy.deepcopy(model)), equalize_iters=eq,
                                relu6_to_relu=False)
    m = quantize_model(
        m, backend="layerwise", weight_bit_width=bits, act_bit_width=None, bias_bit_width=None,
        weight_quant_granularity=granularity, act_quant_percentile=None, act_quant_type="sym",
        scale_factor_type="float_scale", quant_format="int", layerwise_first_last_bit_width=bits,
        weight_narrow_range=True, weight_quant_type="sym",
        weight_param_method="mse" if method == "brevitas_mse" else "stats")
    m.eval()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(calib, torch.zeros(len(calib), dtype=torch.long)),
        batch_size=32)
    with torch.no_grad():  # initializes the weight quantizers' scales (as ptq_evaluate.py does)
        m(calib[:8])
    if method.startswith("brevitas_gptq"):
        with contextlib.redirect_stderr(io.StringIO()):  # tqdm bars
            apply_gptq(loader, m, act_order=method.endswith("actorder"))
    elif method == "brevitas_learned_round":
        from argparse import Namespace
        from brevitas_examples.imagenet_classification.ptq.learned_round_utils import \
            apply_learned_round
        args = Namespace(learned_round="hard_sigmoid", learned_round_loss="regularised_mse",
                         learned_round_mode="layerwise", learned_round_iters=iters,
                         learned_round_lr_scheduler=None, learned_round_lr=1e-3,
                         learned_round_batch_size=1)
        loader1 = torch.utils.data.DataLoader(loader.dataset, batch_size=1)
        apply_learned_round(m, loader1, args)
    if method == "brevitas_rtn_bc":
        from brevitas_examples.imagenet_classification.ptq.ptq_common import apply_bias_correction
        with contextlib.redirect_stderr(io.StringIO()):
            apply_bias_correction(loader, m)
    return m


PEER_PACKAGES = {"aimet": "aimet-torch", "mct": "model-compression-toolkit"}  # by method prefix


def peer_toolkit(method):
    """'toolkit version' of a peer method, from the installed package."""
    from importlib.metadata import PackageNotFoundError, version
    pkg = PEER_PACKAGES.get(method.split("_", 1)[0], "brevitas")
    try:
        return f"{pkg} {version(pkg)} (torch {torch.__version__.split('+')[0]})"
    except PackageNotFoundError:
        return f"{pkg} (not installed)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpq-trial", required=True, help="an mpq trial whose calibration images the peers use")
    ap.add_argument("--mpq", action="append", default=[], help="LABEL=TRIAL.h5:EXPORT.pt")
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--granularity", default="per_channel", choices=["per_channel", "per_tensor"])
    ap.add_argument("--iters", type=int, default=2000, help="learned-round iterations per layer")
    ap.add_argument("--photos", default=os.path.join(REPO, "results/data/photos"))
    ap.add_argument("--eval-limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    import h5py
    e = export_pretrained.entry("efficientnet_lite0")
    model, _, _ = export_pretrained.load_model("efficientnet_lite0", e)
    pp = e["preprocess"]
    with h5py.File(a.mpq_trial, "r") as f:
        idx = f["manifest/calibration_indices"][()].tolist()
    cal_files = split_files(a.photos, "calibration")
    calib = torch.stack([preprocess(cal_files[i], pp) for i in idx])
    ev_files = split_files(a.photos, "eval")
    if a.eval_limit:
        ev_files = ev_files[:a.eval_limit]
    x = torch.stack([preprocess(p, pp) for p in ev_files])
    fp = run(model, x)
    rows = []
    setting = f"W{a.bits} {a.granularity.replace('_', ' ')}"
    print(f"peers: {len(idx)} calibration images, {len(x)} evaluation images, {setting}", flush=True)
    for label_spec in a.mpq:
        label, rest = label_spec.split("=", 1)
        trial, export = rest.rsplit(":", 1)
        with h5py.File(trial, "r") as f:
            mt = dict(f["metrics"].attrs)
        q = run(torch.jit.load(export, map_location="cpu").eval(), x)
        r = {"toolkit": "mpq", "method": label, "setting": setting, **fidelity(fp, q),
             "seconds": float(mt.get("quant_seconds", float("nan"))) + float(mt.get("calibration_seconds", 0)),
             "note": f"mpq's own agreement {100 * float(mt.get('agreement', float('nan'))):.1f}%"
                     + ("; statistics from the cache" if int(mt.get("stats_cache_hit", 0)) else "")}
        rows.append(r)
        print("\t".join(str(v) for v in r.values()), flush=True)
    for method in a.peer:
        t0 = time.time()
        toolkit = peer_toolkit(method)
        try:
            if method.startswith("aimet_"):
                import aimet_peer
                m, note = aimet_peer.aimet_model(standardize(copy.deepcopy(model)), method, a.bits,
                                                 a.granularity, calib, a.iters)
            elif method.startswith("mct_"):
                import mct_peer
                m, note = mct_peer.mct_model(standardize(copy.deepcopy(model)), method, a.bits,
                                             a.granularity, calib)
            else:
                m = brevitas_model(model, method, a.bits, a.granularity, calib, a.iters)
                note = f"{count_quant_layers(m)} layers quantized"
            secs = time.time() - t0
            r = {"toolkit": toolkit, "method": method, "setting": setting,
                 **fidelity(fp, run(m, x)), "seconds": secs, "note": note}
        except Exception as err:  # noqa: BLE001 - a failing peer is a row, the table goes on
            r = {"toolkit": toolkit, "method": method, "setting": setting,
                 "agreement": float("nan"), "agreement_top5": float("nan"), "kl": float("nan"),
                 "sqnr_db": float("nan"), "seconds": time.time() - t0,
                 "note": f"failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}
            traceback.print_exc()
        rows.append(r)
        print("\t".join(str(v) for v in r.values()), flush=True)
    if a.out:
        new = not os.path.exists(a.out)
        with open(a.out, "a") as f:
            if new:
                f.write("\t".join(rows[0].keys()) + "\n")
            for r in rows:
                f.write("\t".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()) + "\n")


if __name__ == "__main__":
    main()
