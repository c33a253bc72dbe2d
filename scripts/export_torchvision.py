#!/usr/bin/env python3
"""Export a torchvision model to TorchScript for mpq (runs on your Python with torch/torchvision).

usage: export_torchvision.py ARCH [--weights NAME|none] [--weights-file FILE.pth] [--script]
                             [--num-classes N] [--published DATASET:METRIC=VALUE]... [-o OUT.pt]

  ARCH            a torchvision.models builder name: resnet18, resnet50, resnet101, mobilenet_v2,
                  vgg16, inception_v3, ssdlite320_mobilenet_v3_large, ...
  --weights       torchvision weights name (e.g. IMAGENET1K_V1, the default for classifiers) or
                  "none" for random initialization. Loaded from torch's hub cache, or from
                  --weights-file (a state dict you downloaded, e.g. on a machine with internet).
                  With "none", the BatchNorm running statistics are warmed on --warm-batches
                  random batches (train mode, cumulative average), so that activations keep a
                  sensible scale through the network instead of the initial mean 0 / var 1.
  --warm-batches  random batches of 8 for "none" (default 4; 0 keeps the initial statistics)
  --warm-images   warm on real images instead: the first warm-batches x 8 image files (sorted
                  path order) below this directory, resized to the short side 256/224 of the
                  input, centre-cropped, ImageNet mean/std. A random network whose statistics
                  were warmed on other inputs than it is evaluated on can be chaotic there: on
                  photos, efficientnet_v2_s warmed on random batches gives logits near 3e4 whose
                  float32 rounding alone flips half the argmaxes (experiments/zoo/).
  --script        torch.jit.script instead of torch.jit.trace (detectors are always scripted)
  --published     a reference accuracy of your weights for mpq's FP sanity check, e.g.
                  VOC2007-test:map_voc07=68.1 for a VOC detector you trained (percent; repeatable;
                  overrides the model card's)
  -o              output archive (default ARCH-WEIGHTS.pt)

The archive carries a JSON file mpq_meta.json (TorchScript extra file) recording the source,
weights, torch/torchvision versions, the input shape and, for released weights, their
preprocessing and published accuracy (from torchvision's model card), which mpq's FP sanity
check compares with what it measures. The script prints the mpq preprocessing preset that
matches the weights, e.g. `--set data.preprocess.preset=torchvision-v1`.

Examples:
  python3 scripts/export_torchvision.py resnet18 -o models/resnet18.pt
  python3 scripts/export_torchvision.py resnet50 --weights IMAGENET1K_V2 -o models/resnet50_v2.pt
  python3 scripts/export_torchvision.py mobilenet_v2 --weights none --script -o /tmp/mbv2.pt
  python3 scripts/export_torchvision.py ssd300_vgg16 --weights none --num-classes 21 \
      --weights-file my_voc_ssd.pth --published VOC2007-test:map_voc07=68.1 -o models/ssd_voc.pt
"""
import argparse
import json
import os
import sys

import torch
import torchvision

PRESETS = {(256, 224, "bilinear"): "torchvision-v1", (232, 224, "bilinear"): "torchvision-v2",
           (342, 299, "bilinear"): "inception"}


def warm_images(root, n, side):
    """The first n image files below root (sorted), preprocessed as ImageNet eval images."""
    import numpy as np
    from PIL import Image
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))
    if len(files) < n:
        sys.exit(f"export_torchvision.py: --warm-images {root}: {len(files)} image files, "
                 f"expected at least {n} (--warm-batches x 8)")
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    out = []
    for f in files[:n]:
        im = Image.open(f).convert("RGB")
        s = side * 256 / 224 / min(im.size)
        im = im.resize((max(side, round(im.size[0] * s)), max(side, round(im.size[1] * s))), Image.BILINEAR)
        l, t = (im.size[0] - side) // 2, (im.size[1] - side) // 2
        x = (np.asarray(im.crop((l, t, l + side, t + side)), np.float32) / 255 - mean) / std
        out.append(torch.from_numpy(x.transpose(2, 0, 1).copy()))
    return torch.stack(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("arch")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--weights-file", default=None)
    ap.add_argument("--script", action="store_true")
    ap.add_argument("--num-classes", type=int, default=None)
    ap.add_argument("--published", action="append", default=[])
    ap.add_argument("--warm-batches", type=int, default=4)
    ap.add_argument("--warm-images", default=None)
    ap.add_argument("-o", "--output", default=None)
    a = ap.parse_args()
    published = {}
    for p in a.published:
        try:
            where, value = p.split("=", 1)
            dataset, metric = where.split(":", 1)
            published.setdefault(dataset, {})[metric] = float(value)
        except ValueError:
            sys.exit(f"export_torchvision.py: --published {p}: expected DATASET:METRIC=VALUE, "
                     "e.g. VOC2007-test:map_voc07=68.1")

    try:
        builder = torchvision.models.get_model_builder(a.arch)
    except ValueError:
        sys.exit(f"export_torchvision.py: unknown torchvision model '{a.arch}'")
    detector = a.arch.startswith(("ssd", "fasterrcnn", "retinanet", "fcos", "maskrcnn", "keypointrcnn"))
    wenum = torchvision.models.get_model_weights(builder)
    name = a.weights if a.weights is not None else ("none" if detector else "IMAGENET1K_V1")
    weights = None
    if name != "none":
        try:
            weights = wenum[name]
        except KeyError:
            sys.exit(f"export_torchvision.py: {a.arch} has no weights '{name}' "
                     f"(known: {', '.join(w.name for w in wenum)})")
    kwargs = {}
    if a.num_classes is not None:
        kwargs["num_classes"] = a.num_classes
    if detector and weights is None:
        kwargs["weights_backbone"] = None  # no download of ImageNet backbone weights
    if weights is not None and a.weights_file is None:
        try:
            model = builder(weights=weights, progress=False, **kwargs)  # hub cache, or a download
        except (OSError, RuntimeError) as e:  # urllib's URLError is an OSError
            cache = os.path.join(torch.hub.get_dir(), "checkpoints")
            reason = str(getattr(e, "reason", e)).splitlines()[0]
            sys.exit(f"export_torchvision.py: cannot get {a.arch} weights {name} from "
                     f"{weights.url} ({reason}): put the file in {cache}, pass "
                     "--weights-file FILE.pth, or use --weights none")
    else:
        model = builder(weights=None, **kwargs)
        if a.weights_file is not None:
            try:
                model.load_state_dict(torch.load(a.weights_file, map_location="cpu"))
            except (OSError, RuntimeError, KeyError) as e:
                sys.exit(f"export_torchvision.py: --weights-file {a.weights_file}: "
                         f"{str(e).splitlines()[0]}")
    # The input size of the architecture: its weights' crop (299 for inception_v3), also when
    # the model is randomly initialized (the default weights' transforms need no download).
    ref = weights if weights is not None else getattr(wenum, "DEFAULT", None)
    side = list(ref.transforms().crop_size)[0] if ref is not None and not detector else 224
    warmed = 0
    if weights is None and a.weights_file is None and not detector and a.warm_batches > 0:
        # Random initialization: warm the BatchNorm statistics on random batches (cumulative
        # average over the batches), as bench/tv_models.py does.
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.reset_running_stats()
                mod.momentum = None
        # Only BatchNorm in train mode: stochastic depth and dropout in train mode would gather
        # the statistics of randomly thinned networks (a different one per run), not of the
        # network that is evaluated.
        for mod in model.modules():
            mod.training = isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)
        gen = torch.Generator().manual_seed(0)
        images = warm_images(a.warm_images, a.warm_batches * 8, side) if a.warm_images else None
        with torch.no_grad():
            for b in range(a.warm_batches):
                model(images[b * 8:(b + 1) * 8] if images is not None
                      else torch.randn(8, 3, side, side, generator=gen))
        warmed = a.warm_batches
    model.eval()

    meta = {"source": "torchvision", "arch": a.arch, "weights": name,
            "torch_version": torch.__version__, "torchvision_version": torchvision.__version__,
            "exported_with": "script" if (a.script or detector) else "trace",
            "weights_file": a.weights_file}
    if weights is None and a.weights_file is None and not detector:
        meta["batchnorm_statistics"] = (
            "initial (mean 0, var 1)" if not warmed else
            f"warmed on {warmed} batches of 8 images below {a.warm_images}" if a.warm_images else
            f"warmed on {warmed} random batches of 8 (seed 0)")
    preset = None
    if weights is not None:
        m = weights.meta
        tf = weights.transforms()
        resize, crop = list(tf.resize_size)[0], list(tf.crop_size)[0]
        interp = tf.interpolation.value
        meta["preprocess"] = {"resize": resize, "crop": crop, "interpolation": interp,
                              "mean": list(tf.mean), "std": list(tf.std)}
        preset = PRESETS.get((resize, crop, interp))
        meta["preprocess"]["preset"] = preset or "custom"
        meta["published"] = {k: v for k, v in m.get("_metrics", {}).items()}
        meta["num_classes"] = len(m.get("categories", [])) or None
    meta["input_shape"] = [3, side, side]
    for dataset, metrics in published.items():
        meta.setdefault("published", {}).setdefault(dataset, {}).update(metrics)

    if detector or a.script:
        sm = torch.jit.script(model)
    else:
        c, h, w = meta["input_shape"]
        # Under no_grad, as inference runs: nn.MultiheadAttention takes its fused fast path only
        # without autograd, and torch.jit.trace's check re-runs the model under no_grad, so a
        # trace with autograd on records the other path and fails the check ("Graphs differed
        # across invocations", vit_b_16).
        with torch.no_grad():
            sm = torch.jit.trace(model, torch.zeros(1, c, h, w))
    out = a.output or f"{a.arch}-{name}.pt"
    torch.jit.save(sm, out, _extra_files={"mpq_meta.json": json.dumps(meta)})
    print(f"wrote {out} ({'scripted' if meta['exported_with'] == 'script' else 'traced'} {a.arch}, weights {name}, "
          f"input {side}x{side})")
    if "batchnorm_statistics" in meta:
        print(f"BatchNorm statistics: {meta['batchnorm_statistics']}")
    if weights is not None:
        if preset:
            print(f"preprocessing: --set data.preprocess.preset={preset}")
        else:
            p = meta["preprocess"]
            print(f"preprocessing: --set data.preprocess.resize={p['resize']} "
                  f"--set data.preprocess.crop={p['crop']} "
                  f"--set data.preprocess.interpolation={p['interpolation']}")
        for ds, metrics in meta["published"].items():
            print(f"published on {ds}: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
